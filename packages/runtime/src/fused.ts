import { envVar } from './platform.js';
import * as tf from '@tensorflow/tfjs';
import { onWebGPU, rmsNormWebGPU, swigluWebGPU } from './webgpu-kernels.js';

/**
 * Ops of a transformer layer with hand-written gradients that keep less for the backward pass than autograd does
 * (autograd keeps the inputs of every elementary op: RMSNorm alone kept four [N, D] tensors, RoPE a dozen). Each
 * saves only what its gradient formula needs; the results equal the composed ops' to float32 rounding. Inputs that
 * are constants of the computation (RoPE tables, additive masks) are captured rather than differentiated (and saved
 * when the gradient needs them). Each backward formula runs in its own tf.tidy: tfjs calls custom gradients outside
 * any scope, so their temporaries would otherwise live until the whole backward pass ends.
 */

type Save = tf.GradSaveFunc;
const saveOf = (args: Array<tf.Tensor | Save>): Save => args[args.length - 1] as Save;

/** `HYPERLLAMA_FUSED_OPS=0` runs the plain composed ops instead (to measure what these save). */
const composed = (): boolean => envVar('HYPERLLAMA_FUSED_OPS') === '0';
/** WebGPU's default maxComputeWorkgroupsPerDimension: the one-workgroup-per-row kernels take at most this many rows. */
const MAX_WORKGROUPS = 65535;

/**
 * RMSNorm as Hugging Face Llama computes it: x / sqrt(mean(x²) + eps) · w. x [N, D], w [D] → [N, D].
 * Saves x and the [N, 1] reciprocal RMS (on webgpu: one WGSL kernel forward, and the backward recomputes the RMS).
 */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  if (composed())
    return tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), weight));
  const rstdOf = (xs: tf.Tensor) => tf.rsqrt(tf.add(tf.mean(tf.square(xs), -1, true), eps)); // [N, 1]
  const gradient = (dy: tf.Tensor, xs: tf.Tensor, ws: tf.Tensor, r: tf.Tensor) =>
    tf.tidy(() => {
      const xhat = tf.mul(xs, r); // [N, D]
      const g = tf.mul(dy, ws); // dL/dxhat
      const D = xs.shape[xs.rank - 1];
      // dx = rstd · (g − xhat · mean(g · xhat))
      const dx = tf.mul(r, tf.sub(g, tf.mul(xhat, tf.div(tf.sum(tf.mul(g, xhat), -1, true), D))));
      const dw = tf.sum(tf.mul(dy, xhat), 0);
      return [dx, dw];
    });
  const op = tf.customGrad((...args: Array<tf.Tensor | Save>) => {
    const [xIn, wIn] = args as [tf.Tensor2D, tf.Tensor1D];
    if (onWebGPU() && xIn.shape[0] <= MAX_WORKGROUPS) {
      // One kernel forward; the backward recomputes the [N, 1] reciprocal RMS rather than launching it here.
      saveOf(args)([xIn, wIn]);
      return {
        value: rmsNormWebGPU(xIn, wIn, eps),
        gradFunc: (dy: tf.Tensor, [xs, ws]: tf.Tensor[]) => tf.tidy(() => gradient(dy, xs, ws, rstdOf(xs))),
      };
    }
    const rstd = rstdOf(xIn);
    saveOf(args)([xIn, wIn, rstd]);
    return {
      value: tf.mul(tf.mul(xIn, rstd), wIn),
      gradFunc: (dy: tf.Tensor, [xs, ws, r]: tf.Tensor[]) => gradient(dy, xs, ws, r),
    };
  });
  return op(x, weight) as tf.Tensor2D;
}

