import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Rng,
  disposeBackend,
  initBackend,
  linearCrossEntropy,
  loadNativeBlas,
  softmaxCrossEntropyWithGrad,
} from '../src/index.js';

// The optional OpenBLAS matMul (native/build.mjs) must give what the pure-JS cpu backend gives, for every form of
// product autograd and attention produce: transposed operands, batches, a shared operand, broadcasting.
const native = loadNativeBlas();

describe.skipIf(!native.blas)(`native matMul on wasm (${native.why})`, () => {
  beforeAll(async () => {
    const info = await initBackend({ backend: 'wasm', threads: 2, matMul: 'native' });
    expect(info.matMul).toBe('openblas');
  });
  afterAll(async () => {
    await disposeBackend();
  });

  const rng = new Rng(3);
  const random = (shape: number[]) => ({
    data: rng.normalArray(
      shape.reduce((a, b) => a * b, 1),
      0,
      1,
    ),
    shape,
  });
  type Host = ReturnType<typeof random>;
  const on = <T>(backend: string, f: () => T): T => {
    void tf.setBackend(backend);
    try {
      return f();
    } finally {
      void tf.setBackend('wasm');
    }
  };
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    expect(a.length).toBe(b.length);
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    return d;
  };

  // [a shape, b shape, transposeA, transposeB]
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[7, 5], [5, 3], false, false],
    [[5, 7], [5, 3], true, false],
    [[7, 5], [3, 5], false, true],
    [[5, 7], [3, 5], true, true],
    [[4, 6, 5], [4, 5, 3], false, false], // attention-like batches
    [[4, 6, 5], [4, 3, 5], false, true],
    [[4, 5, 6], [4, 5, 3], true, false],
    [[2, 3, 6, 5], [5, 4], false, false], // shared right operand (folded into one product)
    [[2, 3, 5, 6], [4, 5], true, true],
    [[6, 5], [3, 5, 4], false, false], // shared left operand
    [[1, 5], [5, 9], false, false], // matrix-vector products (sgemv)
    [[5, 1], [9, 5], true, true],
    [[3, 1, 5], [3, 5, 9], false, false],
    [[7, 5], [5, 1], false, false],
    [[5, 7], [1, 5], true, true],
    [[2, 1, 6, 5], [1, 3, 5, 4], false, false], // two-sided broadcast (falls back to the wasm kernel)
    [[3, 0, 5], [3, 5, 4], false, false], // empty
    [[3, 4, 0], [3, 0, 2], false, false], // zero inner size: zeros
  ];

  it.each(cases)('matMul %j × %j (transposeA %s, transposeB %s) equals the cpu backend', (sa, sb, ta, tb) => {
    const a = random(sa);
    const b = random(sb);
    const run = () =>
      tf.tidy(() => tf.matMul(tf.tensor(a.data, a.shape), tf.tensor(b.data, b.shape), ta, tb).dataSync());
    const expected = on('cpu', run);
    const got = run();
    expect(maxDiff(got, expected)).toBeLessThan(1e-4);
  });

  // (A rank-3+ by rank-2 product is reshaped to 2-D: tfjs 4.22's gradient of the broadcast form is wrong everywhere.)
  it('gives the cpu backend gradients of a batched attention-like product chain', () => {
    const [q, k, w] = [random([2, 3, 8, 4]), random([2, 3, 8, 4]), random([4, 6])];
    const grads = () =>
      tf.tidy(() => {
        const f = (qt: tf.Tensor, kt: tf.Tensor, wt: tf.Tensor) =>
          tf.sum(
            tf.square(
              tf.matMul(
                tf.softmax(tf.matMul(qt, kt, false, true)),
                tf.reshape(tf.matMul(tf.reshape(kt, [48, 4]), wt), [2, 3, 8, 6]),
              ),
            ),
          );
        const g = tf.grads(f)([q, k, w].map((x: Host) => tf.tensor(x.data, x.shape)));
        return g.map((t) => t.dataSync());
      });
    const expected = on('cpu', grads);
    const got = grads();
    for (let i = 0; i < got.length; i++) {
      expect(maxDiff(got[i], expected[i])).toBeLessThan(1e-3);
      expect(expected[i].some((x) => x !== 0)).toBe(true);
    }
  });

  it('computes the fused softmax cross-entropy (losses and dlogits) as the cpu backend composes it', () => {
    const logits = random([9, 301]);
    const targets = [0, 300, -100, 17, 301, 5, 5, 299, 1];
    const weights = [1, 0.5, 1, 2, 1, 0, 1, 1, 3];
    const run = () =>
      tf.tidy(() => {
        const r = softmaxCrossEntropyWithGrad(
          tf.tensor2d(logits.data, logits.shape as [number, number]),
          tf.tensor1d(targets, 'int32'),
          tf.tensor1d(weights),
        );
        return [r.losses.dataSync(), r.dlogits.dataSync()];
      });
    const expected = on('cpu', run);
    const got = run();
    expect(maxDiff(got[0], expected[0])).toBeLessThan(1e-5);
    expect(maxDiff(got[1], expected[1])).toBeLessThan(1e-6);
  });

  it('gives the cpu backend gradients of linearCrossEntropy', () => {
    const [h, w] = [random([10, 8]), random([8, 50])];
    const targets = [1, 2, 3, -100, 49, 0, 7, 7, 8, 9];
    const run = () =>
      tf.tidy(() => {
        const f = (ht: tf.Tensor, wt: tf.Tensor) =>
          linearCrossEntropy(
            ht as tf.Tensor2D,
            wt as tf.Tensor2D,
            tf.tensor1d(targets, 'int32'),
            tf.ones([10]) as tf.Tensor1D,
            { chunkRows: 4 },
          );
        const { value, grads } = tf.valueAndGrads(f)([tf.tensor(h.data, h.shape), tf.tensor(w.data, w.shape)]);
        return [value, ...grads].map((t) => t.dataSync());
      });
    const expected = on('cpu', run);
    const got = run();
    for (let i = 0; i < got.length; i++) expect(maxDiff(got[i], expected[i]), `output ${i}`).toBeLessThan(1e-4);
  });
});
