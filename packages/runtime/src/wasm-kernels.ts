import * as tf from '@tensorflow/tfjs';
import { SOFTMAX_CE_KERNEL } from './cross-entropy.js';
import type { NativeBlas } from './native.js';

/**
 * Kernel fixes for the wasm backend:
 * - `BatchMatMul`: tfjs-wasm only runs un-transposed products with batch 1 on XNNPACK; transposed or batched products
 *   fall to a scalar loop (10-20x slower). The override transposes explicitly, folds a shared right operand into one
 *   big product, and runs other batches as a loop of batch-1 products. Autograd's matMul gradients (which use the
 *   transposed forms) go through the same kernel, so they are fast too.
 * - `UnsortedSegmentSum`: missing on wasm, and needed by `gather`'s gradient (embedding lookups).
 * - `GatherV2` along axis 0 (embedding lookups): whole rows copied with `TypedArray.set` (tfjs-wasm's generic loop
 *   took 16 ms for 1024 rows of 256).
 * - `Slice`: tfjs-wasm first copies the WHOLE input out of the heap (`readSync`), so taking one element of a
 *   [4, 256, 32000] logits tensor took 90 ms; the override copies only the slice, from a heap view.
 * - `Identity`: tfjs-wasm copies the data, and autograd clones (Identity) every tensor it saves for the backward pass,
 *   so a training step copied its weights and activations once more. Tensors are immutable (a Variable's `assign`
 *   swaps its data id), so the override shares the data with a reference count, as the cpu backend does.
 * With the optional native addon, `BatchMatMul` instead calls OpenBLAS's sgemm on the tensors' wasm memory (transposes
 * and batches handled by BLAS itself); broadcast patterns it does not cover fall back to the wasm path.
 */

type TensorInfo = tf.TensorInfo;
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object): boolean;
  readSync(dataId: object): tf.backend_util.BackendValues;
  incRef(dataId: object): void;
}
type KernelFn = (args: {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}) => TensorInfo | TensorInfo[];

let registered = false;

function kernelConfig(name: string): tf.KernelConfig {
  const k = tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`tfjs-backend-wasm has no ${name} kernel`);
  return k;
}

