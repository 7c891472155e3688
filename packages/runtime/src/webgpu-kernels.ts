import * as tf from '@tensorflow/tfjs';
import { BackendError, RuntimeError } from './errors.js';

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

/** Edge of the output tile one matMul workgroup computes. */
const MM_TILE = 64;
/** Threads along each edge of a matMul workgroup: each computes (MM_TILE / MM_THREADS)² = 4 × 4 outputs (a vec4 row). */
const MM_THREADS = 16;
/** Steps of the inner dimension one pass stages in workgroup memory (2 × 16 × 65 floats: 8.1 KiB). */
const MM_K = 16;
const MM_PER = MM_TILE / MM_THREADS;
/** A staged tile's row length: one word of padding, so lanes that store down a column hit different banks. */
const MM_ROW = MM_TILE + 1;

/** Which kernel runs `tf.matMul` (BatchMatMul) on webgpu: tfjs-webgpu's own (default) or {@link matMulWebGPU}'s. */
export type WebGPUMatMul = 'tfjs' | 'tiled';
const WEBGPU_MATMULS: readonly WebGPUMatMul[] = ['tfjs', 'tiled'];

interface MatMulPlan {
  M: number;
  N: number;
  K: number;
  /** Output batches (the product of the broadcast outer dims); A's and B's are this or 1. */
  batch: number;
  batchA: number;
  batchB: number;
  outShape: number[];
}

const product = (dims: number[]) => dims.reduce((x, y) => x * y, 1);

/**
 * The product's sizes, or null where the tiled kernel does not apply: outer dims whose broadcast is not "equal, or
 * one side 1" once flattened (e.g. [2, 1] with [1, 3]), or more workgroups along an axis than the device dispatches.
 */
function matMulPlan(a: number[], b: number[], tA: boolean, tB: boolean, maxWorkgroups: number): MatMulPlan | null {
  const [ra, ca] = a.slice(-2);
  const [rb, cb] = b.slice(-2);
  const [M, K] = tA ? [ca, ra] : [ra, ca];
  const N = tB ? rb : cb;
  if ((tB ? cb : rb) !== K) return null;
  let outer: number[];
  try {
    outer = tf.backend_util.assertAndGetBroadcastShape(a.slice(0, -2), b.slice(0, -2));
  } catch {
    return null;
  }
  const [batch, batchA, batchB] = [outer, a.slice(0, -2), b.slice(0, -2)].map(product);
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return null;
  if (Math.max(Math.ceil(N / MM_TILE), Math.ceil(M / MM_TILE), batch) > maxWorkgroups) return null;
  return { M, N, K, batch, batchA, batchB, outShape: [...outer, M, N] };
}

/**
 * op(A) · op(B) for one output tile of MM_TILE × MM_TILE per workgroup of MM_THREADS × MM_THREADS threads, each thread
 * 4 × 4 outputs (rows ty + 16i, columns tx + 16j: neighbouring lanes read neighbouring words of the staged B and write
 * neighbouring outputs). Each pass stages MM_K steps of the inner dimension of both operands in workgroup memory,
 * loaded in memory order whatever the transposes (lanes walk K for A [M, K] and Bᵀ's [N, K], rows for Aᵀ's [K, M] and
 * B [K, N]); loads past an edge stage zeros, so no size needs to be a multiple of the tile. A batch of 1 is read
 * for every output batch (stride 0). Subgroup operations are not used: tfjs-webgpu assembles the shader module itself,
 * starting with its own declarations, and WGSL's `enable subgroups;` must precede every declaration.
 */
