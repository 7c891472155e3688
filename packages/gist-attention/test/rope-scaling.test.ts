import * as tf from '@tensorflow/tfjs';
import { type LlamaConfig, type LlamaModel, type RopeScaling, createLlama } from '@hyperllama/llama-model';
import { Rng } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
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
  type Prefix,
} from '../src/index.js';
import { tinyConfig } from './helpers.js';

// The identity of prefix.test.ts on models with RoPE scaling: a prefix from the hyper pass, under `continue` or
// `restart`, gives the downstream logits of one joint forward over [hyper; downstream]. Scaled RoPE is still a
// rotation by position × fixed frequencies (yarn also scales cos and sin), so scores depend on position differences
// only and `restart` keeps them, provided the gist keys are re-rotated with the model's scaled frequencies.

const PAD = 0;
const BOS = 1;
const V = 32;
const GISTS = [V, V + 1];
const k = GISTS.length;
const examples = [
  [BOS, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
  [BOS, 10, 11, 3, 4],
];
const downstream = [
  [12, 13, 14, 20, 21, 22, 23],
  [15, 16],
];
const ints = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');

// head_dim 8, theta 10000: wavelengths 6.3, 63, 628, 6283; with original 16 the llama3 case smooths one and divides two.
const SCALINGS: RopeScaling[] = [
  { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
  { type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 16 },
  { type: 'linear', factor: 3 },
];

let extra: tf.Tensor2D;
beforeAll(async () => {
  await tf.setBackend('cpu');
  extra = tf.tensor2d(new Rng(9).normalArray(k * 16, 0, 1), [k, 16]);
});
afterAll(() => extra.dispose());

function hyperPrefix(model: LlamaModel, scheme: PositionScheme, extract: LlamaConfig): Prefix {
  const hyper = padRows(
    examples.map((e) => [...e, ...GISTS]),
    { padId: PAD, side: 'right' },
  );
  return tf.tidy(() => {
    const positionIds = hyperPositionIds(hyper.attentionMask);
    const { kv } = model.forward({
      inputIds: ints(hyper.inputIds),
      extraEmbeddings: extra,
      mask: gistMask({ ...hyper, gistIds: GISTS }),
      positionIds,
      returnKV: true,
    });
    const gistPositions = findGistPositions(hyper.inputIds, GISTS, hyper.attentionMask);
    return extractGistPrefix(kv!, gistPositions, scheme, {
      ...extract,
      hyperPositions: positionIds,
    }) as unknown as tf.TensorContainer;
  }) as unknown as Prefix;
}

function downstreamLogits(model: LlamaModel, prefix: Prefix): number[][][] {
  const down = padRows(downstream, { padId: PAD, side: 'right' });
  return tf.tidy(() => {
    const mask = downstreamMask({ prefixLength: prefix.length, attentionMask: down.attentionMask });
    const positionIds = downstreamPositionIds(prefix.positionOffsets, { attentionMask: down.attentionMask });
    return model.forward({ inputIds: ints(down.inputIds), mask, positionIds, prefix }).logits!.arraySync();
  }) as number[][][];
}

function jointLogits(model: LlamaModel): number[][][] {
  const hyper = padRows(
    examples.map((e) => [...e, ...GISTS]),
    { padId: PAD, side: 'right' },
  );
  const down = padRows(downstream, { padId: PAD, side: 'right' });
  const ids = hyper.inputIds.map((h, b) => [...h, ...down.inputIds[b]]);
  const pad = hyper.attentionMask.map((h, b) => [...h, ...down.attentionMask[b]]);
  const L = hyper.inputIds[0].length;
  return tf.tidy(() => {
    const mask = gistMask({ inputIds: ids, gistIds: GISTS, attentionMask: pad });
    const positionIds = positionTensor(positionIdsFromMask(pad));
    const logits = model.forward({ inputIds: ints(ids), extraEmbeddings: extra, mask, positionIds }).logits!;
    return tf.slice(logits, [0, L, 0], [-1, -1, -1]).arraySync();
  }) as number[][][];
}

function maxDiff(a: number[][][], b: number[][][]): number {
  let m = 0;
  downstream.forEach((row, r) =>
    row.forEach((_, t) => a[r][t].forEach((v, n) => (m = Math.max(m, Math.abs(v - b[r][t][n]))))),
  );
  return m;
}

describe('gist prefixes on models with RoPE scaling reproduce the joint forward', () => {
  for (const scaling of SCALINGS) {
    it(`${scaling.type}: continue and restart match; restart with plain RoPE frequencies does not`, () => {
      const config: LlamaConfig = {
        ...tinyConfig(2),
        hiddenSize: 16,
        numAttentionHeads: 2,
        numKeyValueHeads: 1,
        headDim: 8,
        ropeScaling: scaling,
      };
      const model = createLlama(config, { seed: 3, std: 0.5 });
      const want = jointLogits(model);
      expect(Math.max(...want.flat(2).map(Math.abs))).toBeGreaterThan(1);
      for (const scheme of ['continue', 'restart'] as const) {
        const prefix = hyperPrefix(model, scheme, config);
        expect(maxDiff(downstreamLogits(model, prefix), want), scheme).toBeLessThan(1e-4);
        prefix.dispose();
      }
      // The re-rotation must use the model's scaling: with plain frequencies the restart prefix is wrong.
      const wrong = hyperPrefix(model, 'restart', { ...config, ropeScaling: undefined });
      expect(maxDiff(downstreamLogits(model, wrong), want)).toBeGreaterThan(1e-2);
      wrong.dispose();
      model.dispose();
    });
  }
});
