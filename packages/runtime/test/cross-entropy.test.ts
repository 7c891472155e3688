import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng, initBackend, linearCrossEntropy, softmaxCrossEntropyWithGrad } from '../src/index.js';

/** The textbook definition through autograd: Σ w·(logsumexp(h·W) − (h·W)[target]), ignored targets weigh 0. */
function reference(
  h: tf.Tensor2D,
  w: tf.Tensor2D,
  targets: number[],
  weights: number[],
  transposed: boolean,
): tf.Scalar {
  const logits = tf.matMul(h, w, false, transposed) as tf.Tensor2D;
  const V = logits.shape[1];
  const keep = targets.map((t, i) => (t >= 0 && t < V ? weights[i] : 0));
  const picked = tf.sum(
    tf.mul(
      logits,
      tf.oneHot(
        targets.map((t) => (t >= 0 && t < V ? t : 0)),
        V,
      ),
    ),
    1,
  );
  return tf.sum(tf.mul(tf.sub(tf.logSumExp(logits, 1), picked), keep));
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i])));

describe('linearCrossEntropy (chunked LM head + cross-entropy with its own gradient), cpu backend', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
  });
  const rng = new Rng(5);
  const N = 7;
  const D = 6;
  const V = 11;
  const targets = [3, -100, 10, 0, 4, 4, 7];
  const weights = [1, 1, 0.5, 2, 1, 0, 1];

  it.each([false, true])(
    'gives the loss and the gradients for h and W of the plain definition (transposed %s)',
    (transposed) => {
      const h = tf.tensor2d(rng.normalArray(N * D, 0, 1), [N, D]);
      const w = tf.variable(tf.tensor2d(rng.normalArray(D * V, 0, 1), transposed ? [V, D] : [D, V]));
      const f = (custom: boolean) =>
        tf.tidy(() => {
          const { value, grads } = tf.valueAndGrads((hh: tf.Tensor, ww: tf.Tensor) =>
            custom
              ? linearCrossEntropy(
                  hh as tf.Tensor2D,
                  ww as tf.Tensor2D,
                  tf.tensor1d(targets, 'int32'),
                  tf.tensor1d(weights),
                  { transposed, chunkRows: 3 },
                )
              : reference(hh as tf.Tensor2D, ww as tf.Tensor2D, targets, weights, transposed),
          )([h, w]);
          return [value, ...grads].map((t) => t.dataSync());
        });
      const [ours, expected] = [f(true), f(false)];
      for (let i = 0; i < 3; i++) expect(maxDiff(ours[i], expected[i]), `output ${i}`).toBeLessThan(1e-5);
      expect(expected[2].some((x) => x !== 0)).toBe(true);
      tf.dispose([h, w]);
    },
  );

  it('leaves a frozen weight out of the gradient and keeps no tensors', () => {
    const h = tf.variable(tf.tensor2d(rng.normalArray(N * D, 0, 1), [N, D]));
    const w = tf.variable(tf.tensor2d(rng.normalArray(D * V, 0, 1), [D, V]), false);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(
      () => linearCrossEntropy(h, w, tf.tensor1d(targets, 'int32'), tf.tensor1d(weights), { chunkRows: 2 }),
      [h],
    );
    const expected = tf.tidy(() =>
      tf
        .grads((hh: tf.Tensor) => reference(hh as tf.Tensor2D, w, targets, weights, false))([h])[0]
        .dataSync(),
    );
    expect(maxDiff(grads[h.name].dataSync(), expected)).toBeLessThan(1e-5);
    tf.dispose([value, grads[h.name]]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([h, w]);
  });

  it.each([false, true])(
    'keeps no tensors when the weight trains too (transposed %s): a training step leaves memory as it found it',
    (transposed) => {
      const h = tf.variable(tf.tensor2d(rng.normalArray(N * D, 0, 1), [N, D]));
      const w = tf.variable(tf.tensor2d(rng.normalArray(D * V, 0, 1), transposed ? [V, D] : [D, V]));
      const before = tf.memory().numTensors;
      for (let step = 0; step < 3; step++) {
        const { value, grads } = tf.variableGrads(
          () =>
            linearCrossEntropy(h, w, tf.tensor1d(targets, 'int32'), tf.tensor1d(weights), { transposed, chunkRows: 2 }),
          [h, w],
        );
        expect(grads[w.name].shape).toEqual(w.shape);
        tf.dispose([value, ...Object.values(grads)]);
        expect(tf.memory().numTensors, `after step ${step}`).toBe(before);
      }
      tf.dispose([h, w]);
    },
  );

  it('computes per-row losses and dlogits = w·(softmax − onehot)', () => {
    const logits = tf.tensor2d([
      [1, 2, 3],
      [0, 0, 0],
    ]);
    const { losses, dlogits } = softmaxCrossEntropyWithGrad(logits, tf.tensor1d([2, 5], 'int32'), tf.tensor1d([2, 1]));
    const p = [1, 2, 3].map((x) => Math.exp(x) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
    expect(maxDiff(losses.dataSync(), [-2 * Math.log(p[2]), 0])).toBeLessThan(1e-6);
    expect(maxDiff(dlogits.dataSync(), [2 * p[0], 2 * p[1], 2 * (p[2] - 1), 0, 0, 0])).toBeLessThan(1e-6);
  });
});
