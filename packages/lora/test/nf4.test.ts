import * as tf from '@tensorflow/tfjs';
import { Rng } from '@hyperllama/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { LoraError, Nf4Linear, dequantizeNf4, nf4StoredBytes, quantizeNf4 } from '../src/index.js';
import {
  DOUBLE_QUANT_GROUP,
  DYNAMIC_CODE,
  DYNAMIC_MAX_HALF_GAP,
  NF4_CODE,
  NF4_MAX_HALF_GAP,
  storedAbsmax,
} from '../src/nf4.js';
import { matmulJs, maxAbsDiff } from './helpers/host.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
function normPpf(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
  ];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const pl = 0.02425;
  if (p < pl) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    );
  }
  if (p > 1 - pl) return -normPpf(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
  );
}

/** float32 linspace(start, end, steps) without its last element. */
function linspaceDropLast(start: number, end: number, steps: number): number[] {
  return Array.from({ length: steps - 1 }, (_, i) => Math.fround(start + ((end - start) * i) / (steps - 1)));
}

describe('NF4 code table', () => {
  it('equals the QLoRA definition: N(0,1) quantiles at offset 0.9677083, 8 positive and 7 negative, plus 0, scaled to [-1, 1]', () => {
    const offset = Math.fround(0.9677083);
    const positive = linspaceDropLast(offset, 0.5, 9).map(normPpf);
    const negative = linspaceDropLast(offset, 0.5, 8).map((p) => -normPpf(p));
    const values = [...positive, 0, ...negative].sort((x, y) => x - y);
    const max = Math.max(...values);
    expect(NF4_CODE.length).toBe(16);
    expect(
      maxAbsDiff(
        NF4_CODE,
        values.map((v) => v / max),
      ),
    ).toBeLessThan(1e-6);
    expect(NF4_CODE[7]).toBe(0);
  });

  it('has the documented worst-case rounding errors', () => {
    expect(NF4_MAX_HALF_GAP).toBeCloseTo((1 - 0.6961928009986877) / 2, 7);
    // The dynamic map's widest step is in its top decade: 0.9 / 64.
    expect(DYNAMIC_MAX_HALF_GAP).toBeCloseTo(0.9 / 64 / 2, 7);
  });

  it('dynamic 8-bit map: 256 sorted values, 0 and 1 included, decades 1e-6..1 of midpoints', () => {
    expect(DYNAMIC_CODE.length).toBe(256);
    for (let i = 1; i < 256; i++) expect(DYNAMIC_CODE[i]).toBeGreaterThan(DYNAMIC_CODE[i - 1]);
    expect(DYNAMIC_CODE[255]).toBe(1);
    expect([...DYNAMIC_CODE].includes(0)).toBe(true);
    // Smallest magnitude: 1e-6 × midpoint of [0.1, 1] = 5.5e-7; most negative: -(0.1 + 0.9 × 63.5 / 64).
    const positives = [...DYNAMIC_CODE].filter((v) => v > 0);
    expect(positives[0]).toBeCloseTo(5.5e-7, 12);
    expect(DYNAMIC_CODE[0]).toBeCloseTo(-(0.1 + (0.9 * 63.5) / 64), 7);
    expect(positives.length).toBe(128); // 127 midpoints + 1
  });
});

function gaussianWithOutliers(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const v = rng.normalArray(n, 0, 0.02);
  for (let i = 0; i < n; i += 97) v[i] *= 25; // outliers, as in real LLM weights
  return v;
}

/** Exact per-block absmax of the original values. */
function blockAbsmax(values: Float32Array, blockSize: number): Float64Array {
  const out = new Float64Array(Math.ceil(values.length / blockSize));
  for (let i = 0; i < values.length; i++)
    out[Math.floor(i / blockSize)] = Math.max(out[Math.floor(i / blockSize)], Math.abs(values[i]));
  return out;
}

