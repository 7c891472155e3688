import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FrozenWeight,
  Rng,
  RuntimeError,
  disposeBackend,
  f32ToBf16Bits,
  f32ToF16Bits,
  frozenBytes,
  frozenMatMul,
  initBackend,
  loadNativeFrozen,
  toFloat32,
  type FrozenFormat,
} from '../src/index.js';

// Frozen weights in native memory (native/hyperllama_quant.c): the kernels must give tfjs's own matMul on the
// weight's dequantised values, whose reference here is independent of the addon (the runtime's JS bf16/f16 rounding).
// NF4 is checked against @hyperllama/lora's JS quantiser in that package's tests.
const native = loadNativeFrozen();

describe.skipIf(!native.frozen)(`frozen native-memory weights (${native.why})`, () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', threads: 2 });
  });
  afterAll(async () => {
    await disposeBackend();
  });

  const rng = new Rng(11);
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    expect(a.length).toBe(b.length);
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    return d;
  };
  /** The values a 16-bit format stores for `w`, decoded by the runtime's safetensors code. */
  const rounded16 = (w: Float32Array, format: 'bf16' | 'fp16') => {
    const bits = Uint16Array.from(w, (v) => (format === 'bf16' ? f32ToBf16Bits(v) : f32ToF16Bits(v)));
    return {
      bits,
      values: toFloat32({
        dtype: format === 'bf16' ? 'BF16' : 'F16',
        shape: [w.length],
        data: new Uint8Array(bits.buffer),
      }),
    };
  };

  // [n, k, m]: m ≤ 8 takes the fused row-at-a-time kernel, larger m the dequantised tiles + sgemm; 512 × 1024 splits
  // over threads.
  const shapes: Array<[number, number, number]> = [
    [96, 128, 1],
    [96, 128, 3],
    [96, 128, 8],
    [96, 128, 9],
    [33, 72, 40],
    [512, 1024, 1],
    [512, 1024, 17],
  ];
  const formats: Array<'fp32' | 'bf16' | 'fp16'> = ['fp32', 'bf16', 'fp16'];

  for (const format of formats) {
    it.each(shapes)(`${format}: x · Wᵀ for W [%i, %i] and m = %i equals tf.matMul on the stored values`, (n, k, m) => {
      const w = rng.normalArray(n * k, 0, 0.5);
      const x = rng.normalArray(m * k, 0, 1);
      const stored = format === 'fp32' ? w : rounded16(w, format).values;
      const fw = FrozenWeight.from(format, w, [n, k]);
      try {
        expect(fw.bytes).toBe(frozenBytes(format, n, k));
        expect(maxDiff(fw.dequantize(), stored)).toBe(0);
        const [got, expected] = tf.tidy(() => {
          const xt = tf.tensor2d(x, [m, k]);
          return [frozenMatMul(xt, fw).dataSync(), tf.matMul(xt, tf.tensor2d(stored, [n, k]), false, true).dataSync()];
        });
        // float32 sums of k products of size ≤ ~2: a few ulps of ~sqrt(k)
        expect(maxDiff(got, expected)).toBeLessThan(2e-4);
      } finally {
        fw.dispose();
      }
    });
  }

  it('fills a 16-bit weight from its own bits bit for bit, and from the other 16-bit format through float32', () => {
    const w = rng.normalArray(40 * 16, 0, 1);
    const { bits, values } = rounded16(w, 'bf16');
    const direct = FrozenWeight.from('bf16', bits, [40, 16], { dtype: 'BF16' });
    const viaBytes = FrozenWeight.create('fp32', 40, 16);
    viaBytes.fill(new Uint8Array(bits.buffer), 'BF16');
    expect(maxDiff(direct.dequantize(), values)).toBe(0);
    expect(maxDiff(viaBytes.dequantize(), values)).toBe(0);
    const half = FrozenWeight.from('fp16', bits, [40, 16], { dtype: 'BF16' });
    expect(maxDiff(half.dequantize(), rounded16(values, 'fp16').values)).toBe(0);
    tf.dispose([]);
    for (const f of [direct, viaBytes, half]) f.dispose();
  });

  it.each(['fp32', 'bf16', 'nf4'] as FrozenFormat[])(
    '%s: the gradient flows to the input only: dx = dy · W and matches finite differences',
    (format) => {
      const [n, k, m] = [24, 64, 5];
      const fw = FrozenWeight.from(format, rng.normalArray(n * k, 0, 0.5), [n, k]);
      const W = fw.dequantize();
      const c = tf.tensor2d(rng.normalArray(m * n, 0, 1), [m, n]);
      const x0 = rng.normalArray(m * k, 0, 1);
      const loss = (x: tf.Tensor) => tf.sum(tf.mul(frozenMatMul(x as tf.Tensor2D, fw), c));
      const dx = tf.tidy(() =>
        tf
          .grad(loss)(tf.tensor2d(x0, [m, k]))
          .dataSync(),
      );
      // Closed form: dL/dx = c · W
      const closed = tf.tidy(() => tf.matMul(c, tf.tensor2d(W, [n, k])).dataSync());
      expect(maxDiff(dx, closed)).toBeLessThan(1e-4);
      // Central differences (the loss is linear in x, so they are exact but for float32 rounding).
      const eps = 1e-2;
      for (const i of [0, 7, 63, 64, 200, m * k - 1]) {
        const at = (d: number) => {
          const x = Float32Array.from(x0);
          x[i] += d;
          return tf.tidy(() => loss(tf.tensor2d(x, [m, k])).dataSync()[0]);
        };
        const fd = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(fd - dx[i])).toBeLessThan(2e-2 * Math.max(1, Math.abs(dx[i])));
      }
      // A trainable variable behind the frozen product gets its gradient through it.
      const v = tf.variable(tf.tensor2d(x0, [m, k]));
      const { grads } = tf.variableGrads(() => loss(v) as tf.Scalar, [v]);
      expect(maxDiff(grads[v.name].dataSync(), closed)).toBeLessThan(1e-4);
      tf.dispose([c, v, grads[v.name]]);
      fw.dispose();
    },
  );

  it('gives the same results on the cpu backend', async () => {
    const fw = FrozenWeight.from('bf16', rng.normalArray(20 * 32, 0, 1), [20, 32]);
    const x = rng.normalArray(3 * 32, 0, 1);
    const onWasm = tf.tidy(() => frozenMatMul(tf.tensor2d(x, [3, 32]), fw).dataSync());
    await tf.setBackend('cpu');
    try {
      const onCpu = tf.tidy(() => frozenMatMul(tf.tensor2d(x, [3, 32]), fw).dataSync());
      expect(maxDiff(onCpu, onWasm)).toBeLessThan(1e-5);
    } finally {
      await tf.setBackend('wasm');
      fw.dispose();
    }
  });

  it('refuses bad shapes, sources, formats and disposed weights with typed errors', () => {
    const fw = FrozenWeight.create('bf16', 8, 16);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(RuntimeError);
        return (e as RuntimeError).code;
      }
      return 'no error';
    };
    expect(code(() => tf.tidy(() => frozenMatMul(tf.zeros([2, 15]) as tf.Tensor2D, fw)))).toBe('FROZEN_BAD_SHAPE');
    expect(code(() => fw.fill(new Float32Array(7), 'F32'))).toBe('FROZEN_BAD_SOURCE');
    expect(code(() => FrozenWeight.create('nf4', 4, 100))).toBe('FROZEN_BAD_SHAPE'); // 100 % 64 ≠ 0
    expect(code(() => FrozenWeight.create('int8' as FrozenFormat, 4, 64))).toBe('FROZEN_BAD_FORMAT');
    fw.dispose();
    expect(code(() => tf.tidy(() => frozenMatMul(tf.zeros([2, 16]) as tf.Tensor2D, fw)))).toBe('FROZEN_DISPOSED');
    expect(code(() => fw.dequantize())).toBe('FROZEN_DISPOSED');
  });
});
