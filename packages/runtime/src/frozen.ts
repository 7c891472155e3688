import * as tf from '@tensorflow/tfjs';
import { RuntimeError } from './errors.js';
import { loadNativeBlas } from './native.js';

/**
 * Frozen weights in native memory: a linear layer's Hugging Face [n = out, k = in] matrix held by the native addon
 * (native/hyperllama_quant.c) outside the wasm heap, as float32, bfloat16, float16 or NF4 with double quantisation,
 * and multiplied by `frozenMatMul` without ever being expanded in full (the kernels dequantise inside).
 */
export type FrozenFormat = 'fp32' | 'bf16' | 'fp16' | 'nf4';

export const FROZEN_FORMATS: readonly FrozenFormat[] = ['fp32', 'bf16', 'fp16', 'nf4'];

/** Default NF4 block (elements per absmax), as QLoRA. */
export const FROZEN_NF4_BLOCK = 64;

/**
 * Bytes per parameter of each format in native memory. NF4: 4 bits, one 8-bit absmax code per block of 64 and one
 * float32 scale per 256 blocks (QLoRA's double quantisation).
 */
export const FROZEN_BYTES_PER_PARAM: Readonly<Record<FrozenFormat, number>> = {
  fp32: 4,
  bf16: 2,
  fp16: 2,
  nf4: 0.5 + 1 / FROZEN_NF4_BLOCK + 4 / (FROZEN_NF4_BLOCK * 256),
};

const FORMAT_CODE: Record<FrozenFormat, number> = { fp32: 0, bf16: 1, fp16: 2, nf4: 3 };
/** Source encodings `fill` accepts (safetensors dtype names). */
export type FrozenSourceDtype = 'F32' | 'BF16' | 'F16';
const SOURCE_CODE: Record<FrozenSourceDtype, number> = { F32: 0, BF16: 1, F16: 2 };

type Handle = object;
/** The addon's frozen-weight functions (see native/hyperllama_quant.c). */
interface NativeFrozen {
  frozenCreate(format: number, n: number, k: number, blockSize: number): Handle;
  frozenFill(h: Handle, src: ArrayBufferView, srcDtype: number): void;
  frozenMatMul(h: Handle, x: Float32Array, m: number, y: Float32Array): void;
  frozenMatMulT(h: Handle, dy: Float32Array, m: number, dx: Float32Array): void;
  frozenDequantize(h: Handle, out: Float32Array): void;
  frozenNf4Parts(h: Handle): { packed: Uint8Array; codes: Uint8Array; scales: Float32Array; offset: number };
  frozenBytes(h: Handle): number;
  frozenRelease(h: Handle): void;
  frozenSetThreads(t: number): void;
}

/** The addon when it was built with frozen-weight support, else null and why. */
export function loadNativeFrozen(): { frozen: NativeFrozen | null; why: string } {
  const { blas, why } = loadNativeBlas();
  const f = blas as unknown as Partial<NativeFrozen> | null;
  if (!f) return { frozen: null, why };
  if (typeof f.frozenCreate !== 'function')
    return {
      frozen: null,
      why: `${why} predates frozen weights (rebuild: npm run build:native -w @hyperllama/runtime)`,
    };
  return { frozen: f as NativeFrozen, why };
}

function requireNative(): NativeFrozen {
  const { frozen, why } = loadNativeFrozen();
  if (!frozen)
    throw new RuntimeError('NATIVE_UNAVAILABLE', `frozen weights in native memory need the native addon: ${why}`, {
      why,
    });
  return frozen;
}

const registry = new Map<number, FrozenWeight>();
let nextId = 1;

/** A frozen [n, k] weight in native memory. Dispose it to free the memory at once (else the GC frees it). */
export class FrozenWeight {
  readonly format: FrozenFormat;
  /** [n = out, k = in], Hugging Face's layout of a linear weight. */
  readonly shape: [number, number];
  readonly blockSize: number;
  /** Bytes held in native memory. */
  readonly bytes: number;
  /** Key of this weight in the kernels' registry (the kernel attribute). */
  readonly id: number;
  private handle: Handle | null;

  private constructor(format: FrozenFormat, shape: [number, number], blockSize: number, handle: Handle, bytes: number) {
    this.format = format;
    this.shape = shape;
    this.blockSize = blockSize;
    this.handle = handle;
    this.bytes = bytes;
    this.id = nextId++;
    registry.set(this.id, this);
  }

