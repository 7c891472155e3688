// LOCAL FIX — belongs in @hyperllama/runtime's registerWasmKernels (reported to the lead).
import * as tf from '@tensorflow/tfjs';

let patched = false;

/**
 * tfjs-backend-wasm 4.22's `OneHot` ignores a float32 dtype: it writes the integer on/off values' bit patterns into
 * the float32 output (1 becomes 1.4e-45), which breaks `lmLoss` (its target picking) on wasm. This wraps the kernel:
 * for float32 with integer on/off values it runs the int32 kernel and casts. Call after the wasm backend is set up;
 * a no-op when wasm is not loaded. Idempotent.
 */
export function patchWasmOneHot(): void {
  if (patched) return;
  const config = tf.getKernel('OneHot', 'wasm');
  const cast = tf.getKernel('Cast', 'wasm');
  if (!config || !cast) return;
  patched = true;
  type Fn = (args: { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: Record<string, unknown> }) => tf.TensorInfo;
  const original = config.kernelFunc as unknown as Fn;
  const castFn = cast.kernelFunc as unknown as Fn;
  const fixed: Fn = (args) => {
    const attrs = args.attrs ?? {};
    const { onValue = 1, offValue = 0, dtype = 'int32' } = attrs as { onValue?: number; offValue?: number; dtype?: string };
    if (dtype !== 'float32' || !Number.isInteger(onValue) || !Number.isInteger(offValue)) return original(args);
    const ints = original({ ...args, attrs: { ...attrs, dtype: 'int32' } });
    const out = castFn({ inputs: { x: ints }, backend: args.backend, attrs: { dtype: 'float32' } });
    (args.backend as { disposeData(id: object): void }).disposeData(ints.dataId);
    return out;
  };
  (config as { kernelFunc: unknown }).kernelFunc = fixed;
}
