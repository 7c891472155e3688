import * as tf from '@tensorflow/tfjs';
import { rotaryEmbedding } from '@hyperllama/runtime';
import { ModelError } from './errors.js';

/**
 * RoPE scaling of a Hugging Face `config.json` (`rope_scaling`), in camelCase. Every type changes the inverse
 * frequencies; `yarn` also scales cos and sin (its attention factor). `type: 'default'` in a config is no scaling.
 * - `linear`: every frequency divided by `factor` (position interpolation).
 * - `dynamic`: NTK-aware; while the sequence (max position id + 1 of the call) is longer than
 *   `max_position_embeddings`, the base grows to theta·(factor·seqLen/max − (factor − 1))^(d/(d−2)).
 * - `llama3`: Llama 3.1's smoothing: wavelengths above original/lowFreqFactor divided by `factor`, below
 *   original/highFreqFactor kept, between them interpolated.
 * - `yarn`: interpolation and extrapolation mixed by a linear ramp between the dimensions where the original context
 *   makes betaFast and betaSlow rotations; cos and sin times the attention factor (0.1·mscale·ln(factor) + 1).
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  | {
      type: 'yarn';
      factor: number;
      /** Default: the config's `max_position_embeddings`. */
      originalMaxPositionEmbeddings?: number;
      /** Default: from `mscale` and `mscaleAllDim`, else 0.1·ln(factor) + 1. */
      attentionFactor?: number;
      betaFast?: number;
      betaSlow?: number;
      mscale?: number;
      mscaleAllDim?: number;
      /** Round the ramp's ends to whole dimensions (default true). */
      truncate?: boolean;
    };

export const ROPE_SCALING_TYPES = ['default', 'linear', 'dynamic', 'llama3', 'yarn'] as const;

/** What the RoPE frequencies depend on: the config's fields (a {@link LlamaConfig} has them all). */
export interface RopeConfig {
  headDim: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  ropeScaling?: RopeScaling;
}

/** Inverse frequencies (head_dim/2 of them, float32 values) and the factor cos and sin are multiplied by. */
export interface RopeFrequencies {
  invFreq: Float32Array;
  attentionScaling: number;
}

/**
 * The RoPE inverse frequencies of a config, as Hugging Face's `ROPE_INIT_FUNCTIONS` compute them (in float64, rounded
 * to float32). `seqLen` (max position id + 1 of the current call) matters only for `dynamic`: at most
 * `maxPositionEmbeddings` gives the unscaled frequencies.
 */
export function ropeFrequencies(c: RopeConfig, seqLen?: number): RopeFrequencies {
  const d = c.headDim;
  const half = d / 2;
  const base = (theta: number) => Array.from({ length: half }, (_, i) => 1 / Math.pow(theta, (2 * i) / d));
  const s = c.ropeScaling;
  let inv: number[];
  let attentionScaling = 1;
  if (!s) inv = base(c.ropeTheta);
  else if (s.type === 'linear') inv = base(c.ropeTheta).map((f) => f / s.factor);
  else if (s.type === 'dynamic') {
    const max = c.maxPositionEmbeddings;
    const len = seqLen !== undefined && seqLen > max ? seqLen : max;
    inv = base(c.ropeTheta * Math.pow((s.factor * len) / max - (s.factor - 1), d / (d - 2)));
  } else if (s.type === 'llama3') {
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    inv = base(c.ropeTheta).map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f; // high frequencies: kept
      if (wavelen > lowWavelen) return f / s.factor; // low frequencies: interpolated
      const smooth =
        (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return (1 - smooth) * (f / s.factor) + smooth * f;
    });
  } else if (s.type === 'yarn') {
    const original = s.originalMaxPositionEmbeddings ?? c.maxPositionEmbeddings;
    const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
    attentionScaling =
      s.attentionFactor ??
      (s.mscale && s.mscaleAllDim ? mscale(s.factor, s.mscale) / mscale(s.factor, s.mscaleAllDim) : mscale(s.factor));
    // The dimension (of d) at which the original context makes `rotations` full turns.
    const dimAt = (rotations: number) =>
      (d * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(c.ropeTheta));
    const truncate = s.truncate ?? true;
    let low = dimAt(s.betaFast ?? 32);
    let high = dimAt(s.betaSlow ?? 1);
    if (truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
    low = Math.max(low, 0);
    high = Math.min(high, d - 1);
    if (low === high) high += 0.001; // no zero-width ramp
    inv = base(c.ropeTheta).map((f, i) => {
      const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
      const extrapolation = 1 - ramp; // weight of the unscaled frequency
      return (f / s.factor) * (1 - extrapolation) + f * extrapolation;
    });
  } else {
    throw new ModelError(
      'UNSUPPORTED_ROPE_SCALING',
      `rope scaling type ${JSON.stringify((s as { type: unknown }).type)} is not supported`,
      {
        field: 'ropeScaling.type',
        expected: ROPE_SCALING_TYPES,
        actual: (s as { type: unknown }).type,
      },
    );
  }
  return { invFreq: Float32Array.from(inv), attentionScaling };
}

