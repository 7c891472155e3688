import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng, disposeBackend, initBackend, loadNativeBlas } from '../src/index.js';

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
  const random = (shape: number[]) => ({ data: rng.normalArray(shape.reduce((a, b) => a * b, 1), 0, 1), shape });
  type Host = ReturnType<typeof random>;
  const on = <T>(backend: string, f: () => T): T => {
    tf.setBackend(backend);
    try {
      return f();
    } finally {
      tf.setBackend('wasm');
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
    [[2, 1, 6, 5], [1, 3, 5, 4], false, false], // two-sided broadcast (falls back to the wasm kernel)
    [[3, 0, 5], [3, 5, 4], false, false], // empty
    [[3, 4, 0], [3, 0, 2], false, false], // zero inner size: zeros
  ];

  it.each(cases)('matMul %j × %j (transposeA %s, transposeB %s) equals the cpu backend', (sa, sb, ta, tb) => {
    const a = random(sa);
    const b = random(sb);
    const run = () => tf.tidy(() => tf.matMul(tf.tensor(a.data, a.shape), tf.tensor(b.data, b.shape), ta, tb).dataSync());
    const expected = on('cpu', run);
    const got = run();
    expect(maxDiff(got, expected)).toBeLessThan(1e-4);
  });

  // (A rank-3+ by rank-2 product is reshaped to 2-D: tfjs 4.22's gradient of the broadcast form is wrong everywhere.)
  it('gives the cpu backend gradients of a batched attention-like product chain', () => {
    const [q, k, w] = [random([2, 3, 8, 4]), random([2, 3, 8, 4]), random([4, 6])];
    const grads = () =>
      tf.tidy(() => {
        const f = (qt: tf.Tensor, kt: tf.Tensor, wt: tf.Tensor) => tf.sum(tf.square(tf.matMul(tf.softmax(tf.matMul(qt, kt, false, true)), tf.reshape(tf.matMul(tf.reshape(kt, [48, 4]), wt), [2, 3, 8, 6]))));
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
});
