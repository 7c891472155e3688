import * as tf from '@tensorflow/tfjs';
import { isWeightedLinear, type LinearHost, type LinearModule } from './contract.js';
import { LoraError } from './errors.js';
import { LoraLinear } from './lora-linear.js';
import { selectTargets, type TargetModules } from './targets.js';

/**
 * The 16 NormalFloat-4 values of QLoRA (Dettmers et al. 2023; the table bitsandbytes uses): quantiles of N(0, 1)
 * scaled to [-1, 1], with an exact zero (index 7) and one more positive than negative value. Sorted ascending.
 */
export const NF4_CODE = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * bitsandbytes' signed 8-bit "dynamic" map, used for double quantisation of the absmax values: 0, 1 and, for each
 * decade 10^-6 … 10^0 (i = 0..6), ±10^(i-6) × the midpoints of 2^i equal steps of [0.1, 1]. 256 sorted values.
 */
export const DYNAMIC_CODE: Float32Array = (() => {
  const values = [0, 1];
  for (let i = 0; i < 7; i++) {
    const steps = 2 ** i;
    for (let j = 0; j < steps; j++) {
      const mid = 0.1 + (0.9 * (j + 0.5)) / steps;
      values.push(10 ** (i - 6) * mid, -(10 ** (i - 6)) * mid);
    }
  }
  return Float32Array.from(values.sort((a, b) => a - b));
})();

/** Largest distance from a value in [-1, 1] to its nearest code: half the widest gap between neighbours. */
function maxHalfGap(code: Float32Array): number {
  let gap = 0;
  for (let i = 1; i < code.length; i++) gap = Math.max(gap, code[i] - code[i - 1]);
  // The ends: DYNAMIC_CODE stops short of -1.
  gap = Math.max(gap, 2 * (code[0] + 1), 2 * (1 - code[code.length - 1]));
  return gap / 2;
}

/** NF4 rounding error on a value normalised by its block's absmax: ≤ 0.1519 (the gap between -1 and -0.696). */
export const NF4_MAX_HALF_GAP = maxHalfGap(NF4_CODE);
/** Dynamic-map rounding error on a normalised absmax: ≤ 0.00703 (the top decade's step 0.9/64, halved). */
export const DYNAMIC_MAX_HALF_GAP = maxHalfGap(DYNAMIC_CODE);

/** Absmax values are double-quantised in groups of this many blocks, as in bitsandbytes and QLoRA. */
export const DOUBLE_QUANT_GROUP = 256;

export interface Nf4Options {
  /** Elements per absmax block (default 64, as QLoRA). */
  blockSize?: number;
  /** Store the absmax values in 8 bits (QLoRA's double quantisation) instead of float32 (default true). */
  doubleQuant?: boolean;
}

/**
 * A 2-D float tensor held as NF4. Its row-major elements are cut into blocks of `blockSize`; each block is scaled by its absolute maximum m_b and every element rounded to the
 * nearest NF4 value. Two 4-bit codes per byte: element 2j in the high nibble, 2j+1 in the low nibble.
 * With double quantisation the absmax values are stored as 8-bit dynamic codes of (m_b − mean), one float32 scale
 * (the absmax of m_b − mean) per group of 256 blocks, and the float32 mean.
 *
 * Error bound, per element w of block b: |w − ŵ| ≤ NF4_MAX_HALF_GAP · m_b + |m_b − m̂_b|, where m̂_b is the stored
 * absmax (m̂_b = m_b without double quantisation, else |m_b − m̂_b| ≤ DYNAMIC_MAX_HALF_GAP · s_g for the block's
 * group scale s_g), plus float32 rounding.
 */
export interface Nf4Weight {
  shape: [number, number];
  blockSize: number;
  /** [ceil(n / 2)] packed codes (indices into NF4_CODE). */
  packed: Uint8Array;
  /** [nBlocks] block absmax values, when not double-quantised. */
  absmax?: Float32Array;
  /** Double-quantised absmax values. */
  doubleQuant?: { codes: Uint8Array /* [nBlocks] */; scales: Float32Array /* [ceil(nBlocks / 256)] */; offset: number };
}

/** Index of the value of a sorted `code` nearest to v. */
function nearest(code: Float32Array, v: number): number {
  let lo = 0;
  let hi = code.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (code[mid] <= v) lo = mid;
    else hi = mid;
  }
  return v - code[lo] <= code[hi] - v ? lo : hi;
}