function kernel(name: string): KernelFn {
  return kernelConfig(name).kernelFunc as unknown as KernelFn;
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

export interface WasmKernelOptions {
  /** OpenBLAS addon for BatchMatMul (null: XNNPACK only). */
  native?: NativeBlas | null;
  /** Replace tfjs-wasm's BatchMatMul by the explicit-transpose XNNPACK version (default true; false = stock tfjs). */
  fastMatMul?: boolean;
}

export function registerWasmKernels(options: WasmKernelOptions = {}): void {
  if (registered) return;
  registered = true;
  const batchMatMulConfig = kernelConfig('BatchMatMul');
  const originalBatchMatMul = batchMatMulConfig.kernelFunc as unknown as KernelFn;
  const transpose = kernel('Transpose');
  const reshape = kernel('Reshape');

  const fastBatchMatMul: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackendLike;
    let a = inputs.a;
    let b = inputs.b;
    const transposeA = Boolean(attrs?.transposeA);
    const transposeB = Boolean(attrs?.transposeB);
    const temps: TensorInfo[] = [];
    const swapLast = (x: TensorInfo): TensorInfo => {
      const perm = x.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      const t = transpose({ inputs: { x }, backend, attrs: { perm } }) as TensorInfo;
      temps.push(t);
      return t;
    };
    const view = (x: TensorInfo, shape: number[]): TensorInfo => {
      const t = reshape({ inputs: { x }, backend, attrs: { shape } }) as TensorInfo;
      temps.push(t);
      return t;
    };
    if (transposeA) a = swapLast(a);
    if (transposeB) b = swapLast(b);
    const [m, k] = a.shape.slice(-2);
    const n = b.shape[b.shape.length - 1];
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    const batchA = size(outerA);
    const batchB = size(outerB);
    const outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
    const batch = size(outer);
    const plain = { transposeA: false, transposeB: false };
    try {
      if (batch === 1 || batchB === 1) {
        // A shared right operand: one [batchA·M, K] × [K, N] product.
        const a2 = view(a, [1, batchA * m, k]);
        const b2 = view(b, [1, k, n]);
        const r = originalBatchMatMul({ inputs: { a: a2, b: b2 }, backend, attrs: plain }) as TensorInfo;
        temps.push(r);
        return reshape({ inputs: { x: r }, backend, attrs: { shape: [...outer, m, n] } }) as TensorInfo;
      }
      if ((batchA !== 1 && batchA !== batch) || batchB !== batch) {
        // Broadcast patterns other than "one side shared" keep the original kernel.
        return originalBatchMatMul({ inputs: { a, b }, backend, attrs: plain });
      }
      const out = be.makeOutput([...outer, m, n], 'float32');
      for (let i = 0; i < batch; i++) {
        const ai = be.makeOutput([1, m, k], 'float32');
        const bi = be.makeOutput([1, k, n], 'float32');
        const ao = (batchA === 1 ? 0 : i) * m * k;
        // Heap views are invalidated when the wasm memory grows, so each one is taken right before use.
        be.typedArrayFromHeap(ai).set(be.typedArrayFromHeap(a).subarray(ao, ao + m * k));
        be.typedArrayFromHeap(bi).set(be.typedArrayFromHeap(b).subarray(i * k * n, (i + 1) * k * n));
        const ri = originalBatchMatMul({ inputs: { a: ai, b: bi }, backend, attrs: plain }) as TensorInfo;
        be.typedArrayFromHeap(out).set(be.typedArrayFromHeap(ri), i * m * n);
        be.disposeData(ai.dataId);
        be.disposeData(bi.dataId);
        be.disposeData(ri.dataId);
      }
      return out;
    } finally {
      for (const t of temps) be.disposeData(t.dataId);
    }
  };

  const native = options.native;
  const nativeBatchMatMul: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackendLike;
    const { a, b } = inputs;
    const transposeA = Boolean(attrs?.transposeA);
    const transposeB = Boolean(attrs?.transposeB);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    const outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
    const [batchA, batchB, batch] = [size(outerA), size(outerB), size(outer)];
    const covered =
      a.dtype === 'float32' &&
      b.dtype === 'float32' &&
      (batchA === 1 || batchA === batch) &&
      (batchB === 1 || batchB === batch);
    if (!covered || !native) return fastBatchMatMul({ inputs, backend, attrs });
    const out = be.makeOutput([...outer, m, n], 'float32');
    if (batch * m * n === 0) return out;
    // Heap views are taken after makeOutput: growing the wasm memory would detach earlier ones.
    const [av, bv, cv] = [a, b, out].map((t) => be.typedArrayFromHeap(t) as Float32Array);
    if (k === 0) cv.fill(0);
    else if (batchB === 1 && batchA === batch && !transposeA) {
      // A shared right operand: one [batch·M, K] × [K, N] product.
      native.sgemmBatched(av, bv, cv, 1, batch * m, n, k, false, transposeB, 0, 0);
    } else {
      native.sgemmBatched(
        av,
        bv,
        cv,
        batch,
        m,
        n,
        k,
        transposeA,
        transposeB,
        batchA === 1 ? 0 : m * k,
        batchB === 1 ? 0 : k * n,
      );
    }
    return out;
  };

  /** losses [n], dlogits [n, C] from logits [n, C], targets int32 [n], weights [n] (see softmaxCrossEntropyWithGrad).
   *  With `overwriteLogits` the gradient is written over the logits, whose memory it then shares. */
  const softmaxCrossEntropy: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackendLike;
    const { logits, targets, weights } = inputs;
    const [n, classes] = logits.shape;
    const losses = be.makeOutput([n], 'float32');
    // overwriteLogits: the gradient takes the logits' memory (the caller promised not to read the logits again).
    let dlogits: TensorInfo;
    if (attrs?.overwriteLogits) {
      be.incRef(logits.dataId);
      dlogits = { dataId: logits.dataId, shape: logits.shape, dtype: 'float32' };
    } else dlogits = be.makeOutput([n, classes], 'float32');
    const [lv, tv, wv, lossv, gv] = [logits, targets, weights, losses, dlogits].map((t) => be.typedArrayFromHeap(t));
    native!.softmaxCrossEntropy(
      lv as Float32Array,
      tv as Int32Array,
      wv as Float32Array,
      lossv as Float32Array,
      gv as Float32Array,
      n,
      classes,
    );
    return [losses, dlogits];
  };

  const identity: KernelFn = ({ inputs, backend }) => {
    const { x } = inputs;
    (backend as WasmBackendLike).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };

  const gatherConfig = kernelConfig('GatherV2');
  const originalGather = gatherConfig.kernelFunc as unknown as KernelFn;
  const gatherRows: KernelFn = (args) => {
    const { inputs, backend, attrs } = args;
    const be = backend as WasmBackendLike;
    const { x, indices } = args.inputs;
    const axis = tf.util.parseAxisParam(attrs?.axis as number, x.shape)[0];
    if (
      axis !== 0 ||
      (attrs?.batchDims as number) !== 0 ||
      x.dtype === 'string' ||
      x.dtype === 'complex64' ||
      x.shape.length === 0
    ) {
      return originalGather({ inputs, backend, attrs });
    }
    const rows = x.shape[0];
    const row = size(x.shape.slice(1));
    const ids = be.readSync(indices.dataId) as Int32Array;
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < rows))
        throw new Error(`GatherV2: the index value ${ids[i]} is not in [0, ${rows - 1}]`);
    }
    const out = be.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    const src = be.typedArrayFromHeap(x);
    const dst = be.typedArrayFromHeap(out);
    for (let i = 0; i < ids.length; i++) dst.set(src.subarray(ids[i] * row, (ids[i] + 1) * row), i * row);
    return out;
  };

  const sliceConfig = kernelConfig('Slice');
  const originalSlice = sliceConfig.kernelFunc as unknown as KernelFn;
  const sliceView: KernelFn = (args) => {
    const { inputs, backend, attrs } = args;
    const be = backend as WasmBackendLike;
    const { x } = inputs;
    if (x.dtype === 'string' || x.dtype === 'complex64' || x.shape.length === 0) return originalSlice(args);
    const [begin, sizes] = tf.slice_util.parseSliceParams(
      x as unknown as tf.Tensor,
      attrs?.begin as number[],
      attrs?.size as number[],
    );
    const out = be.makeOutput(sizes, x.dtype);
    const n = size(sizes);
    if (n === 0) return out;
    const src = be.typedArrayFromHeap(x); // views taken after makeOutput (heap growth detaches older ones)
    const dst = be.typedArrayFromHeap(out);
    const strides = tf.util.computeStrides(x.shape);
    if (tf.slice_util.isSliceContinous(x.shape, begin, sizes)) {
      const offset = tf.slice_util.computeFlatOffset(begin, strides);
      dst.set(src.subarray(offset, offset + n));
      return out;
    }
    // Copy runs along the last axis, walking the other axes like an odometer.
    const r = x.shape.length;
    const run = sizes[r - 1];
    const index = Array.from({ length: r - 1 }, () => 0);
    for (let row = 0; row < n / run; row++) {
      let offset = begin[r - 1];
      for (let d = 0; d < r - 1; d++) offset += (begin[d] + index[d]) * strides[d];
      dst.set(src.subarray(offset, offset + run), row * run);
      for (let d = r - 2; d >= 0 && ++index[d] === sizes[d]; d--) index[d] = 0;
    }
    return out;
  };

  const unsortedSegmentSum: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackendLike;
    const { x, segmentIds } = inputs;
    const numSegments = attrs?.numSegments as number;
    const inner = size(x.shape.slice(1));
    const rows = x.shape[0] ?? 1;
    const out = be.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype);
    const xs = be.readSync(x.dataId) as Float32Array | Int32Array;
    const ids = be.readSync(segmentIds.dataId) as Int32Array;
    const acc = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
    for (let r = 0; r < rows; r++) {
      const s = ids[r];
      if (s < 0 || s >= numSegments) continue;
      const src = r * inner;
      const dst = s * inner;
      for (let j = 0; j < inner; j++) acc[dst + j] += xs[src + j];
    }
    be.typedArrayFromHeap(out).set(acc);
    return out;
  };

  const oneHotConfig = kernelConfig('OneHot');
  const originalOneHot = oneHotConfig.kernelFunc as unknown as KernelFn;
  const cast = kernel('Cast');
  const oneHot: KernelFn = (args) => {
    const attrs = args.attrs ?? {};
    const onValue = (attrs.onValue as number | undefined) ?? 1;
    const offValue = (attrs.offValue as number | undefined) ?? 0;
    if (attrs.dtype !== 'float32' || !Number.isInteger(onValue) || !Number.isInteger(offValue))
      return originalOneHot(args);
    const ints = originalOneHot({ ...args, attrs: { ...attrs, dtype: 'int32' } }) as TensorInfo;
    const out = cast({ inputs: { x: ints }, backend: args.backend, attrs: { dtype: 'float32' } }) as TensorInfo;
    (args.backend as WasmBackendLike).disposeData(ints.dataId);
    return out;
  };

  // The wasm BatchMatMul is also what the public tf.matMul calls, so unregister-then-register replaces it.
  const chosen = native ? nativeBatchMatMul : options.fastMatMul === false ? null : fastBatchMatMul;
  if (chosen) {
    tf.unregisterKernel('BatchMatMul', 'wasm');
    // Keep the original setupFunc: it binds the wasm export that the original kernel calls.
    tf.registerKernel({ ...batchMatMulConfig, kernelFunc: chosen as unknown as tf.KernelFunc });
  }
  if (options.fastMatMul !== false) {
    tf.unregisterKernel('Slice', 'wasm');
    tf.registerKernel({ ...sliceConfig, kernelFunc: sliceView as unknown as tf.KernelFunc });
    tf.unregisterKernel('GatherV2', 'wasm');
    tf.registerKernel({ ...gatherConfig, kernelFunc: gatherRows as unknown as tf.KernelFunc });
    const identityConfig = kernelConfig('Identity');
    const copy = identityConfig.kernelFunc as unknown as KernelFn;
    tf.unregisterKernel('Identity', 'wasm');
    tf.registerKernel({
      ...identityConfig,
      kernelFunc: ((args: Parameters<KernelFn>[0]) =>
        args.inputs.x.dtype === 'string' ? copy(args) : identity(args)) as unknown as tf.KernelFunc,
    });
  }
  if (native && !tf.getKernel(SOFTMAX_CE_KERNEL, 'wasm')) {
    tf.registerKernel({
      kernelName: SOFTMAX_CE_KERNEL,
      backendName: 'wasm',
      kernelFunc: softmaxCrossEntropy as unknown as tf.KernelFunc,
    });
  }
  tf.unregisterKernel('OneHot', 'wasm');
  tf.registerKernel({ ...oneHotConfig, kernelFunc: oneHot as unknown as tf.KernelFunc });
  if (!tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    tf.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
    });
  }
}