  /**
   * Allocate an [n, k] weight of `format` (zero until filled). NF4 needs k divisible by `blockSize` (default 64, a
   * multiple of 8). Throws a RuntimeError when the addon is missing or the memory cannot be had.
   */
  static create(format: FrozenFormat, n: number, k: number, opts: { blockSize?: number } = {}): FrozenWeight {
    if (!FROZEN_FORMATS.includes(format))
      throw new RuntimeError(
        'FROZEN_BAD_FORMAT',
        `format: expected one of ${FROZEN_FORMATS.join(', ')}, got ${format}`,
        {
          field: 'format',
          actual: format,
        },
      );
    const blockSize = format === 'nf4' ? (opts.blockSize ?? FROZEN_NF4_BLOCK) : 0;
    if (!Number.isInteger(n) || !Number.isInteger(k) || n < 1 || k < 1)
      throw new RuntimeError('FROZEN_BAD_SHAPE', `shape: expected positive integers [n, k], got [${n}, ${k}]`, {
        field: 'shape',
        actual: [n, k],
      });
    if (
      format === 'nf4' &&
      (!Number.isInteger(blockSize) || blockSize < 8 || blockSize % 8 !== 0 || k % blockSize !== 0)
    )
      throw new RuntimeError(
        'FROZEN_BAD_SHAPE',
        `NF4 block size ${blockSize}: expected a multiple of 8 that divides the input dimension k = ${k}`,
        { field: 'blockSize', actual: blockSize, k },
      );
    const native = requireNative();
    let handle: Handle;
    try {
      handle = native.frozenCreate(FORMAT_CODE[format], n, k, blockSize);
    } catch (e) {
      throw new RuntimeError(
        'FROZEN_OUT_OF_MEMORY',
        `cannot allocate a ${format} [${n}, ${k}] weight in native memory`,
        {
          format,
          shape: [n, k],
          cause: (e as Error).message,
        },
      );
    }
    return new FrozenWeight(format, [n, k], blockSize, handle, native.frozenBytes(handle));
  }

  /** Allocate and fill from row-major [n, k] values (Float32Array, or bf16/f16 bits as Uint16Array). */
  static from(
    format: FrozenFormat,
    values: Float32Array | Uint16Array,
    shape: [number, number],
    opts: { blockSize?: number; dtype?: FrozenSourceDtype } = {},
  ): FrozenWeight {
    const w = FrozenWeight.create(format, shape[0], shape[1], opts);
    try {
      w.fill(values, opts.dtype ?? (values instanceof Float32Array ? 'F32' : 'BF16'));
    } catch (e) {
      w.dispose();
      throw e;
    }
    return w;
  }

  /** Set the values from n·k source values: little-endian bytes (a Uint8Array) or a typed array of `dtype`. */
  fill(src: Uint8Array | Uint16Array | Float32Array, dtype: FrozenSourceDtype): void {
    const bytes = this.shape[0] * this.shape[1] * (dtype === 'F32' ? 4 : 2);
    if (!(dtype in SOURCE_CODE) || src.byteLength !== bytes)
      throw new RuntimeError(
        'FROZEN_BAD_SOURCE',
        `fill: expected ${bytes} bytes of ${dtype} for [${this.shape}], got ${src.byteLength}`,
        { expected: bytes, actual: src.byteLength, dtype },
      );
    try {
      requireNative().frozenFill(this.live(), src, SOURCE_CODE[dtype]);
    } catch (e) {
      if (e instanceof RuntimeError) throw e;
      throw new RuntimeError('FROZEN_BAD_SOURCE', `fill: ${(e as Error).message}`, { dtype });
    }
  }

  /** The weight as row-major float32 [n, k] (a copy in JS memory). */
  dequantize(): Float32Array {
    const out = new Float32Array(this.shape[0] * this.shape[1]);
    requireNative().frozenDequantize(this.live(), out);
    return out;
  }

  /** NF4 storage (copies): packed codes, double-quantised absmax codes, group scales and offset. */
  nf4Parts(): { packed: Uint8Array; codes: Uint8Array; scales: Float32Array; offset: number } {
    return requireNative().frozenNf4Parts(this.live());
  }

  /** @internal The native handle (throws once disposed). */
  live(): Handle {
    if (!this.handle)
      throw new RuntimeError('FROZEN_DISPOSED', `the ${this.format} [${this.shape}] weight was disposed`);
    return this.handle;
  }

  get disposed(): boolean {
    return this.handle === null;
  }

  dispose(): void {
    if (!this.handle) return;
    requireNative().frozenRelease(this.handle);
    this.handle = null;
    registry.delete(this.id);
  }
}

/** Kernel: x [m, k] → y [m, n] = x · Wᵀ (attrs: weightId; transposed: dy [m, n] → dx [m, k] = dy · W). */
export const FROZEN_MATMUL_KERNEL = 'HyperllamaFrozenMatMul';

type TensorInfo = tf.TensorInfo;
interface WasmLike {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}
interface CpuLike {
  readSync(dataId: object): tf.backend_util.BackendValues;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): TensorInfo;
}

