import * as tf from '@tensorflow/tfjs';

/**
 * Our own WGSL kernels for the webgpu backend, run through tfjs-backend-webgpu's program interface: the backend
 * declares the bindings (`result`, one storage array per input name, a `uniforms` struct) and calls `main`; a program
 * supplies the body. Each replaces several tfjs kernel launches (and their intermediate tensors) with one.
 */

interface WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms?: string;
  size?: boolean;
  getUserCode(): string;
}
interface WebGPUBackendLike {
  runWebGPUProgram(
    program: WebGPUProgram,
    inputs: tf.TensorInfo[],
    dtype: tf.DataType,
    uniforms?: Array<{ type: string; data: number[] }>,
  ): tf.TensorInfo;
}

/** Whether the webgpu backend is active (the kernels here run only there). */
export function onWebGPU(): boolean {
  return tf.getBackend() === 'webgpu';
}

function run(program: WebGPUProgram, inputs: tf.Tensor[], uniforms?: Array<{ type: string; data: number[] }>) {
  const backend = tf.backend() as unknown as WebGPUBackendLike;
  const info = backend.runWebGPUProgram(program, inputs, 'float32', uniforms);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** Lanes of one RMSNorm workgroup (a power of two): one workgroup normalises one row. */
const RMS_LANES = 64;

/**
 * RMSNorm in one launch: x [N, D], w [D] → x · rsqrt(mean(x²) + eps) · w. Each workgroup sums one row's squares in
 * workgroup memory (a tree over {@link RMS_LANES} lanes), then scales the row.
 */
export function rmsNormWebGPU(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  const [N, D] = x.shape;
  const program: WebGPUProgram = {
    variableNames: ['x', 'w'],
    outputShape: [N, D],
    shaderKey: `hyperllama_rmsnorm_${RMS_LANES}`,
    dispatchLayout: { x: [0], y: [1] },
    dispatch: [N, 1, 1],
    workgroupSize: [RMS_LANES, 1, 1],
    uniforms: 'eps : f32,',
    getUserCode: () => `
      var<workgroup> partial : array<f32, ${RMS_LANES}>;
      fn main() {
        let row = i32(workgroupId.x);
        let lane = i32(localId.x);
        let d = uniforms.xShape.y;
        let base = row * d;
        var s = 0.0;
        for (var j = lane; j < d; j = j + ${RMS_LANES}) {
          let v = x[base + j];
          s = s + v * v;
        }
        partial[lane] = s;
        workgroupBarrier();
        for (var stride = ${RMS_LANES / 2}; stride > 0; stride = stride / 2) {
          if (lane < stride) {
            partial[lane] = partial[lane] + partial[lane + stride];
          }
          workgroupBarrier();
        }
        let r = inverseSqrt(partial[0] / f32(d) + uniforms.eps);
        for (var j = lane; j < d; j = j + ${RMS_LANES}) {
          result[base + j] = x[base + j] * r * w[j];
        }
      }`,
  };
  return run(program, [x, w], [{ type: 'float32', data: [eps] }]) as tf.Tensor2D;
}

/** Elements per SwiGLU invocation's workgroup. */
const SWIGLU_LANES = 64;

/** SwiGLU's gating in one launch: silu(gate) · up, elementwise, gate and up [N, F] → [N, F]. */
export function swigluWebGPU(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  const size = gate.size;
  const program: WebGPUProgram = {
    variableNames: ['g', 'u'],
    outputShape: [...gate.shape],
    shaderKey: 'hyperllama_swiglu',
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil(size / SWIGLU_LANES), 1, 1],
    workgroupSize: [SWIGLU_LANES, 1, 1],
    size: true,
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let a = g[index];
          result[index] = a / (1.0 + exp(-a)) * u[index];
        }
      }`,
  };
  return run(program, [gate, up]) as tf.Tensor2D;
}

/** Lanes of one attention workgroup, and the most keys its scores may hold in workgroup memory (8 KiB). */
const ATTN_LANES = 64;
export const FUSED_ATTENTION_MAX_KEYS = 2048;

/**
 * Attention for one query row per workgroup, in one launch: the scores against every key (q already scaled), the
 * additive mask, the softmax (in workgroup memory) and the weighted sum of the values. Grouped-query heads read
 * their shared KV head. q [B, H, T, hd], k and v [B, nKv, S, hd] with S ≤ {@link FUSED_ATTENTION_MAX_KEYS}, mask
 * [B|1, 1, T, S] → [B, H, T, hd].
 */
export function attentionWebGPU(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor4D {
  const [B, H, T] = q.shape;
  const program: WebGPUProgram = {
    variableNames: ['q', 'k', 'v', 'mask'],
    outputShape: [...q.shape],
    shaderKey: `hyperllama_attention_${ATTN_LANES}_${FUSED_ATTENTION_MAX_KEYS}`,
    dispatchLayout: { x: [0, 1, 2], y: [3] },
    dispatch: [B * H * T, 1, 1],
    workgroupSize: [ATTN_LANES, 1, 1],
    getUserCode: () => `
      var<workgroup> p : array<f32, ${FUSED_ATTENTION_MAX_KEYS}>;
      var<workgroup> red : array<f32, ${ATTN_LANES}>;
      fn reduce(lane : i32, isMax : bool) -> f32 {
        workgroupBarrier();
        for (var stride = ${ATTN_LANES / 2}; stride > 0; stride = stride / 2) {
          if (lane < stride) {
            let other = red[lane + stride];
            red[lane] = select(red[lane] + other, max(red[lane], other), isMax);
          }
          workgroupBarrier();
        }
        let r = red[0];
        workgroupBarrier();
        return r;
      }
      fn main() {
        let row = i32(workgroupId.x); // (b * H + h) * T + t
        let lane = i32(localId.x);
        let H = uniforms.qShape.y;
        let T = uniforms.qShape.z;
        let hd = uniforms.qShape.w;
        let nKv = uniforms.kShape.y;
        let S = uniforms.kShape.z;
        let t = row % T;
        let h = (row / T) % H;
        let b = row / (T * H);
        let kvBase = (b * nKv + h / (H / nKv)) * S * hd;
        let qBase = row * hd;
        let mBase = (select(0, b, uniforms.maskShape.x > 1) * T + t) * S;
        var m = -3.4e38;
        for (var j = lane; j < S; j = j + ${ATTN_LANES}) {
          var s = mask[mBase + j];
          for (var d = 0; d < hd; d = d + 1) {
            s = s + q[qBase + d] * k[kvBase + j * hd + d];
          }
          p[j] = s;
          m = max(m, s);
        }
        red[lane] = m;
        let top = reduce(lane, true);
        var l = 0.0;
        for (var j = lane; j < S; j = j + ${ATTN_LANES}) {
          let e = exp(p[j] - top);
          p[j] = e;
          l = l + e;
        }
        red[lane] = l;
        let total = reduce(lane, false);
        for (var d = lane; d < hd; d = d + ${ATTN_LANES}) {
          var o = 0.0;
          for (var j = 0; j < S; j = j + 1) {
            o = o + p[j] * v[kvBase + j * hd + d];
          }
          result[qBase + d] = o / total;
        }
      }`,
  };
  return run(program, [q, k, v, mask]) as tf.Tensor4D;
}

/** Lanes of one cross-entropy workgroup: one workgroup reduces one row of logits. */
const CE_LANES = 64;

/**
 * Row-wise softmax cross-entropy and its gradient in three launches (see `softmaxCrossEntropyWithGrad` for the
 * contract): a workgroup per row finds its log-sum-exp, then one elementwise pass each writes the [n] losses and the
 * [n, C] gradient w·(softmax − onehot). logits [n, C], targets int32 [n], weights [n].
 */
export function softmaxCrossEntropyWebGPU(
  logits: tf.Tensor2D,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
): { losses: tf.Tensor1D; dlogits: tf.Tensor2D } {
  const [n, C] = logits.shape;
  const lse = run(
    {
      variableNames: ['x'],
      outputShape: [n],
      shaderKey: `hyperllama_logsumexp_${CE_LANES}`,
      dispatchLayout: { x: [0], y: [1] },
      dispatch: [n, 1, 1],
      workgroupSize: [CE_LANES, 1, 1],
      getUserCode: () => `
        var<workgroup> red : array<f32, ${CE_LANES}>;
        fn main() {
          let row = i32(workgroupId.x);
          let lane = i32(localId.x);
          let c = uniforms.xShape.y;
          var m = -3.4e38;
          for (var j = lane; j < c; j = j + ${CE_LANES}) { m = max(m, x[row * c + j]); }
          red[lane] = m;
          workgroupBarrier();
          for (var stride = ${CE_LANES / 2}; stride > 0; stride = stride / 2) {
            if (lane < stride) { red[lane] = max(red[lane], red[lane + stride]); }
            workgroupBarrier();
          }
          let top = red[0];
          workgroupBarrier();
          var s = 0.0;
          for (var j = lane; j < c; j = j + ${CE_LANES}) { s = s + exp(x[row * c + j] - top); }
          red[lane] = s;
          workgroupBarrier();
          for (var stride = ${CE_LANES / 2}; stride > 0; stride = stride / 2) {
            if (lane < stride) { red[lane] = red[lane] + red[lane + stride]; }
            workgroupBarrier();
          }
          if (lane == 0) { result[row] = top + log(red[0]); }
        }`,
    },
    [logits],
  );
  // A target outside [0, C) counts for nothing: weight 0, no onehot.
  const valid = `let valid = tgt >= 0 && tgt < c; let wt = select(0.0, w[row], valid); let tc = clamp(tgt, 0, c - 1);`;
  const losses = run(
    {
      variableNames: ['x', 'lse', 't', 'w'],
      outputShape: [n],
      shaderKey: 'hyperllama_ce_losses',
      dispatchLayout: { x: [0] },
      dispatch: [Math.ceil(n / CE_LANES), 1, 1],
      workgroupSize: [CE_LANES, 1, 1],
      size: true,
      getUserCode: () => `
        fn main(row : i32) {
          if (row < uniforms.size) {
            let c = uniforms.xShape.y;
            let tgt = t[row];
            ${valid}
            result[row] = select(0.0, wt * (lse[row] - x[row * c + tc]), valid);
          }
        }`,
    },
    [logits, lse, targets, weights],
  ) as tf.Tensor1D;
  const dlogits = run(
    {
      variableNames: ['x', 'lse', 't', 'w'],
      outputShape: [n, C],
      shaderKey: 'hyperllama_ce_dlogits',
      dispatchLayout: { x: [0, 1] },
      dispatch: [Math.ceil((n * C) / CE_LANES), 1, 1],
      workgroupSize: [CE_LANES, 1, 1],
      size: true,
      getUserCode: () => `
        fn main(index : i32) {
          if (index < uniforms.size) {
            let c = uniforms.xShape.y;
            let row = index / c;
            let j = index % c;
            let tgt = t[row];
            ${valid}
            result[index] = wt * (exp(x[index] - lse[row]) - select(0.0, 1.0, valid && j == tc));
          }
        }`,
    },
    [logits, lse, targets, weights],
  ) as tf.Tensor2D;
  lse.dispose();
  return { losses, dlogits };
}
