import * as tf from '@tensorflow/tfjs';
import type { LlamaModel } from '@hyperllama/llama-model';
import { Rng } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downstreamMask, gistMask, positionTensor, positionIdsFromMask } from '../src/index.js';
import { logitsOf, rowDiffs, tinyModel, twoHops } from './helpers.js';

// Perturbation tests through the real model. A token j is changed; the logits of real row i must then be unchanged
// (<= 1e-6) exactly when the expected rule says i cannot depend on j, and clearly changed (> 1e-4) otherwise.
// With one layer, row i depends on j iff j is visible to i; with two layers, iff j is visible to some m visible to i.
// The expected rules are restated here from the papers, independently of the mask builders.

const PAD = 0;
const BOS = 1;
const V = 32;
const G0 = V; // gist ids index extra embedding rows (as trainable gist tokens do)
const G1 = V + 1;
const UNCHANGED = 1e-6;
const CHANGED = 1e-4;

let extraEmbeddings: tf.Tensor2D;
const models: LlamaModel[] = [];
const model = (layers: number) => (models[layers] ??= tinyModel(layers));

beforeAll(async () => {
  await tf.setBackend('cpu');
  extraEmbeddings = tf.tensor2d(new Rng(3).normalArray(2 * 16, 0, 1), [2, 16]);
});

afterAll(() => {
  for (const m of models) m?.dispose();
  extraEmbeddings.dispose();
});

/** Gisting rule: j visible to i iff causal and no gist block lies entirely between them (j < s, i >= s + k). */
function gistRule(ids: number[], pad: number[]): boolean[][] {
  const spans: Array<[number, number]> = [];
  ids.forEach((id, t) => {
    if ((id === G0 || id === G1) && pad[t]) {
      const last = spans[spans.length - 1];
      if (last && last[1] === t) last[1] = t + 1;
      else spans.push([t, t + 1]);
    }
  });
  return ids.map((_, i) =>
    ids.map((_, j) => j <= i && pad[i] === 1 && pad[j] === 1 && !spans.some(([s, e]) => j < s && i >= e)),
  );
}

/**
 * For every position j of row b that is not a gist: change its token and record which real rows' logits moved.
 * Returns moved[i][j] (undefined for padded rows i), after checking each difference is either <= 1e-6 or > 1e-4.
 */
function dependence(
  run: (ids: number[][]) => number[][][],
  ids: number[][],
  pad: number[][],
  b: number,
): (boolean | undefined)[][] {
  const base = run(ids)[b];
  const T = ids[b].length;
  const moved: (boolean | undefined)[][] = Array.from({ length: T }, () => Array.from({ length: T }, () => undefined));
  for (let j = 0; j < T; j++) {
    if (ids[b][j] === G0 || ids[b][j] === G1) continue;
    const changed = ids.map((r) => [...r]);
    changed[b][j] = ((ids[b][j] + 7) % (V - 3)) + 3; // another ordinary token (never PAD, BOS or a gist)
    const diffs = rowDiffs(run(changed)[b], base);
    diffs.forEach((d, i) => {
      if (pad[b][i] === 0) return;
      expect(d <= UNCHANGED || d > CHANGED, `row ${i} after changing token ${j}: difference ${d} is ambiguous`).toBe(
        true,
      );
      moved[i][j] = d > CHANGED;
    });
  }
  return moved;
}

/** The expected pattern restricted to what `dependence` measured. */
function expectPattern(moved: (boolean | undefined)[][], expected: boolean[][]) {
  const want = moved.map((row, i) => row.map((m, j) => (m === undefined ? undefined : expected[i][j])));
  expect(moved).toEqual(want);
}

function gistRun(layers: number, pad: number[][]) {
  return (ids: number[][]) => {
    const mask = gistMask({ inputIds: ids, gistIds: [G0, G1], attentionMask: pad });
    const positionIds = positionTensor(positionIdsFromMask(pad));
    const out = logitsOf(model(layers), ids, { mask, positionIds, extraEmbeddings });
    tf.dispose([mask, positionIds]);
    return out;
  };
}

describe('Gisting layout through the model', () => {
  // Rows put their gist block at different places: row 0 at 5..6, row 1 (left-padded) at 4..5.
  const ids = [
    [BOS, 5, 6, 7, 3, G0, G1, 8, 9],
    [PAD, PAD, BOS, 11, G0, G1, 12, 13, 14],
  ];
  const pad = [
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 1, 1, 1, 1, 1, 1, 1],
  ];

  it('one layer: every logit after the gist block is unchanged by any token before it, and changed by the tokens it sees', () => {
    for (const b of [0, 1]) {
      const moved = dependence(gistRun(1, pad), ids, pad, b);
      expectPattern(moved, gistRule(ids[b], pad[b]));
      const end = ids[b].lastIndexOf(G1) + 1;
      const start = ids[b].indexOf(G0);
      for (let i = end; i < 9; i++) {
        for (let j = 0; j < start; j++) if (pad[b][j]) expect(moved[i][j]).toBe(false);
        for (let j = end; j <= i; j++) expect(moved[i][j]).toBe(true);
      }
    }
  });

  it('padding tokens change no real row', () => {
    const run = gistRun(1, pad);
    const base = run(ids);
    const changed = ids.map((r) => [...r]);
    changed[1][0] = 17;
    changed[1][1] = 18;
    const after = run(changed);
    expect(Math.max(...rowDiffs(after[1], base[1]).slice(2))).toBeLessThanOrEqual(UNCHANGED); // rows 2.. are real
  });

  it('two layers: tokens before the block reach later rows only in two hops through the gists', () => {
    for (const b of [0, 1]) {
      const rule = gistRule(ids[b], pad[b]);
      const moved = dependence(gistRun(2, pad), ids, pad, b);
      expectPattern(moved, twoHops(rule));
      // information does flow through the gists: the tokens before the block now move the rows after it
      const end = ids[b].lastIndexOf(G1) + 1;
      expect(moved[end][ids[b].indexOf(BOS) + 1]).toBe(true);
    }
  });
});