function matMulProgram(plan: MatMulPlan, tA: boolean, tB: boolean): WebGPUProgram {
  const loads = (MM_TILE * MM_K) / (MM_THREADS * MM_THREADS);
  return {
    variableNames: ['A', 'B'],
    outputShape: plan.outShape,
    shaderKey: `hyperllama_matmul_${MM_TILE}_${MM_K}_${tA}_${tB}`,
    // The body indexes by workgroup; tfjs derives a getOutputCoords from this only for 3-D outputs, which it fits.
    dispatchLayout: { x: [0, 1], y: [2] },
    dispatch: [Math.ceil(plan.N / MM_TILE), Math.ceil(plan.M / MM_TILE), plan.batch],
    workgroupSize: [MM_THREADS, MM_THREADS, 1],
    uniforms: 'dimM : i32, dimN : i32, dimK : i32, strideA : i32, strideB : i32,',
    getUserCode: () => `
      var<workgroup> tileA : array<f32, ${MM_K * MM_ROW}>; // [k][m] of op(A)
      var<workgroup> tileB : array<f32, ${MM_K * MM_ROW}>; // [k][n] of op(B)
      fn main() {
        let M = uniforms.dimM;
        let N = uniforms.dimN;
        let K = uniforms.dimK;
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let lane = ty * ${MM_THREADS} + tx;
        let row0 = i32(workgroupId.y) * ${MM_TILE};
        let col0 = i32(workgroupId.x) * ${MM_TILE};
        let batch = i32(workgroupId.z);
        let aBase = batch * uniforms.strideA;
        let bBase = batch * uniforms.strideB;
        var acc : array<vec4<f32>, ${MM_PER}>;
        for (var k0 = 0; k0 < K; k0 = k0 + ${MM_K}) {
          for (var i = 0; i < ${loads}; i = i + 1) {
            let e = lane + i * ${MM_THREADS * MM_THREADS};
            ${tA ? `let m = e % ${MM_TILE}; let ka = e / ${MM_TILE};` : `let ka = e % ${MM_K}; let m = e / ${MM_K};`}
            var va = 0.0;
            if (row0 + m < M && k0 + ka < K) {
              va = A[aBase + ${tA ? '(k0 + ka) * M + row0 + m' : '(row0 + m) * K + k0 + ka'}];
            }
            tileA[ka * ${MM_ROW} + m] = va;
            ${tB ? `let kb = e % ${MM_K}; let n = e / ${MM_K};` : `let n = e % ${MM_TILE}; let kb = e / ${MM_TILE};`}
            var vb = 0.0;
            if (col0 + n < N && k0 + kb < K) {
              vb = B[bBase + ${tB ? '(col0 + n) * K + k0 + kb' : '(k0 + kb) * N + col0 + n'}];
            }
            tileB[kb * ${MM_ROW} + n] = vb;
          }
          workgroupBarrier();
          for (var k = 0; k < ${MM_K}; k = k + 1) {
            let r = k * ${MM_ROW};
            let bv = vec4<f32>(${[0, 1, 2, 3].map((j) => `tileB[r + tx + ${j * MM_THREADS}]`).join(', ')});
            for (var i = 0; i < ${MM_PER}; i = i + 1) {
              acc[i] = fma(vec4<f32>(tileA[r + ty + i * ${MM_THREADS}]), bv, acc[i]);
            }
          }
          workgroupBarrier();
        }
        for (var i = 0; i < ${MM_PER}; i = i + 1) {
          let row = row0 + ty + i * ${MM_THREADS};
          if (row < M) {
            for (var j = 0; j < ${MM_PER}; j = j + 1) {
              let col = col0 + tx + j * ${MM_THREADS};
              if (col < N) {
                result[(batch * M + row) * N + col] = acc[i][j];
              }
            }
          }
        }
      }`,
  };
}

function matMulUniforms(plan: MatMulPlan) {
  const { M, N, K, batchA, batchB } = plan;
  // One entry per field: the backend aligns an entry of several values as a vector.
  return [M, N, K, batchA > 1 ? M * K : 0, batchB > 1 ? K * N : 0].map((v) => ({ type: 'int32', data: [v] }));
}

const maxWorkgroups = (backend: object) =>
  (backend as { device: { limits: { maxComputeWorkgroupsPerDimension: number } } }).device.limits
    .maxComputeWorkgroupsPerDimension;

/** The tiled product of two float32 tensors on the active (webgpu) backend, without a gradient. */
function tiledMatMul(a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean): tf.Tensor {
  const plan = matMulPlan(a.shape, b.shape, tA, tB, maxWorkgroups(tf.backend()));
  if (!plan || a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new RuntimeError(
      'BAD_SHAPE',
      `matMulWebGPU: float32 [.., M, K] · [.., K, N] with equal batches or a batch of 1 expected, got ${a.dtype} ` +
        `[${a.shape}]${tA ? 'ᵀ' : ''} · ${b.dtype} [${b.shape}]${tB ? 'ᵀ' : ''}`,
      { actual: [a.shape, b.shape] },
    );
  }
  return run(matMulProgram(plan, tA, tB), [a, b], matMulUniforms(plan));
}

/** A gradient summed over the batches its operand (of batch 1) was broadcast over, in the operand's shape. */
function unbroadcast(g: tf.Tensor, shape: number[]): tf.Tensor {
  const broadcast = product(g.shape.slice(0, -2)) !== product(shape.slice(0, -2));
  return tf.reshape(broadcast ? tf.sum(tf.reshape(g, [-1, ...g.shape.slice(-2)]), 0) : g, shape);
}

