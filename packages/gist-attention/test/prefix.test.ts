import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type LlamaModel, applyRope } from '@hyperllama/llama-model';
import { Rng } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GistAttentionError,
  Prefix,
  type PositionScheme,
  downstreamMask,
  downstreamPositionIds,
  extractGistPrefix,
  findGistPositions,
  gistMask,
  hyperPositionIds,
  padRows,
  positionIdsFromMask,
  positionTensor,
} from '../src/index.js';
import { tinyConfig, tinyModel } from './helpers.js';

// The equivalent full computation. One forward over [hyper input; downstream input] under the gist mask lets the
// downstream rows see exactly the gist columns and their own causal columns, with positions running on from the
// hyper input: the downstream logits of that forward are what a `continue` prefix must reproduce. RoPE scores depend
// only on the difference of positions, and a `restart` prefix keeps that difference (gist j at j, downstream token t
// at k + t, versus L - k + j and L + t), so it must reproduce the same logits too (up to float32 rounding of the
// different rotation angles).

const PAD = 0;
const BOS = 1;
const V = 32;
const GISTS = [V, V + 1]; // k = 2 gist ids, embedded by extra rows
const k = GISTS.length;

let model: LlamaModel;
let extra: tf.Tensor2D;
let dir: string;
const config = tinyConfig(2);

beforeAll(async () => {
  await tf.setBackend('cpu');
  model = tinyModel(2, 5);
  extra = tf.tensor2d(new Rng(9).normalArray(k * config.hiddenSize, 0, 1), [k, config.hiddenSize]);
  dir = mkdtempSync(join(tmpdir(), 'gist-prefix-'));
});

