import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError, createLlama, extendVocabulary, type LlamaConfig, type LlamaModel } from '../src/index.js';

/** Largest absolute difference of two tensors of the same shape. */
function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
}

const config = (tied: boolean): LlamaConfig => ({
  vocabSize: 29,
  hiddenSize: 16,
  intermediateSize: 24,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  maxPositionEmbeddings: 32,
  rmsNormEps: 1e-6,
  ropeTheta: 1000,
  tieWordEmbeddings: tied,
  bosTokenId: 1,
  eosTokenId: 2,
});
// New ids 29, 30, 31 start as the means of these old rows.
const sources = [[4, 7, 7, 12], [28], [0, 1]];
const seq = [[3, 9, 27, 14, 5, 21]];

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe.each([true, false])('extendVocabulary (tied embeddings: %s)', (tied) => {
  let base: LlamaModel;
  let grown: LlamaModel;
  beforeAll(() => {
    base = createLlama(config(tied), { seed: 3, std: 0.3 });
    grown = extendVocabulary(base, sources);
  });
  afterAll(() => {
    base.dispose();
    grown.dispose();
  });
  const logits = (m: LlamaModel, rows: number[][]) =>
    m.forward({ inputIds: tf.tensor2d(rows, undefined, 'int32') }).logits!;

  it('computes what the base computes on old ids, and each new logit is the mean of its sources’ logits', () => {
    expect(grown.config.vocabSize).toBe(32);
    const [before, after] = [logits(base, seq), logits(grown, seq)];
    expect(after.shape).toEqual([1, 6, 32]);
    expect(maxAbsDiff(after.slice([0, 0, 0], [1, 6, 29]), before)).toBe(0);
    // A logit is linear in its head row, so a mean row gives the mean logit.
    sources.forEach((ids, i) => {
      const expected = tf.mean(tf.gather(before, ids, 2), 2);
      expect(maxAbsDiff(after.slice([0, 0, 29 + i], [1, 6, 1]).squeeze([2]), expected)).toBeLessThan(1e-5);
    });
  });

  it('embeds a new id as the mean of its sources’ embeddings, so the forward pass equals one on that mean', () => {
    const embedOf = (m: LlamaModel, ids: number[]) => m.embed(tf.tensor2d([ids], undefined, 'int32')).squeeze([0]); // [n, D]
    const mean = tf.mean(embedOf(base, [4, 7, 7, 12]), 0);
    expect(maxAbsDiff(embedOf(grown, [29]).squeeze([0]), mean)).toBeLessThan(1e-6);
    const withNew = grown.forward({ inputIds: tf.tensor2d([[3, 29, 5]], undefined, 'int32') }).logits!;
    const embeds = tf.concat([embedOf(base, [3]), mean.expandDims(0), embedOf(base, [5])], 0).expandDims(0);
    const viaMean = base.forward({ inputsEmbeds: embeds as tf.Tensor3D }).logits!;
    expect(maxAbsDiff(withNew.slice([0, 0, 0], [1, 3, 29]), viaMean)).toBeLessThan(1e-5);
  });

  it('leaves the base untouched and trains the new rows', () => {
    expect(logits(base, seq).shape).toEqual([1, 6, 29]);
    expect(grown.namedWeights().get('model.embed_tokens.weight')!.trainable).toBe(true);
    const same = extendVocabulary(base, [], { trainable: false });
    expect(same.config.vocabSize).toBe(29);
    same.dispose();
  });
});

describe('extendVocabulary errors', () => {
  it('refuses sources that are empty or outside the old vocabulary', () => {
    const m = createLlama(config(true), { seed: 1 });
    for (const bad of [[[]], [[29]], [[1.5]], [[-1]]]) {
      let err: unknown;
      try {
        extendVocabulary(m, bad as number[][]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ModelError);
      expect((err as ModelError).message).toMatch(/sources\[0\]: expected a non-empty list of ids in \[0, 29\)/);
    }
    m.dispose();
  });
});