/** How {@link ropeCosSin} scales: the config's scaling and, for `dynamic`, the call's sequence length. */
export interface RopeOptions {
  scaling?: RopeScaling;
  maxPositionEmbeddings?: number;
  /** Max position id + 1 of this call; `dynamic` reads it from the position ids when missing. */
  seqLen?: number;
}

/**
 * cos and sin of the RoPE angles for the given positions, Hugging Face style: frequency i of head_dim/2 is
 * theta^(-2i/headDim) (changed by `rope.scaling`, {@link ropeFrequencies}) and the table is duplicated over the two
 * halves of a head; both are multiplied by the scaling's attention factor (yarn). Computed in float32 like HF.
 * positionIds [B, T] → cos, sin [B, 1, T, headDim] (broadcast over heads).
 */
export function ropeCosSin(
  positionIds: tf.Tensor2D,
  theta: number,
  headDim: number,
  rope: RopeOptions = {},
): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  const scaling = rope.scaling;
  if (scaling && (scaling.type === 'dynamic' || (scaling.type === 'yarn' && !scaling.originalMaxPositionEmbeddings)))
    if (!(rope.maxPositionEmbeddings && rope.maxPositionEmbeddings > 0))
      throw new ModelError('BAD_CONFIG', `rope scaling "${scaling.type}" needs maxPositionEmbeddings`, {
        field: 'maxPositionEmbeddings',
        actual: rope.maxPositionEmbeddings,
      });
  let seqLen = rope.seqLen;
  if (scaling?.type === 'dynamic' && seqLen === undefined) {
    // Only dynamic NTK depends on the length; reading the largest position id is a sync read, so only then.
    const max = tf.max(positionIds);
    seqLen = max.dataSync()[0] + 1;
    max.dispose();
  }
  const { invFreq, attentionScaling } = ropeFrequencies(
    { headDim, ropeTheta: theta, maxPositionEmbeddings: rope.maxPositionEmbeddings ?? 0, ropeScaling: scaling },
    seqLen,
  );
  return tf.tidy(() => {
    const [B, T] = positionIds.shape;
    const angles = tf.mul(tf.reshape(tf.cast(positionIds, 'float32'), [B, T, 1]), tf.tensor1d(invFreq)); // [B, T, half]
    const full = tf.reshape(tf.concat([angles, angles], 2), [B, 1, T, headDim]);
    if (attentionScaling === 1) return { cos: tf.cos(full) as tf.Tensor4D, sin: tf.sin(full) as tf.Tensor4D };
    return {
      cos: tf.mul(tf.cos(full), attentionScaling) as tf.Tensor4D,
      sin: tf.mul(tf.sin(full), attentionScaling) as tf.Tensor4D,
    };
  });
}

/**
 * x·cos + rotate_half(x)·sin, where rotate_half([x1, x2]) = [-x2, x1] over the two halves of the last axis.
 * The runtime's op with its own gradient (the inverse rotation) keeps nothing of x for the backward pass.
 */
export function rotate(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return rotaryEmbedding(x, cos, sin);
}

/**
 * Rotary position embedding with the rotate_half convention of Hugging Face Llama.
 * x [B, H, T, headDim], positionIds int32 [B, T] → [B, H, T, headDim].
 */
export function applyRope(
  x: tf.Tensor4D,
  positionIds: tf.Tensor2D,
  theta: number,
  headDim: number,
  rope: RopeOptions = {},
): tf.Tensor4D {
  return tf.tidy(() => {
    const { cos, sin } = ropeCosSin(positionIds, theta, headDim, rope);
    return rotate(x, cos, sin);
  });
}
