import * as tf from '@tensorflow/tfjs';
import type { LlamaModel } from './model.js';

/** Label value that takes no part in the loss (as in Hugging Face). */
export const IGNORE_INDEX = -100;

/**
 * Causal LM loss as Hugging Face `LlamaForCausalLM` computes it: labels are aligned with the inputs and shifted
 * inside (position t predicts labels[t+1]); the mean cross-entropy over labels ≠ -100 (0 when there are none).
 * hidden [B, T, D] (from `forward({ returnHidden: true })`), labels int32 [B, T].
 * The LM head runs over chunks of `chunkRows` rows, so inference-time evaluation never holds all [B·T, V] logits.
 */
export function lmLoss(model: LlamaModel, hidden: tf.Tensor3D, labels: tf.Tensor2D, opts: { chunkRows?: number; training?: boolean } = {}): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, D] = hidden.shape;
    const V = model.config.vocabSize;
    if (T < 2) return tf.scalar(0);
    const h = tf.reshape(tf.slice(hidden, [0, 0, 0], [B, T - 1, D]), [B * (T - 1), D]) as tf.Tensor2D; // [N, D]
    const y = tf.reshape(tf.slice(tf.cast(labels, 'int32'), [0, 1], [B, T - 1]), [-1]) as tf.Tensor1D; // [N]
    const valid = tf.cast(tf.notEqual(y, IGNORE_INDEX), 'float32'); // [N]
    const target = tf.where(tf.cast(valid, 'bool'), y, tf.zerosLike(y)); // [N]
    const N = B * (T - 1);
    const chunk = Math.max(1, opts.chunkRows ?? Math.floor(4_194_304 / V));
    let total: tf.Scalar = tf.scalar(0);
    for (let start = 0; start < N; start += chunk) {
      const n = Math.min(chunk, N - start);
      const logits = model.logitsFromHidden(tf.slice(h, [start, 0], [n, D]), opts); // [n, V]
      const picked = tf.sum(tf.mul(logits, tf.oneHot(tf.slice(target, [start], [n]), V, 1, 0, 'float32')), 1); // [n]
      const rowLoss = tf.sub(tf.logSumExp(logits, 1), picked); // [n]
      total = tf.add(total, tf.sum(tf.mul(rowLoss, tf.slice(valid, [start], [n]))));
    }
    return tf.div(total, tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
  });
}
