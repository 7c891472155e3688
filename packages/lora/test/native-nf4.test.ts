import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrozenWeight, Rng, disposeBackend, frozenMatMul, initBackend, loadNativeFrozen } from '@hyperllama/runtime';
import { dequantizeNf4, quantizeNf4 } from '../src/index.js';
import { NF4_MAX_HALF_GAP, storedAbsmax } from '../src/nf4.js';

// The native NF4 weights (runtime's native/hyperllama_quant.c) must store exactly what this package's quantiser
// writes, and their kernel must multiply by exactly what dequantizeNf4 reads back.
const native = loadNativeFrozen();

describe.skipIf(!native.frozen)(`native NF4 against the JS quantiser (${native.why})`, () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', threads: 2 });
  });
  afterAll(async () => {
    await disposeBackend();
  });
  const rng = new Rng(5);

  // [n, k, m]; 300 × 256 has 1200 blocks (5 double-quantisation groups, the last partial).
  it.each([
    [300, 256, 1],
    [300, 256, 4],
    [300, 256, 33],
    [64, 1024, 2],
    [512, 1024, 3], // ≥ 2^18 values: quantised and multiplied on several threads
  ])('W [%i, %i], m = %i: same bytes as quantizeNf4, and x · Wᵀ equals tf.matMul on dequantizeNf4', (n, k, m) => {
    const w = rng.normalArray(n * k, 0, 0.05);
    w[17] = 0.9; // an outlier block
    const q = quantizeNf4(w, [n, k]);
    const fw = FrozenWeight.from('nf4', w, [n, k]);
    try {
      const parts = fw.nf4Parts();
      expect(Buffer.from(parts.packed).equals(Buffer.from(q.packed))).toBe(true);
      expect(Buffer.from(parts.codes).equals(Buffer.from(q.doubleQuant!.codes))).toBe(true);
      expect(Array.from(parts.scales)).toEqual(Array.from(q.doubleQuant!.scales));
      expect(parts.offset).toBe(q.doubleQuant!.offset);
      const reference = dequantizeNf4(q);
      const stored = fw.dequantize();
      let d = 0;
      for (let i = 0; i < stored.length; i++) d = Math.max(d, Math.abs(stored[i] - reference[i]));
      expect(d).toBeLessThanOrEqual(1e-7);
      // The per-element bound of the format, on the original values.
      const absmax = storedAbsmax(q);
      for (let i = 0; i < w.length; i += 97) {
        const b = Math.floor(i / 64);
        expect(Math.abs(stored[i] - w[i])).toBeLessThanOrEqual(
          NF4_MAX_HALF_GAP * absmax[b] +
            Math.abs(absmax[b] - Math.max(...Array.from(w.subarray(b * 64, b * 64 + 64), Math.abs))) +
            1e-6,
        );
      }
      const x = rng.normalArray(m * k, 0, 1);
      const [got, expected] = tf.tidy(() => {
        const xt = tf.tensor2d(x, [m, k]);
        return [frozenMatMul(xt, fw).dataSync(), tf.matMul(xt, tf.tensor2d(reference, [n, k]), false, true).dataSync()];
      });
      let e = 0;
      for (let i = 0; i < got.length; i++) e = Math.max(e, Math.abs(got[i] - expected[i]));
      expect(e).toBeLessThan(1e-4);
    } finally {
      fw.dispose();
    }
  });
});
