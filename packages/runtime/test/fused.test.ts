import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng, initBackend, maskedSoftmax, rmsNorm, rotaryEmbedding, swiglu } from '../src/index.js';

// Each memory-saving op must give the value and the gradients that autograd gives for the composed definition.
const rng = new Rng(21);
const random = (shape: number[], std = 1) =>
  tf.tensor(
    rng.normalArray(
      shape.reduce((a, b) => a * b, 1),
      0,
      std,
    ),
    shape,
  );
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i])));

/** Value and gradients of sum(f(xs) · probe) for both implementations, compared to `tol`. */
function expectSameGradients(
  ours: (...xs: tf.Tensor[]) => tf.Tensor,
  composed: (...xs: tf.Tensor[]) => tf.Tensor,
  xs: tf.Tensor[],
  tol = 1e-5,
): void {
  const probe = random(composed(...xs).shape);
  const run = (f: (...xs: tf.Tensor[]) => tf.Tensor) =>
    tf.tidy(() => {
      const { value, grads } = tf.valueAndGrads((...ys: tf.Tensor[]) => tf.sum(tf.mul(f(...ys), probe)))(xs);
      return [f(...xs), value, ...grads].map((t) => t.dataSync());
    });
  const [a, b] = [run(ours), run(composed)];
  for (let i = 0; i < a.length; i++) {
    expect(maxDiff(a[i], b[i]), `output ${i}`).toBeLessThan(tol);
    expect(
      Array.from(b[i]).some((v) => v !== 0),
      `output ${i} is not all zero`,
    ).toBe(true);
  }
}

describe('memory-saving ops with their own gradients (cpu backend)', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
  });

  it('rmsNorm: x / sqrt(mean(x²) + eps) · w', () => {
    expectSameGradients(
      (x, w) => rmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, 1e-6),
      (x, w) => tf.mul(tf.div(x, tf.sqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-6))), w),
      [random([5, 8]), random([8])],
    );
  });

  it('swiglu: silu(gate) · up', () => {
    expectSameGradients(
      (g, u) => swiglu(g as tf.Tensor2D, u as tf.Tensor2D),
      (g, u) => tf.mul(tf.mul(g, tf.sigmoid(g)), u),
      [random([4, 6], 3), random([4, 6])],
    );
  });

  it('rotaryEmbedding: x·cos + rotate_half(x)·sin, broadcast over heads', () => {
    const angles = random([2, 1, 5, 4], 2);
    const [cos, sin] = [tf.cos(angles), tf.sin(angles)] as tf.Tensor4D[];
    const rotateHalf = (x: tf.Tensor) =>
      tf.concat([tf.neg(tf.slice(x, [0, 0, 0, 2], [-1, -1, -1, 2])), tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, 2])], 3);
    expectSameGradients(
      (x) => rotaryEmbedding(x as tf.Tensor4D, cos, sin),
      (x) => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)),
      [random([2, 3, 5, 4])],
    );
  });

  it('rotaryEmbedding keeps its tables for the backward pass when the caller disposes them', () => {
    const x = random([1, 2, 3, 4]);
    const g = tf.grad((xs: tf.Tensor) =>
      tf.tidy(() => {
        const angles = tf.ones([1, 1, 3, 4]);
        return tf.sum(rotaryEmbedding(xs as tf.Tensor4D, tf.cos(angles) as tf.Tensor4D, tf.sin(angles) as tf.Tensor4D)); // tables die with this tidy
      }),
    )(x);
    const c = Math.cos(1);
    const s = Math.sin(1);
    // d/dx Σ(x·c + rotate_half(x)·s) = c + rotate_halfᵀ(s) = [c + s, c − s] per half
    expect(
      maxDiff(
        g.dataSync(),
        Array.from({ length: 24 }, (_, i) => (i % 4 < 2 ? c + s : c - s)),
      ),
    ).toBeLessThan(1e-6);
  });

  it('maskedSoftmax: softmax(scores + mask) with a causal mask', () => {
    const mask = tf.tensor4d(
      Array.from({ length: 25 }, (_, i) => (i % 5 > Math.floor(i / 5) ? -1e9 : 0)),
      [1, 1, 5, 5],
    );
    expectSameGradients(
      (s) => maskedSoftmax(s, mask),
      (s) => tf.softmax(tf.add(s, mask)),
      [random([2, 3, 5, 5], 2)],
    );
  });
});
