import * as tf from '@tensorflow/tfjs';
import { onWebGPU, softmaxCrossEntropyWebGPU } from './webgpu-kernels.js';

/** Kernel name of the fused row-wise softmax cross-entropy (registered for wasm with the native addon). */
export const SOFTMAX_CE_KERNEL = 'HyperllamaSoftmaxCrossEntropy';

/** True while tfjs records operations for a gradient (inside `tf.grads`, `tf.variableGrads`, …). */
export function isRecordingGradients(): boolean {
  // tfjs itself reads this field to decide whether fused kernels may be used (see `shouldFuse` in tfjs-core).
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

/**
 * Row-wise softmax cross-entropy and its gradient with respect to the logits, in one pass and without autograd:
 * logits [n, C], targets int32 [n] (a target outside [0, C) is ignored: loss 0, gradient 0), weights [n] →
 * losses [n] = w·(logsumexp(row) − row[target]) and dlogits [n, C] = w·(softmax(row) − onehot(target)).
 * Uses the native kernel when the backend has one, our WGSL kernels on webgpu, else composed tfjs ops. With `overwriteLogits` the native kernel
 * writes dlogits over the logits (saving one [n, C] buffer): the logits must not be read again.
 */
export function softmaxCrossEntropyWithGrad(
  logits: tf.Tensor2D,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
  opts: { overwriteLogits?: boolean } = {},
): { losses: tf.Tensor1D; dlogits: tf.Tensor2D } {
  if (tf.getKernel(SOFTMAX_CE_KERNEL, tf.getBackend())) {
    const attrs = { overwriteLogits: opts.overwriteLogits ?? false };
    const [losses, dlogits] = tf
      .engine()
      .runKernel(SOFTMAX_CE_KERNEL, { logits, targets, weights }, attrs) as tf.Tensor[];
    return { losses: losses as tf.Tensor1D, dlogits: dlogits as tf.Tensor2D };
  }
  if (onWebGPU()) return softmaxCrossEntropyWebGPU(logits, targets, weights);
  return tf.tidy(() => {
    const C = logits.shape[1];
    const valid = tf.logicalAnd(tf.greaterEqual(targets, 0), tf.less(targets, C)); // [n]
    const w = tf.where(valid, weights, tf.zerosLike(weights)); // [n]
    const shifted = tf.sub(logits, tf.max(logits, 1, true)); // [n, C]
    const exp = tf.exp(shifted);
    const sum = tf.sum(exp, 1, true); // [n, 1]
    const onehot = tf.oneHot(tf.where(valid, targets, tf.zerosLike(targets)), C, 1, 0, 'float32'); // [n, C]
    const picked = tf.sum(tf.mul(shifted, onehot), 1); // [n]
    const losses = tf.mul(tf.sub(tf.reshape(tf.log(sum), [-1]), picked), w) as tf.Tensor1D;
    const dlogits = tf.mul(tf.sub(tf.div(exp, sum), onehot), tf.reshape(w, [-1, 1])) as tf.Tensor2D;
    return { losses, dlogits };
  });
}

export interface LinearCrossEntropyOptions {
  /** The weight is stored [V, D] (e.g. a tied embedding table) instead of [D, V]. */
  transposed?: boolean;
  /** Rows of logits computed at once (default: about 16M logits, 64 MB, per chunk: BLAS runs ~1.6x faster on
   *  524 rows than on 131, for two such buffers at a time). */
  chunkRows?: number;
}

/**
 * Σᵢ weightsᵢ · CE(softmax(hᵢ · W), targetsᵢ) over the rows of h [N, D], with W [D, V] ([V, D] when `transposed`),
 * computed chunk by chunk so that the [N, V] logits never exist at once. Targets outside [0, V) (e.g. -100) are
 * ignored. While a gradient is being recorded, the gradients for h — and for W, unless it is a frozen (non-trainable)
 * Variable — are computed in the same pass and kept instead of the logits; the backward pass only scales them.
 * → a scalar (the weighted sum; divide by the weights' sum for a mean).
 */
export function linearCrossEntropy(
  h: tf.Tensor2D,
  weight: tf.Tensor2D,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
  opts: LinearCrossEntropyOptions = {},
): tf.Scalar {
  const [N, D] = h.shape;
  const transposed = opts.transposed ?? false;
  const V = transposed ? weight.shape[0] : weight.shape[1];
  const chunk = Math.max(1, opts.chunkRows ?? Math.floor(16_777_216 / V));
  if (N === 0) return tf.scalar(0);
  const targetsI = targets.dtype === 'int32' ? targets : (tf.cast(targets, 'int32') as tf.Tensor1D);

  /** Runs every chunk; `each` receives the chunk's rows, its loss and dlogits (all disposed after it returns). */
  const sweep = (w: tf.Tensor2D, each?: (hc: tf.Tensor2D, dlogits: tf.Tensor2D) => void): tf.Scalar => {
    let total = tf.scalar(0);
    for (let start = 0; start < N; start += chunk) {
      const n = Math.min(chunk, N - start);
      const next = tf.tidy(() => {
        const hc = tf.slice(h, [start, 0], [n, D]); // [n, D]
        const logits = tf.matMul(hc, w, false, transposed); // [n, V]
        // The chunk's logits are not used again: their memory can hold the gradient.
        const { losses, dlogits } = softmaxCrossEntropyWithGrad(
          logits as tf.Tensor2D,
          tf.slice(targetsI, [start], [n]),
          tf.slice(weights, [start], [n]),
          {
            overwriteLogits: true,
          },
        );
        each?.(hc, dlogits);
        return tf.add(total, tf.sum(losses)) as tf.Scalar;
      });
      total.dispose();
      total = next;
    }
    return total;
  };

  const frozen = weight instanceof tf.Variable && !weight.trainable;
  let result: tf.Scalar;
  if (!isRecordingGradients()) {
    result = sweep(weight);
  } else if (frozen) {
    // W takes no gradient: it is captured, not an input of the custom op.
    result = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const save = args[1] as tf.GradSaveFunc;
      const dh: tf.Tensor[] = [];
      const value = sweep(weight, (_, dlogits) => dh.push(tf.keep(tf.matMul(dlogits, weight, false, !transposed)))); // [n, D]
      const dhAll = tf.concat(dh, 0); // [N, D]
      tf.dispose(dh);
      save([dhAll]);
      return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy, saved[0])] };
    })(h) as tf.Scalar;
  } else {
    result = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const save = args[2] as tf.GradSaveFunc;
      const dh: tf.Tensor[] = [];
      let dw: tf.Tensor = tf.zerosLike(weight);
      const value = sweep(weight, (hc, dlogits) => {
        dh.push(tf.keep(tf.matMul(dlogits, weight, false, !transposed))); // [n, D]
        const part = transposed ? tf.matMul(dlogits, hc, true, false) : tf.matMul(hc, dlogits, true, false); // [V, D] or [D, V]
        const sum = tf.keep(tf.add(dw, part));
        dw.dispose();
        dw = sum;
      });
      const dhAll = tf.concat(dh, 0); // [N, D]
      tf.dispose(dh);
      // The running sum was kept through the chunks' scopes; an unkept copy leaves its disposal to the tape (a kept
      // one leaked a [V, D] tensor every step).
      const dwAll = tf.clone(dw);
      dw.dispose();
      save([dhAll, dwAll]);
      return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy, saved[0]), tf.mul(dy, saved[1])] };
    })(h, weight) as tf.Scalar;
  }
  if (targetsI !== targets) targetsI.dispose();
  return result;
}
