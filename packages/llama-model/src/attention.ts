import * as tf from '@tensorflow/tfjs';
import { FUSED_ATTENTION_MAX_KEYS, attentionWebGPU, maskedSoftmax, maxKernelTensorBytes } from '@hyperllama/runtime';

/** Additive mask value for a hidden key: finite, so a row with every key hidden gives no NaN; exp of it underflows to exactly 0 in float32. */
export const MASK_VALUE = -1e9;

/**
 * Attention scores with grouped-query heads, without repeating K: the g = H / nKv query heads that share a KV head
 * are laid out as one [g·T] block, so this is one batched matMul over B·nKv.
 * q [B, H, T, hd] (already scaled by 1/√hd), k [B, nKv, S, hd] → [B, H, T, S].
 */
export function attentionScores(q: tf.Tensor4D, k: tf.Tensor4D): tf.Tensor4D {
  const [B, H, T, hd] = q.shape;
  const [, nKv, S] = k.shape;
  const q3 = tf.reshape(q, [B * nKv, (H / nKv) * T, hd]);
  const k3 = tf.reshape(k, [B * nKv, S, hd]);
  return tf.reshape(tf.matMul(q3, k3, false, true), [B, H, T, S]);
}

/** Attention-weighted values: probs [B, H, T, S], v [B, nKv, S, hd] → [B, H, T, hd]. */
export function attentionValues(probs: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D {
  const [B, H, T, S] = probs.shape;
  const [, nKv, , hd] = v.shape;
  const p3 = tf.reshape(probs, [B * nKv, (H / nKv) * T, S]);
  const v3 = tf.reshape(v, [B * nKv, S, hd]);
  return tf.reshape(tf.matMul(p3, v3), [B, H, T, hd]);
}

/**
 * Scaled dot-product attention. q [B, H, T, hd], k and v [B, nKv, S, hd], mask additive [B|1, 1, T, S]
 * → [B·T, H·hd] (tokens flattened for the output projection). When the [B, H, T, S] scores would exceed what the
 * backend lets one kernel hold (webgpu's storage-buffer limit), the query rows are processed in chunks.
 */
export function attend(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor2D {
  const [B, H, T, hd] = q.shape;
  const S = k.shape[2];
  const scaled = tf.mul(q, 1 / Math.sqrt(hd)) as tf.Tensor4D;
  if (tf.getBackend() === 'webgpu' && S <= FUSED_ATTENTION_MAX_KEYS && B * H * T <= MAX_WORKGROUPS) {
    return toTokens(fusedAttention(scaled, k, v, mask));
  }
  const rowsPerChunk = Math.max(1, Math.floor(maxKernelTensorBytes() / (4 * B * H * S)));
  const chunks: tf.Tensor4D[] = [];
  for (let t0 = 0; t0 < T; t0 += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, T - t0);
    const qc = n === T ? scaled : (tf.slice(scaled, [0, 0, t0, 0], [B, H, n, hd]) as tf.Tensor4D);
    const mc = n === T ? mask : (tf.slice(mask, [0, 0, t0, 0], [mask.shape[0], 1, n, S]) as tf.Tensor4D);
    const probs = maskedSoftmax(attentionScores(qc, k), mc) as tf.Tensor4D; // [B, H, n, S]; keeps only the probabilities
    chunks.push(attentionValues(probs, v)); // [B, H, n, hd]
  }
  const out = chunks.length === 1 ? chunks[0] : (tf.concat(chunks, 2) as tf.Tensor4D); // [B, H, T, hd]
  return toTokens(out);
}

/** [B, H, T, hd] → [B·T, H·hd]; one token (decoding) needs no transpose, its layout is the same. */
function toTokens(out: tf.Tensor4D): tf.Tensor2D {
  const [B, H, T, hd] = out.shape;
  return tf.reshape(T === 1 ? out : tf.transpose(out, [0, 2, 1, 3]), [B * T, H * hd]);
}

/** WebGPU's default maxComputeWorkgroupsPerDimension: the fused kernel runs one workgroup per query row. */
const MAX_WORKGROUPS = 65535;

/**
 * softmax(q·kᵀ + mask)·v as one webgpu kernel (q already scaled), with the gradient recomputing the probabilities
 * (nothing [T, S]-sized is kept between the passes). Shapes as {@link attend}'s; → [B, H, T, hd].
 */
function fusedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor4D {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [qi, ki, vi] = args as tf.Tensor4D[];
    (args[3] as tf.GradSaveFunc)([qi, ki, vi, mask]); // the mask is a captured constant: saved, so it outlives the layer
    return {
      value: attentionWebGPU(qi, ki, vi, mask),
      gradFunc: (dy: tf.Tensor, [qs, ks, vs, ms]: tf.Tensor[]) =>
        tf.tidy(() => {
          const [B, H, T, hd] = qs.shape;
          const [, nKv, S] = ks.shape;
          const rows = [B * nKv, (H / nKv) * T]; // a KV head's query heads as one block, as in attentionScores
          const p = tf.reshape(tf.softmax(tf.add(attentionScores(qs as tf.Tensor4D, ks as tf.Tensor4D), ms)), [
            ...rows,
            S,
          ]);
          const dy3 = tf.reshape(dy, [...rows, hd]);
          const [q3, k3, v3] = [
            tf.reshape(qs, [...rows, hd]),
            tf.reshape(ks, [B * nKv, S, hd]),
            tf.reshape(vs, [B * nKv, S, hd]),
          ];
          const dp = tf.matMul(dy3, v3, false, true); // [B·nKv, g·T, S]
          const ds = tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true)));
          return [
            tf.reshape(tf.matMul(ds, k3), [B, H, T, hd]),
            tf.reshape(tf.matMul(ds, q3, true, false), [B, nKv, S, hd]),
            tf.reshape(tf.matMul(p, dy3, true, false), [B, nKv, S, hd]),
          ];
        }),
    };
  });
  return op(q, k, v) as tf.Tensor4D;
}

/**
 * The standard decoder mask for T new tokens after `pastLength` earlier keys (prefix and/or cache): key j is
 * visible to query i when j ≤ pastLength + i, and, when `attentionMask` [B, S] (1 = real, 0 = padding) is given,
 * when that key is not padding. → additive [B|1, 1, T, S] with S = pastLength + T.
 */
export function causalMask(T: number, pastLength: number, attentionMask?: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const S = pastLength + T;
    const causal = new Float32Array(T * S);
    for (let i = 0; i < T; i++) for (let j = pastLength + i + 1; j < S; j++) causal[i * S + j] = MASK_VALUE;
    const mask = tf.tensor4d(causal, [1, 1, T, S]);
    return attentionMask ? addPaddingMask(mask, attentionMask) : mask;
  });
}

/** mask [B|1, 1, T, S] + MASK_VALUE where attentionMask [B, S] is 0. */
export function addPaddingMask(mask: tf.Tensor4D, attentionMask: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, S] = attentionMask.shape;
    const padding = tf.mul(tf.sub(1, tf.cast(attentionMask, 'float32')), MASK_VALUE);
    return tf.add(mask, tf.reshape(padding, [B, 1, 1, S])) as tf.Tensor4D;
  });
}