/** SwiGLU's gating: silu(gate) · up, gate and up [N, F] → [N, F]. Saves gate and up. */
export function swiglu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  if (composed()) return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));
  const op = tf.customGrad((...args: Array<tf.Tensor | Save>) => {
    const [g, u] = args as [tf.Tensor2D, tf.Tensor2D];
    saveOf(args)([g, u]);
    return {
      value: onWebGPU() ? swigluWebGPU(g, u) : tf.mul(tf.mul(g, tf.sigmoid(g)), u),
      gradFunc: (dy: tf.Tensor, [gs, us]: tf.Tensor[]) =>
        tf.tidy(() => {
          const s = tf.sigmoid(gs);
          const silu = tf.mul(gs, s);
          // d silu / dg = s · (1 + g · (1 − s))
          const dsilu = tf.mul(s, tf.add(1, tf.mul(gs, tf.sub(1, s))));
          return [tf.mul(tf.mul(dy, us), dsilu), tf.mul(dy, silu)];
        }),
    };
  });
  return op(gate, up) as tf.Tensor2D;
}

/** [-x2, x1] over the two halves of the last axis (Hugging Face's rotate_half). */
function rotateHalf(x: tf.Tensor): tf.Tensor {
  const half = x.shape[x.rank - 1] / 2;
  const [x1, x2] = tf.split(x, [half, half], -1);
  return tf.concat([tf.neg(x2), x1], -1);
}

/**
 * rotate_half as a product with a signed permutation: x·R, R [hd, hd] with R[j + hd/2, j] = −1 and R[j, j + hd/2] = 1
 * (its transpose undoes it). One matMul instead of split, neg and concat, which are slow on wasm.
 */
function rotateHalfByMatMul(x: tf.Tensor, transpose = false): tf.Tensor {
  const hd = x.shape[x.rank - 1];
  const half = hd / 2;
  const r = new Float32Array(hd * hd); // [hd, hd]
  for (let j = 0; j < half; j++) {
    r[(j + half) * hd + j] = -1;
    r[j * hd + j + half] = 1;
  }
  const rows = tf.reshape(x, [-1, hd]);
  return tf.reshape(tf.matMul(rows, tf.tensor2d(r, [hd, hd]), false, transpose), x.shape);
}

/**
 * Rotary position embedding, rotate_half convention: x·cos + rotate_half(x)·sin. x [B, H, T, hd], cos and sin
 * broadcastable to x (e.g. [B, 1, T, hd]; constants, not differentiated). Saves nothing but the tables: the
 * gradient is the inverse rotation dy·cos + rotate_halfᵀ(dy·sin). rotate_half runs as a matMul (see below).
 */
export function rotaryEmbedding(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  if (composed()) return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)));
  const op = tf.customGrad((...args: Array<tf.Tensor | Save>) => {
    const xIn = args[0] as tf.Tensor4D;
    saveOf(args)([cos, sin]); // kept for the backward pass (the caller may dispose its own references)
    return {
      value: tf.add(tf.mul(xIn, cos), tf.mul(rotateHalfByMatMul(xIn), sin)),
      gradFunc: (dy: tf.Tensor, [c, s]: tf.Tensor[]) =>
        tf.tidy(() => [tf.add(tf.mul(dy, c), rotateHalfByMatMul(tf.mul(dy, s), true))]),
    };
  });
  return op(x) as tf.Tensor4D;
}

/**
 * Attention probabilities softmax(scores + mask) over the last axis. scores [..., T, S], mask additive and
 * broadcastable to scores (a constant, not differentiated). Saves only the probabilities.
 */
export function maskedSoftmax(scores: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  if (composed()) return tf.tidy(() => tf.softmax(tf.add(scores, mask)));
  const op = tf.customGrad((...args: Array<tf.Tensor | Save>) => {
    const probs = tf.softmax(tf.add(args[0] as tf.Tensor, mask));
    saveOf(args)([probs]);
    return {
      value: probs,
      // d scores = p · (dy − Σ dy·p)
      gradFunc: (dy: tf.Tensor, [p]: tf.Tensor[]) =>
        tf.tidy(() => [tf.mul(p, tf.sub(dy, tf.sum(tf.mul(dy, p), -1, true)))]),
    };
  });
  return op(scores);
}