function kernelArgs(inputs: Record<string, TensorInfo>, attrs: Record<string, unknown> | undefined) {
  const w = registry.get(attrs?.weightId as number);
  if (!w) throw new RuntimeError('FROZEN_DISPOSED', `frozen weight ${String(attrs?.weightId)} is disposed or unknown`);
  const transposed = Boolean(attrs?.transposed);
  const x = inputs.x;
  const [n, k] = w.shape;
  return { w, transposed, x, m: x.shape[0], out: transposed ? k : n };
}

let kernelsRegistered = false;
function registerFrozenKernels(): void {
  if (kernelsRegistered) return;
  kernelsRegistered = true;
  const native = requireNative();
  const run = (w: FrozenWeight, transposed: boolean, x: Float32Array, m: number, y: Float32Array) =>
    (transposed ? native.frozenMatMulT : native.frozenMatMul)(w.live(), x, m, y);
  tf.registerKernel({
    kernelName: FROZEN_MATMUL_KERNEL,
    backendName: 'wasm',
    kernelFunc: (({
      inputs,
      backend,
      attrs,
    }: {
      inputs: Record<string, TensorInfo>;
      backend: unknown;
      attrs?: Record<string, unknown>;
    }) => {
      const be = backend as WasmLike;
      const { w, transposed, x, m, out } = kernelArgs(inputs, attrs);
      const y = be.makeOutput([m, out], 'float32');
      // Heap views after makeOutput: growing the wasm memory detaches older ones.
      if (m > 0) run(w, transposed, be.typedArrayFromHeap(x), m, be.typedArrayFromHeap(y));
      return y;
    }) as unknown as tf.KernelFunc,
  });
  tf.registerKernel({
    kernelName: FROZEN_MATMUL_KERNEL,
    backendName: 'cpu',
    kernelFunc: (({
      inputs,
      backend,
      attrs,
    }: {
      inputs: Record<string, TensorInfo>;
      backend: unknown;
      attrs?: Record<string, unknown>;
    }) => {
      const be = backend as CpuLike;
      const { w, transposed, x, m, out } = kernelArgs(inputs, attrs);
      const y = new Float32Array(m * out);
      if (m > 0) run(w, transposed, be.readSync(x.dataId) as Float32Array, m, y);
      return be.makeTensorInfo([m, out], 'float32', y);
    }) as unknown as tf.KernelFunc,
  });
}

/** Backends with a frozen-weight kernel. */
export const FROZEN_BACKENDS: readonly string[] = ['wasm', 'cpu'];

function runFrozen(x: tf.Tensor2D, w: FrozenWeight, transposed: boolean): tf.Tensor2D {
  return tf.engine().runKernel(FROZEN_MATMUL_KERNEL, { x }, { weightId: w.id, transposed }) as tf.Tensor2D;
}

/**
 * x [m, k] → [m, n] = x · Wᵀ, W the frozen [n, k] weight, dequantised inside the native kernel. Its gradient flows to
 * x only (dx = dy · W, by the same kernel); the weight takes none. Runs on the wasm and cpu backends.
 */
export function frozenMatMul(x: tf.Tensor2D, w: FrozenWeight): tf.Tensor2D {
  const [n, k] = w.shape;
  if (x.rank !== 2 || x.shape[1] !== k || x.dtype !== 'float32')
    throw new RuntimeError(
      'FROZEN_BAD_SHAPE',
      `frozenMatMul: expected a float32 [m, ${k}] input for the [${n}, ${k}] weight, got ${x.dtype} [${x.shape}]`,
      { expected: ['m', k], actual: x.shape },
    );
  const backend = tf.getBackend();
  if (!FROZEN_BACKENDS.includes(backend))
    throw new RuntimeError(
      'FROZEN_BACKEND',
      `frozen weights run on the ${FROZEN_BACKENDS.join(' and ')} backends, not on ${backend}`,
      { backend },
    );
  w.live();
  registerFrozenKernels();
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor2D;
    return {
      value: runFrozen(input, w, false),
      gradFunc: (dy: tf.Tensor) => [runFrozen(dy as tf.Tensor2D, w, true)],
    };
  });
  return op(x) as tf.Tensor2D;
}

/** Threads of the native small-batch (decoding) kernels; OpenBLAS's own count when never set. */
export function setFrozenThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1)
    throw new RuntimeError('BAD_OPTION', `threads: expected a positive integer, got ${threads}`, { actual: threads });
  requireNative().frozenSetThreads(threads);
}

/** Bytes an [n, k] weight of `format` takes in native memory (as the addon allocates it). */
export function frozenBytes(format: FrozenFormat, n: number, k: number, blockSize = FROZEN_NF4_BLOCK): number {
  const total = n * k;
  if (format === 'fp32') return total * 4;
  if (format !== 'nf4') return total * 2;
  const blocks = total / blockSize;
  return total / 2 + blocks + Math.ceil(blocks / 256) * 4 + 4;
}
