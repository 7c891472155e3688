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