describe('multi-gist layout through the model', () => {
  it('two layers: rows after the second block see nothing from before the first block', () => {
    // blocks at 2 (G0) and 5 (G1): row >= 6 sees columns >= 5; column 5 sees columns >= 2
    const ids = [[BOS, 5, G0, 6, 7, G1, 8, 9]];
    const pad = [[1, 1, 1, 1, 1, 1, 1, 1]];
    const moved = dependence(gistRun(2, pad), ids, pad, 0);
    expectPattern(moved, twoHops(gistRule(ids[0], pad[0])));
    for (let i = 6; i < 8; i++) {
      expect(moved[i][0]).toBe(false);
      expect(moved[i][1]).toBe(false);
      expect(moved[i][3]).toBe(true); // between the blocks: reaches them through G1
    }
  });
});

describe('HyperLlama hyper pass [BOS] examples… <GIST_0..k-1> through the model', () => {
  it('the gists see every example token of their row; padding and other rows change nothing', () => {
    const ids = [
      [PAD, PAD, BOS, 5, 6, G0, G1],
      [BOS, 5, 6, 7, 8, G0, G1],
    ];
    const pad = [
      [0, 0, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 1, 1],
    ];
    const run = gistRun(1, pad);
    for (const b of [0, 1]) {
      const moved = dependence(run, ids, pad, b);
      expectPattern(moved, gistRule(ids[b], pad[b]));
      for (const g of [5, 6]) for (let j = 0; j < 5; j++) if (pad[b][j]) expect(moved[g][j]).toBe(true);
    }
    // a change in row 1 leaves row 0 exactly as it was
    const changed = ids.map((r) => [...r]);
    changed[1][3] = 20;
    expect(Math.max(...rowDiffs(run(changed)[0], run(ids)[0]).slice(2))).toBeLessThanOrEqual(UNCHANGED);
  });
});

describe('downstream pass behind a prefix through the model', () => {
  const P = 2;
  const cfgKv = { nKv: 2, hd: 4 };
  let prefix: { keys: tf.Tensor4D[]; values: tf.Tensor4D[]; length: number };

  beforeAll(() => {
    const rng = new Rng(11);
    const make = () => tf.tensor4d(rng.normalArray(3 * cfgKv.nKv * P * cfgKv.hd), [3, cfgKv.nKv, P, cfgKv.hd]);
    prefix = { keys: [make()], values: [make()], length: P };
  });
  afterAll(() => tf.dispose([...prefix.keys, ...prefix.values]));

  const ids = [
    [5, 6, 7, 8],
    [9, 10, PAD, PAD],
    [PAD, PAD, PAD, PAD], // an all-padding row must not produce NaN
  ];
  const pad = [
    [1, 1, 1, 1],
    [1, 1, 0, 0],
    [0, 0, 0, 0],
  ];
  const prefixMask = [
    [1, 1],
    [0, 1],
    [1, 1],
  ];
  const run = (p: typeof prefix) => (x: number[][]) => {
    const mask = downstreamMask({ prefixLength: P, prefixMask, attentionMask: pad });
    const positionIds = positionTensor(positionIdsFromMask(pad, 2));
    const out = logitsOf(model(1), x, { mask, positionIds, prefix: p });
    tf.dispose([mask, positionIds]);
    return out;
  };

  it('own tokens: causal, padding invisible; an all-padding row stays finite', () => {
    const causal = (b: number) =>
      ids[b].map((_, i) => ids[b].map((_, j) => j <= i && pad[b][i] === 1 && pad[b][j] === 1));
    for (const b of [0, 1]) expectPattern(dependence(run(prefix), ids, pad, b), causal(b));
    expect(run(prefix)(ids).flat(2).every(Number.isFinite)).toBe(true);
  });

  it('prefix columns: a changed prefix value moves every real row that may see that column, and no other', () => {
    const base = run(prefix)(ids);
    for (const col of [0, 1]) {
      const bump = tf.tensor4d(
        Array.from({ length: 3 * 2 * P * 4 }, (_, n) => (Math.floor(n / 4) % P === col ? 1 : 0)),
        [3, 2, P, 4],
      );
      const values = [tf.add(prefix.values[0], bump) as tf.Tensor4D];
      const after = run({ ...prefix, values })(ids);
      for (const b of [0, 1]) {
        const diffs = rowDiffs(after[b], base[b]).filter((_, i) => pad[b][i] === 1);
        for (const d of diffs) expect(prefixMask[b][col] ? d > CHANGED : d <= UNCHANGED).toBe(true);
      }
      tf.dispose([bump, ...values]);
    }
  });
});