/**
 * op(a) · op(b) as one launch of our tiled WGSL kernel, op = transpose where asked: a [M, K] or [batch|1, M, K] (or
 * [K, M]… with transposeA), b likewise → [M, N] or [batch, M, N]; float32, on webgpu. The gradient runs on the same
 * kernel: d op(a) = dy · op(b)ᵀ and d op(b) = op(a)ᵀ · dy, summed over the batches an operand of batch 1 was broadcast
 * over. Opt-in as tf.matMul's kernel: {@link setWebGPUMatMul}.
 */
export function matMulWebGPU(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  const [tA, tB] = [transposeA, transposeB];
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, y] = args as [tf.Tensor, tf.Tensor];
    (args[2] as tf.GradSaveFunc)([x, y]);
    return {
      value: tiledMatMul(x, y, tA, tB),
      gradFunc: (dy: tf.Tensor, [xs, ys]: tf.Tensor[]) =>
        tf.tidy(() => {
          const da = tA ? tiledMatMul(ys, dy, tB, true) : tiledMatMul(dy, ys, false, !tB);
          const db = tB ? tiledMatMul(dy, xs, true, tA) : tiledMatMul(xs, dy, !tA, false);
          return [unbroadcast(da, xs.shape), unbroadcast(db, ys.shape)];
        }),
    };
  });
  return op(a, b);
}

let matMulChoice: WebGPUMatMul = 'tfjs';
/** tfjs-webgpu's own BatchMatMul registration, kept to restore it and to take the products the tiled one does not. */
let tfjsBatchMatMul: tf.KernelConfig | null = null;

interface BatchMatMulArgs {
  inputs: { a: tf.TensorInfo; b: tf.TensorInfo };
  backend: WebGPUBackendLike;
  attrs: { transposeA: boolean; transposeB: boolean };
}
/** The BatchMatMul kernel while `tiled` is chosen: ours where {@link matMulPlan} allows, else tfjs-webgpu's. */
function tiledBatchMatMul(args: BatchMatMulArgs): tf.TensorInfo {
  const { a, b } = args.inputs;
  const { transposeA, transposeB } = args.attrs;
  const plan = matMulPlan(a.shape, b.shape, transposeA, transposeB, maxWorkgroups(args.backend));
  if (!plan || a.dtype !== 'float32' || b.dtype !== 'float32')
    return tfjsBatchMatMul!.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const program = matMulProgram(plan, transposeA, transposeB);
  return args.backend.runWebGPUProgram(program, [a, b], 'float32', matMulUniforms(plan));
}

/**
 * Puts the chosen matMul in webgpu's BatchMatMul slot of the kernel registry, once tfjs-backend-webgpu has registered
 * its own (the webgpu backend's start calls this again); everything that calls tf.matMul, autograd's matMul gradients
 * included, then runs on it.
 */
export function installWebGPUMatMul(): void {
  const registered = tf.getKernel('BatchMatMul', 'webgpu');
  if (!registered) return;
  if (registered.kernelFunc !== (tiledBatchMatMul as unknown)) tfjsBatchMatMul = registered;
  const wanted =
    matMulChoice === 'tiled' ? (tiledBatchMatMul as unknown as tf.KernelFunc) : tfjsBatchMatMul!.kernelFunc;
  if (registered.kernelFunc === wanted) return;
  tf.unregisterKernel('BatchMatMul', 'webgpu');
  tf.registerKernel({ ...tfjsBatchMatMul!, kernelFunc: wanted });
}

/**
 * Chooses the kernel of every `tf.matMul` on webgpu: `tfjs`, tfjs-webgpu's own (the default), or `tiled`, ours (see
 * {@link matMulWebGPU}; products it does not take, e.g. int32 ones, stay on tfjs-webgpu's). Opt-in until a GPU
 * measures it faster (`hyperllama-bench --suite runtime --backend webgpu`). Also `initBackend({ webgpuMatMul })` and
 * the environment variable `HYPERLLAMA_WEBGPU_MATMUL`. Returns the previous choice.
 */
export function setWebGPUMatMul(choice: WebGPUMatMul): WebGPUMatMul {
  if (!WEBGPU_MATMULS.includes(choice)) {
    throw new BackendError(
      'BAD_OPTION',
      `webgpuMatMul: expected one of ${WEBGPU_MATMULS.join(', ')}, got "${choice}"`,
      {
        field: 'webgpuMatMul',
        expected: WEBGPU_MATMULS,
        actual: choice,
      },
    );
  }
  const previous = matMulChoice;
  matMulChoice = choice;
  installWebGPUMatMul();
  return previous;
}