afterAll(() => {
  model.dispose();
  extra.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const examples = [
  [BOS, 5, 6, 7, 8, 9],
  [BOS, 10, 11],
];
const downstream = [
  [12, 13, 14],
  [15, 16],
];
const ints = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');

/** Hyper pass (left- or right-padded) with returnKV; returns the prefix under `scheme` and the gist positions. */
function hyperPrefix(side: 'left' | 'right', scheme: PositionScheme, shift = 0, embeddings = extra): Prefix {
  const hyper = padRows(
    examples.map((e) => [...e, ...GISTS]),
    { padId: PAD, side },
  );
  return tf.tidy(() => {
    const mask = gistMask({ ...hyper, gistIds: GISTS });
    const positionIds = tf.add(hyperPositionIds(hyper.attentionMask), shift) as tf.Tensor2D;
    const { kv } = model.forward({
      inputIds: ints(hyper.inputIds),
      extraEmbeddings: embeddings,
      mask,
      positionIds,
      returnKV: true,
    });
    const gistPositions = findGistPositions(hyper.inputIds, GISTS, hyper.attentionMask);
    return extractGistPrefix(kv!, gistPositions, scheme, {
      ...config,
      hyperPositions: positionIds,
    }) as unknown as tf.TensorContainer;
  }) as unknown as Prefix;
}

/** Downstream logits [B][T][V] behind a prefix (right-padded downstream rows). */
function downstreamLogits(prefix: Prefix): tf.Tensor3D {
  const down = padRows(downstream, { padId: PAD, side: 'right' });
  return tf.tidy(() => {
    const mask = downstreamMask({ prefixLength: prefix.length, attentionMask: down.attentionMask });
    const positionIds = downstreamPositionIds(prefix.positionOffsets, { attentionMask: down.attentionMask });
    return model.forward({ inputIds: ints(down.inputIds), mask, positionIds, prefix }).logits!;
  });
}

/** The single forward over [hyper; downstream] (hyper part padded on `side`): logits of the downstream tokens. */
function jointLogits(side: 'left' | 'right'): number[][][] {
  const hyper = padRows(
    examples.map((e) => [...e, ...GISTS]),
    { padId: PAD, side },
  );
  const down = padRows(downstream, { padId: PAD, side: 'right' });
  const ids = hyper.inputIds.map((h, b) => [...h, ...down.inputIds[b]]);
  const pad = hyper.attentionMask.map((h, b) => [...h, ...down.attentionMask[b]]);
  const L = hyper.inputIds[0].length;
  return tf.tidy(() => {
    const mask = gistMask({ inputIds: ids, gistIds: GISTS, attentionMask: pad });
    const positionIds = positionTensor(positionIdsFromMask(pad));
    const logits = model.forward({ inputIds: ints(ids), extraEmbeddings: extra, mask, positionIds }).logits!;
    return tf.slice(logits, [0, L, 0], [-1, -1, -1]).arraySync() as number[][][];
  });
}

/** Largest |a - b| over the real downstream tokens. */
function maxDiff(a: number[][][], b: number[][][]): number {
  let m = 0;
  downstream.forEach((row, bIdx) =>
    row.forEach((_, t) => a[bIdx][t].forEach((v, n) => (m = Math.max(m, Math.abs(v - b[bIdx][t][n]))))),
  );
  return m;
}

describe('a prefix extracted under each scheme gives the downstream logits of the equivalent full computation', () => {
  for (const side of ['left', 'right'] as const) {
    for (const scheme of ['continue', 'restart'] as const) {
      it(`${scheme}, hyper batch padded on the ${side} (${side === 'left' ? 'gists end every row' : 'gists at different indices per row'})`, () => {
        const before = tf.memory().numTensors;
        const prefix = hyperPrefix(side, scheme);
        expect(prefix.length).toBe(k);
        expect(prefix.keys).toHaveLength(config.numHiddenLayers);
        expect(prefix.keys[0].shape).toEqual([2, config.numKeyValueHeads, k, config.headDim]); // GQA: nKv heads
        expect(prefix.positionOffsets).toEqual(
          scheme === 'restart' ? [k, k] : [examples[0].length + k, examples[1].length + k],
        );
        const logits = downstreamLogits(prefix);
        const got = logits.arraySync() as number[][][];
        const want = jointLogits(side);
        const scale = Math.max(...want.flat(2).map(Math.abs));
        expect(scale).toBeGreaterThan(1); // logits are not trivially small
        // continue: the very same numbers (measured 0); restart: rounding of other RoPE angles (measured ~1e-6)
        expect(maxDiff(got, want)).toBeLessThan(scheme === 'continue' ? 1e-6 : 1e-5);
        logits.dispose();
        prefix.dispose();
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  }
});

describe('restart scheme', () => {
  it('keys equal the continue keys rotated back by their hyper positions to 0..k-1', () => {
    const cont = hyperPrefix('left', 'continue');
    const rest = hyperPrefix('left', 'restart');
    // hyper positions of the gists: row b's gists sit at L_b - k .. L_b - 1, so rotate by j - (L_b - k + j) = k - L_b
    const back = tf.tensor2d(
      examples.map((e) => Array.from({ length: k }, () => -e.length)),
      [2, k],
      'int32',
    );
    for (let l = 0; l < config.numHiddenLayers; l++) {
      const rotated = applyRope(cont.keys[l], back, config.ropeTheta, config.headDim);
      expect(tf.max(tf.abs(tf.sub(rotated, rest.keys[l]))).dataSync()[0]).toBeLessThan(1e-5);
      expect(tf.max(tf.abs(tf.sub(cont.keys[l], rest.keys[l]))).dataSync()[0]).toBeGreaterThan(1e-2);
      expect(rest.values[l].dataSync()).toEqual(cont.values[l].dataSync());
      rotated.dispose();
    }
    tf.dispose(back);
    cont.dispose();
    rest.dispose();
  });

  it('the prefix does not depend on where the examples ended; a continue prefix does', () => {
    const rest = hyperPrefix('left', 'restart');
    const restShifted = hyperPrefix('left', 'restart', 7);
    const cont = hyperPrefix('left', 'continue');
    const contShifted = hyperPrefix('left', 'continue', 7);
    const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
    for (let l = 0; l < config.numHiddenLayers; l++) {
      expect(diff(rest.keys[l], restShifted.keys[l])).toBeLessThan(1e-5);
      expect(diff(rest.values[l], restShifted.values[l])).toBeLessThan(1e-5);
      expect(diff(cont.keys[l], contShifted.keys[l])).toBeGreaterThan(1e-2);
    }
    expect(contShifted.positionOffsets).toEqual(cont.positionOffsets.map((o) => o + 7));
    for (const p of [rest, restShifted, cont, contShifted]) p.dispose();
  });
});

describe('extraction keeps gradients and round-trips through a file', () => {
  it('the gradient of a downstream loss reaches the gist embeddings through the prefix (matches finite differences)', () => {
    const weights = tf.tensor3d(new Rng(4).normalArray(2 * 3 * V), [2, 3, V]);
    const loss = (emb: tf.Tensor2D) =>
      tf.tidy(() => {
        const prefix = hyperPrefix('left', 'restart', 0, emb);
        return tf.sum(tf.mul(downstreamLogits(prefix), weights)) as tf.Scalar;
      });
    const grad = tf.grad((emb: tf.Tensor) => loss(emb as tf.Tensor2D))(extra);
    const g = grad.arraySync() as number[][];
    expect(g.flat().every(Number.isFinite)).toBe(true);
    for (const [r, c] of [
      [0, 0],
      [1, 3],
    ]) {
      const eps = 1e-2;
      const bump = tf.buffer([k, config.hiddenSize]);
      bump.set(eps, r, c);
      const at = (sign: number) =>
        tf.tidy(() => loss(tf.add(extra, tf.mul(bump.toTensor(), sign)) as tf.Tensor2D).dataSync()[0]);
      const numeric = (at(1) - at(-1)) / (2 * eps);
      expect(Math.abs(g[r][c])).toBeGreaterThan(1e-3);
      expect(Math.abs(numeric - g[r][c])).toBeLessThan(0.02 * Math.abs(g[r][c]) + 1e-3);
    }
    tf.dispose([weights, grad]);
  });

  it('a saved and reloaded prefix gives bit-identical downstream logits', () => {
    const path = join(dir, 'task.safetensors');
    const prefix = hyperPrefix('right', 'continue');
    prefix.save(path, { config, meta: { task: 'toy' } });
    const loaded = Prefix.load(path, config);
    const a = downstreamLogits(prefix);
    const b = downstreamLogits(loaded);
    expect(b.dataSync()).toEqual(a.dataSync());
    tf.dispose([a, b]);
    prefix.dispose();
    loaded.dispose();
  });
});

describe('extractGistPrefix rejects bad input with typed errors', () => {
  const kv = () => {
    const t = tf.zeros([2, 2, 5, 4]) as tf.Tensor4D;
    return [{ keysPreRope: t, keys: t, values: t }];
  };
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(GistAttentionError);
      return (e as GistAttentionError).code;
    }
    return 'no error';
  };
  it('positions, batch, shapes, scheme', () => {
    const opts = { ropeTheta: 10000, headDim: 4 };
    expect(code(() => extractGistPrefix(kv(), [[3, 4]], 'restart', opts))).toBe('GIST_BAD_SHAPE'); // batch 2, one row
    expect(
      code(() =>
        extractGistPrefix(
          kv(),
          [
            [3, 5],
            [3, 4],
          ],
          'restart',
          opts,
        ),
      ),
    ).toBe('GIST_BAD_LAYOUT'); // 5 >= T
    expect(code(() => extractGistPrefix(kv(), [[3, 4], [4]], 'continue', opts))).toBe('GIST_BAD_LAYOUT'); // ragged k
    expect(
      code(() =>
        extractGistPrefix(
          kv(),
          [
            [3, 4],
            [3, 4],
          ],
          'sideways' as 'restart',
          opts,
        ),
      ),
    ).toBe('GIST_BAD_SCHEME');
    expect(
      code(() =>
        extractGistPrefix(
          kv(),
          [
            [3, 4],
            [3, 4],
          ],
          'restart',
          { ...opts, headDim: 8 },
        ),
      ),
    ).toBe('GIST_BAD_SHAPE');
    expect(code(() => extractGistPrefix([], [[3, 4]], 'restart', opts))).toBe('GIST_BAD_SHAPE');
    const bad = kv();
    bad[0] = { ...bad[0], values: tf.zeros([2, 2, 6, 4]) as tf.Tensor4D };
    expect(
      code(() =>
        extractGistPrefix(
          [...kv(), bad[0]],
          [
            [3, 4],
            [3, 4],
          ],
          'restart',
          opts,
        ),
      ),
    ).toBe('GIST_BAD_SHAPE');
  });
});