function checkOptions(shape: [number, number], n: number, o: Required<Nf4Options>): void {
  if (!Number.isInteger(o.blockSize) || o.blockSize < 2 || o.blockSize % 2 !== 0) {
    throw new LoraError(
      'NF4_BAD_OPTION',
      `blockSize: expected an even integer >= 2, got ${JSON.stringify(o.blockSize)}`,
      {
        field: 'blockSize',
        actual: o.blockSize,
      },
    );
  }
  if (shape.length !== 2 || shape[0] * shape[1] !== n || n === 0) {
    throw new LoraError('NF4_BAD_SHAPE', `shape ${JSON.stringify(shape)} does not describe ${n} values`, {
      expected: n,
      actual: shape,
    });
  }
}

/** Quantise row-major float values of `shape` to NF4 (see {@link Nf4Weight}). Non-finite values are an error. */
export function quantizeNf4(values: Float32Array, shape: [number, number], opts: Nf4Options = {}): Nf4Weight {
  const o = { blockSize: opts.blockSize ?? 64, doubleQuant: opts.doubleQuant ?? true };
  const n = values.length;
  checkOptions(shape, n, o);
  const nBlocks = Math.ceil(n / o.blockSize);
  const absmax = new Float32Array(nBlocks);
  const packed = new Uint8Array(Math.ceil(n / 2));
  for (let b = 0; b < nBlocks; b++) {
    const start = b * o.blockSize;
    const end = Math.min(n, start + o.blockSize);
    let m = 0;
    for (let i = start; i < end; i++) {
      const a = Math.abs(values[i]);
      if (!(a <= Number.MAX_VALUE)) {
        throw new LoraError('NF4_NON_FINITE', `value ${values[i]} at element ${i} cannot be quantised`, {
          index: i,
          actual: values[i],
        });
      }
      if (a > m) m = a;
    }
    absmax[b] = m;
    const inv = m > 0 ? 1 / m : 0;
    for (let i = start; i < end; i++) {
      const q = nearest(NF4_CODE, values[i] * inv);
      packed[i >> 1] |= i & 1 ? q : q << 4;
    }
  }
  if (!o.doubleQuant) return { shape: [...shape], blockSize: o.blockSize, packed, absmax };
  return { shape: [...shape], blockSize: o.blockSize, packed, doubleQuant: quantizeAbsmax(absmax) };
}

/** Double quantisation: subtract the mean, then 8-bit dynamic codes with a float32 absmax per group of 256. */
function quantizeAbsmax(absmax: Float32Array): NonNullable<Nf4Weight['doubleQuant']> {
  let sum = 0;
  for (const m of absmax) sum += m;
  const offset = Math.fround(sum / absmax.length);
  const codes = new Uint8Array(absmax.length);
  const scales = new Float32Array(Math.ceil(absmax.length / DOUBLE_QUANT_GROUP));
  for (let g = 0; g < scales.length; g++) {
    const start = g * DOUBLE_QUANT_GROUP;
    const end = Math.min(absmax.length, start + DOUBLE_QUANT_GROUP);
    let s = 0;
    for (let i = start; i < end; i++) s = Math.max(s, Math.abs(absmax[i] - offset));
    scales[g] = s;
    const inv = s > 0 ? 1 / s : 0;
    for (let i = start; i < end; i++) codes[i] = nearest(DYNAMIC_CODE, (absmax[i] - offset) * inv);
  }
  return { codes, scales, offset };
}

/** The stored per-block absmax values m̂_b (reconstructed from their 8-bit codes when double-quantised). */
export function storedAbsmax(w: Nf4Weight): Float32Array {
  if (w.absmax) return w.absmax;
  const { codes, scales, offset } = w.doubleQuant!;
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++)
    out[i] = DYNAMIC_CODE[codes[i]] * scales[Math.floor(i / DOUBLE_QUANT_GROUP)] + offset;
  return out;
}

/** Dequantise to row-major float32 values (into `out` when given). */
export function dequantizeNf4(w: Nf4Weight, out = new Float32Array(w.shape[0] * w.shape[1])): Float32Array {
  const n = out.length;
  const absmax = storedAbsmax(w);
  const { packed, blockSize } = w;
  for (let b = 0; b < absmax.length; b++) {
    const m = absmax[b];
    const end = Math.min(n, (b + 1) * blockSize);
    for (let i = b * blockSize; i < end; i += 2) {
      const byte = packed[i >> 1];
      out[i] = NF4_CODE[byte >> 4] * m;
      if (i + 1 < end) out[i + 1] = NF4_CODE[byte & 15] * m;
    }
  }
  return out;
}

