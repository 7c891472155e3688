import * as tf from '@tensorflow/tfjs';
import { IGNORE_INDEX, linearCrossEntropy } from '@hyperllama/runtime';
import { DenseLinear } from './linear.js';
import type { LlamaModel } from './model.js';

/** The LM head as one weight, when it is one: the tied embedding [V, D], or an unwrapped dense lm_head [D, V]. */
function plainHead(model: LlamaModel): { weight: tf.Tensor2D; transposed: boolean } | undefined {
  if (model.config.tieWordEmbeddings) return { weight: model.embedTokens, transposed: true };
  const head = model.getLinear('lm_head');
  return head instanceof DenseLinear ? { weight: head.weight, transposed: false } : undefined;
}

/**
 * Causal LM loss as Hugging Face `LlamaForCausalLM` computes it: labels are aligned with the inputs and shifted
 * inside (position t predicts labels[t+1]); the mean cross-entropy over labels ≠ -100 (0 when there are none).
 * hidden [B, T, D] (from `forward({ returnHidden: true })`), labels int32 [B, T].
 * The head runs over chunks of `chunkRows` rows so the [B·T, V] logits never exist at once; with a plain head
 * weight this is the runtime's fused `linearCrossEntropy` (gradients computed chunk by chunk in the same pass).
 */
export function lmLoss(
  model: LlamaModel,
  hidden: tf.Tensor3D,
  labels: tf.Tensor2D,
  opts: { chunkRows?: number; training?: boolean } = {},
): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, D] = hidden.shape;
    const V = model.config.vocabSize;
    if (T < 2) return tf.scalar(0);
    const N = B * (T - 1);
    const h = tf.reshape(tf.slice(hidden, [0, 0, 0], [B, T - 1, D]), [N, D]) as tf.Tensor2D; // [N, D]
    const y = tf.reshape(tf.slice(tf.cast(labels, 'int32'), [0, 1], [B, T - 1]), [N]) as tf.Tensor1D; // [N]
    const valid = tf.cast(tf.notEqual(y, IGNORE_INDEX), 'float32') as tf.Tensor1D; // [N]
    const chunk = Math.max(1, opts.chunkRows ?? Math.floor(4_194_304 / V));
    const head = plainHead(model);
    let total: tf.Scalar;
    if (head) {
      // The runtime's default chunk (16M logits) keeps BLAS efficient; the wrapped path below keeps its logits for
      // autograd, so it takes smaller chunks.
      total = linearCrossEntropy(h, head.weight, y, valid, { transposed: head.transposed, chunkRows: opts.chunkRows });
    } else {
      // A wrapped head (e.g. LoRA on lm_head): the module's own forward, chunk by chunk.
      const target = tf.where(tf.cast(valid, 'bool'), y, tf.zerosLike(y)); // [N]
      total = tf.scalar(0);
      for (let start = 0; start < N; start += chunk) {
        const n = Math.min(chunk, N - start);
        const logits = model.logitsFromHidden(tf.slice(h, [start, 0], [n, D]), opts); // [n, V]
        const picked = tf.sum(tf.mul(logits, tf.oneHot(tf.slice(target, [start], [n]), V, 1, 0, 'float32')), 1); // [n]
        const rowLoss = tf.sub(tf.logSumExp(logits, 1), picked); // [n]
        total = tf.add(total, tf.sum(tf.mul(rowLoss, tf.slice(valid, [start], [n]))));
      }
    }
    return tf.div(total, tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
  });
}