describe('NF4 quantisation', () => {
  it('packs two codes per byte, first element in the high nibble', () => {
    const q = quantizeNf4(Float32Array.from([-1, 1, 0, 0.55]), [2, 2], { doubleQuant: false });
    expect([...q.packed]).toEqual([0x0f, (7 << 4) | 13]); // 0.55 is nearest to 0.5626 (index 13)
    expect([...q.absmax!]).toEqual([1]);
  });

  it('reproduces exactly representable values (codes × block absmax) without double quantisation', () => {
    const rng = new Rng(3);
    const blockSize = 64;
    const values = new Float32Array(blockSize * 10);
    for (let b = 0; b < 10; b++) {
      const m = Math.fround(0.1 + b);
      for (let i = 0; i < blockSize; i++)
        values[b * blockSize + i] = Math.fround(NF4_CODE[i === 0 ? 15 : rng.int(16)] * m);
    }
    const q = quantizeNf4(values, [20, 32], { blockSize, doubleQuant: false });
    expect(maxAbsDiff(dequantizeNf4(q), values)).toBe(0);
  });

  it('rounds every element to the nearest NF4 value of its block scale', () => {
    const values = gaussianWithOutliers(64 * 33 + 10, 5);
    const q = quantizeNf4(values, [1, values.length], { blockSize: 64, doubleQuant: false });
    const deq = dequantizeNf4(q);
    const m = blockAbsmax(values, 64);
    for (let i = 0; i < values.length; i++) {
      const mb = m[Math.floor(i / 64)];
      const best = Math.min(...[...NF4_CODE].map((c) => Math.abs(values[i] / mb - c)));
      expect(Math.abs(values[i] / mb - deq[i] / mb)).toBeLessThanOrEqual(best + 1e-6);
    }
  });

  for (const doubleQuant of [false, true]) {
    it(`stays within the documented per-block error bound (doubleQuant=${doubleQuant}, ragged last block, odd size)`, () => {
      const blockSize = 64;
      const n = 64 * 700 + 33; // 701 blocks → 3 double-quant groups, odd element count
      const values = gaussianWithOutliers(n, 11);
      const q = quantizeNf4(values, [1, n], { blockSize, doubleQuant });
      expect(q.packed.length).toBe(Math.ceil(n / 2));
      const deq = dequantizeNf4(q);
      const exact = blockAbsmax(values, blockSize);
      const stored = storedAbsmax(q);
      let worstRatio = 0;
      if (doubleQuant) {
        const { scales } = q.doubleQuant!;
        expect(scales.length).toBe(Math.ceil(exact.length / DOUBLE_QUANT_GROUP));
        for (let b = 0; b < exact.length; b++) {
          expect(Math.abs(exact[b] - stored[b])).toBeLessThanOrEqual(
            DYNAMIC_MAX_HALF_GAP * scales[Math.floor(b / DOUBLE_QUANT_GROUP)] + 1e-7,
          );
        }
      } else {
        expect(maxAbsDiff(stored, exact)).toBe(0);
      }
      for (let i = 0; i < n; i++) {
        const b = Math.floor(i / blockSize);
        const bound = NF4_MAX_HALF_GAP * exact[b] + Math.abs(exact[b] - stored[b]) + 1e-6 * exact[b];
        const err = Math.abs(values[i] - deq[i]);
        expect(err).toBeLessThanOrEqual(bound);
        worstRatio = Math.max(worstRatio, err / bound);
      }
      // The bound is not vacuous: some element comes close to it.
      expect(worstRatio).toBeGreaterThan(0.5);
    });
  }

  it('stores about 0.5 bytes per parameter plus the block overhead QLoRA describes', () => {
    const n = 64 * 512;
    const values = gaussianWithOutliers(n, 2);
    const single = quantizeNf4(values, [128, 256], { doubleQuant: false });
    const double = quantizeNf4(values, [128, 256], { doubleQuant: true });
    // float32 absmax per 64: 0.5 + 4/64; double quantised: 0.5 + 1/64 + 4/(64·256) + one float32 mean.
    expect(nf4StoredBytes(single) / n).toBeCloseTo(0.5 + 4 / 64, 10);
    expect(nf4StoredBytes(double) / n).toBeCloseTo(0.5 + 1 / 64 + 4 / (64 * 256) + 4 / n, 10);
  });

  it('rejects bad block sizes, shapes and non-finite values with LoraError', () => {
    expect(() => quantizeNf4(new Float32Array(8), [2, 4], { blockSize: 7 })).toThrow(LoraError);
    expect(() => quantizeNf4(new Float32Array(8), [3, 4])).toThrow(LoraError);
    expect(() => quantizeNf4(Float32Array.from([1, NaN]), [1, 2])).toThrow(/NaN at element 1/);
  });
});

describe('Nf4Linear', () => {
  it("quantises the HF [out, in] matrix (blocks along each output row's inputs, as bitsandbytes) and returns [in, out]", () => {
    const [inF, outF] = [64, 3];
    // Output row o of the HF weight is constant (o + 1) / 4 except one element -1 at input o: each block (one row)
    // then has absmax 1, and every value is exactly representable (-1, 0.25 → no: use NF4 values).
    const inOut = new Float32Array(inF * outF);
    for (let i = 0; i < inF; i++)
      for (let o = 0; o < outF; o++) inOut[i * outF + o] = i === o ? -(o + 1) : NF4_CODE[8 + o] * (o + 1);
    const lin = Nf4Linear.fromWeight(inOut, inF, outF, { blockSize: 64, doubleQuant: false });
    expect(lin.quantized.shape).toEqual([outF, inF]);
    expect([...lin.quantized.absmax!]).toEqual([1, 2, 3]); // one block per output row
    expect(maxAbsDiff(lin.dequantize(), inOut)).toBeLessThan(1e-6);
  });

  it('forward is x @ dequantised W, and gradients reach the input only', () => {
    const [n, inF, outF] = [5, 48, 40];
    const rng = new Rng(9);
    const w = rng.normalArray(inF * outF, 0, 0.1);
    const lin = Nf4Linear.fromWeight(w, inF, outF, { blockSize: 64 });
    const xv = rng.normalArray(n * inF);
    const x = tf.tensor2d(xv, [n, inF]);
    const before = tf.memory().numTensors;
    const y = lin.apply(x);
    const wq = lin.dequantize();
    expect(maxAbsDiff(y.dataSync(), matmulJs(xv, wq, n, inF, outF))).toBeLessThan(1e-5);
    // d(sum y)/dx = 1 @ Wᵀ: row i of the gradient is the row sums of W.
    const g = tf.grad((t: tf.Tensor) => tf.sum(lin.apply(t as tf.Tensor2D)))(x);
    const rowSums = Array.from({ length: inF }, (_, i) =>
      wq.slice(i * outF, (i + 1) * outF).reduce((s, v) => s + v, 0),
    );
    expect(maxAbsDiff(g.dataSync().slice(0, inF), rowSums)).toBeLessThan(1e-5);
    tf.dispose([y, g]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});
