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

/** Lanes of one workgroup (a power of two): the row kernels give each row one workgroup. */
const LANES = 64;

/**
 * WGSL for the row kernels: `reduceSum(lane, v)` and `reduceMax(lane, v)` combine one value per lane through workgroup
 * memory (a tree over {@link LANES} lanes) and give every lane the result. Call them from uniform control flow; their
 * barriers also make the workgroup's earlier writes visible to every lane.
 */
const ROW_REDUCE = `
  var<workgroup> red : array<f32, ${LANES}>;
  fn reduce(lane : i32, v : f32, isMax : bool) -> f32 {
    red[lane] = v;
    workgroupBarrier();
    for (var stride = ${LANES / 2}; stride > 0; stride = stride / 2) {
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
  fn reduceSum(lane : i32, v : f32) -> f32 { return reduce(lane, v, false); }
  fn reduceMax(lane : i32, v : f32) -> f32 { return reduce(lane, v, true); }`;

/**
 * RMSNorm in one launch: x [N, D], w [D] → x · rsqrt(mean(x²) + eps) · w. Each workgroup sums one row's squares in
 * workgroup memory, then scales the row.
 */
export function rmsNormWebGPU(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  const [N, D] = x.shape;
  const program: WebGPUProgram = {
    variableNames: ['x', 'w'],
    outputShape: [N, D],
    shaderKey: `hyperllama_rmsnorm_${LANES}`,
    dispatchLayout: { x: [0], y: [1] },
    dispatch: [N, 1, 1],
    workgroupSize: [LANES, 1, 1],
    uniforms: 'eps : f32,',
    getUserCode: () => `
      ${ROW_REDUCE}
      fn main() {
        let row = i32(workgroupId.x);
        let lane = i32(localId.x);
        let d = uniforms.xShape.y;
        let base = row * d;
        var s = 0.0;
        for (var j = lane; j < d; j = j + ${LANES}) {
          let v = x[base + j];
          s = s + v * v;
        }
        let r = inverseSqrt(reduceSum(lane, s) / f32(d) + uniforms.eps);
        for (var j = lane; j < d; j = j + ${LANES}) {
          result[base + j] = x[base + j] * r * w[j];
        }
      }`,
  };
  return run(program, [x, w], [{ type: 'float32', data: [eps] }]) as tf.Tensor2D;
}

/** SwiGLU's gating in one launch: silu(gate) · up, elementwise, gate and up [N, F] → [N, F]. */
export function swigluWebGPU(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  const size = gate.size;
  const program: WebGPUProgram = {
    variableNames: ['g', 'u'],
    outputShape: [...gate.shape],
    shaderKey: 'hyperllama_swiglu',
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil(size / LANES), 1, 1],
    workgroupSize: [LANES, 1, 1],
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

/** The most keys one attention workgroup takes: its scores live in workgroup memory (8 KiB). */
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
    shaderKey: `hyperllama_attention_${LANES}_${FUSED_ATTENTION_MAX_KEYS}`,
    dispatchLayout: { x: [0, 1, 2], y: [3] },
    dispatch: [B * H * T, 1, 1],
    workgroupSize: [LANES, 1, 1],
    getUserCode: () => `
      var<workgroup> p : array<f32, ${FUSED_ATTENTION_MAX_KEYS}>;
      ${ROW_REDUCE}
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
        for (var j = lane; j < S; j = j + ${LANES}) {
          var s = mask[mBase + j];
          for (var d = 0; d < hd; d = d + 1) {
            s = s + q[qBase + d] * k[kvBase + j * hd + d];
          }
          p[j] = s;
          m = max(m, s);
        }
        let top = reduceMax(lane, m);
        var l = 0.0;
        for (var j = lane; j < S; j = j + ${LANES}) {
          let e = exp(p[j] - top);
          p[j] = e;
          l = l + e;
        }
        let total = reduceSum(lane, l);
        for (var d = lane; d < hd; d = d + ${LANES}) {
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
      shaderKey: `hyperllama_logsumexp_${LANES}`,
      dispatchLayout: { x: [0], y: [1] },
      dispatch: [n, 1, 1],
      workgroupSize: [LANES, 1, 1],
      getUserCode: () => `
        ${ROW_REDUCE}
        fn main() {
          let row = i32(workgroupId.x);
          let lane = i32(localId.x);
          let c = uniforms.xShape.y;
          var m = -3.4e38;
          for (var j = lane; j < c; j = j + ${LANES}) { m = max(m, x[row * c + j]); }
          let top = reduceMax(lane, m);
          var s = 0.0;
          for (var j = lane; j < c; j = j + ${LANES}) { s = s + exp(x[row * c + j] - top); }
          let total = reduceSum(lane, s);
          if (lane == 0) { result[row] = top + log(total); }
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
      dispatch: [Math.ceil(n / LANES), 1, 1],
      workgroupSize: [LANES, 1, 1],
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
      dispatch: [Math.ceil((n * C) / LANES), 1, 1],
      workgroupSize: [LANES, 1, 1],
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