/** Bytes this weight occupies: packed codes plus absmax storage (the shared 16- and 256-entry code tables not counted). */
export function nf4StoredBytes(w: Nf4Weight): number {
  if (w.absmax) return w.packed.byteLength + w.absmax.byteLength;
  const dq = w.doubleQuant!;
  return w.packed.byteLength + dq.codes.byteLength + dq.scales.byteLength + 4;
}

/**
 * A frozen linear layer whose weight is held as NF4 in JS memory and dequantised for every forward pass. As in
 * bitsandbytes, the quantised matrix is the HF [out, in] weight, so each block of 64 runs along the input dimension of
 * one output row. It has no trainable
 * parameters; gradients flow through it to its input (so LoRA adapters on top of it train).
 */
export class Nf4Linear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;

  /** `quantized` holds the [out, in] weight. */
  constructor(readonly quantized: Nf4Weight) {
    [this.outFeatures, this.inFeatures] = quantized.shape;
  }

  /** Quantise a dense weight given in the model's [in, out] layout. */
  static fromWeight(
    weightInOut: Float32Array,
    inFeatures: number,
    outFeatures: number,
    opts: Nf4Options = {},
  ): Nf4Linear {
    if (weightInOut.length !== inFeatures * outFeatures) {
      throw new LoraError(
        'NF4_BAD_SHAPE',
        `weight has ${weightInOut.length} values, expected ${inFeatures} × ${outFeatures}`,
        {
          expected: [inFeatures, outFeatures],
          actual: weightInOut.length,
        },
      );
    }
    const outIn = new Float32Array(weightInOut.length);
    for (let i = 0; i < inFeatures; i++)
      for (let o = 0; o < outFeatures; o++) outIn[o * inFeatures + i] = weightInOut[i * outFeatures + o];
    return new Nf4Linear(quantizeNf4(outIn, [outFeatures, inFeatures], opts));
  }

  /** [in, out] dequantised weight values. */
  dequantize(): Float32Array {
    const outIn = dequantizeNf4(this.quantized);
    const inOut = new Float32Array(outIn.length);
    const [inF, outF] = [this.inFeatures, this.outFeatures];
    for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) inOut[i * outF + o] = outIn[o * inF + i];
    return inOut;
  }

  /**
   * [N, in] -> [N, out]: x @ Wᵀ with W the dequantised [out, in] matrix (the runtime's wasm matMul transposes W
   * natively before its fast path; the gradient to x, dy @ W, is a plain product).
   */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.matMul(x, tf.tensor2d(dequantizeNf4(this.quantized), this.quantized.shape), false, true));
  }

  storedBytes(): number {
    return nf4StoredBytes(this.quantized);
  }

  dispose(): void {
    // Holds no tensors.
  }
}

export interface QuantizeModelOptions extends Nf4Options {
  /** Linears to quantise (PEFT-style, see TargetModules); default every linear except `lm_head`. */
  targetModules?: TargetModules;
}

export interface QuantizeModelReport {
  /** Names of the linears now held as NF4. */
  quantized: string[];
  /** Parameters quantised, and the bytes they now occupy. */
  parameters: number;
  storedBytes: number;
  bytesPerParameter: number;
}

/**
 * Replace the model's dense linears (also those wrapped by a LoraLinear) by {@link Nf4Linear}s, disposing the float
 * weights. Linears that are not dense (already NF4, or another module kind) are a typed error.
 */
export function quantizeModel(model: LinearHost, opts: QuantizeModelOptions = {}): QuantizeModelReport {
  const names = selectTargets(model.linearNames(), opts.targetModules ?? 'all-linear', 'quantizeModel');
  const report: QuantizeModelReport = { quantized: [], parameters: 0, storedBytes: 0, bytesPerParameter: 0 };
  for (const name of names) {
    const module = model.getLinear(name);
    const dense = module instanceof LoraLinear ? module.base : module;
    if (!isWeightedLinear(dense)) {
      throw new LoraError(
        'NF4_NOT_DENSE',
        `quantizeModel: linear "${name}" has no [in, out] weight Variable to quantise (${dense.constructor.name})`,
        {
          module: name,
          actual: dense.constructor.name,
        },
      );
    }
    const nf4 = Nf4Linear.fromWeight(
      dense.weight.dataSync() as Float32Array,
      dense.inFeatures,
      dense.outFeatures,
      opts,
    );
    if (module instanceof LoraLinear) module.base = nf4;
    else model.setLinear(name, nf4);
    dense.dispose();
    report.quantized.push(name);
    report.parameters += dense.inFeatures * dense.outFeatures;
    report.storedBytes += nf4.storedBytes();
  }
  report.bytesPerParameter = report.storedBytes / report.parameters;
  return report;
}
