import * as tf from '@tensorflow/tfjs';
import { BackendError } from './errors.js';
import { envVar, isNode, nodeProcess } from './platform.js';
import { installWebGPUMatMul } from './webgpu-kernels.js';

/**
 * The `webgpu` backend in Node: `@tensorflow/tfjs-backend-webgpu` on Dawn from the npm package `webgpu` (both optional
 * dependencies). The adapter is the first that works of: the platform's default (a real GPU through Vulkan, Metal or
 * D3D12), then Mesa's software OpenGL ES driver in WebGPU compatibility mode (llvmpipe: correct, slow; it makes the
 * backend testable on machines without a GPU). `HYPERLLAMA_WEBGPU_ADAPTER=default|opengles` restricts the choice.
 *
 * In Node only asynchronous reads work (`await t.data()`); `dataSync()` of a tensor held on the GPU throws.
 *
 * Work the GPU rejects (e.g. a tensor larger than the adapter's maxStorageBufferBindingSize) only logs a validation
 * error and leaves garbage in the output; here the next read throws `WEBGPU_ERROR` instead.
 */

interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<AdapterLike | null>;
}
interface AdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
  limits: Record<string, number>;
  features: { has(name: string): boolean; [Symbol.iterator](): Iterator<string> };
  requestDevice(descriptor?: Record<string, unknown>): Promise<DeviceLike>;
}
interface DeviceLike {
  lost?: Promise<{ reason: string; message: string }>;
  onuncapturederror: ((event: { error?: { message?: string } }) => void) | null;
  limits: Record<string, number>;
}
type Read = (dataId: object) => Promise<unknown>;

const ADAPTERS = [
  { name: 'default', flags: [] as string[], request: { powerPreference: 'high-performance' } },
  { name: 'opengles', flags: ['backend=opengles'], request: { featureLevel: 'compatibility' } },
];

/** Limits the tfjs backend asks for (it needs large storage buffers: logits of a 32k vocabulary pass 128 MiB). */
const LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup',
];

/** Dawn for Node (optional dependency), named through a constant so browser bundles do not try to include it. */
const DAWN_PACKAGE = 'webgpu';

let device: DeviceLike | null = null;
/** The Dawn instance the first adapter came from, and which of ADAPTERS it was. */
let instance: { gpu: GpuLike; name: string } | null = null;
/** The limits `device` was requested with (JSON), so a request for other limits gets a new device. */
let deviceLimits = '';
let description = '';
/** What {@link webgpuAdapterInfo} returns for the current device. */
let adapterInfo: WebGPUAdapterInfo | null = null;
/** Why the current device was lost, once it is. */
let deviceLost: string | null = null;
/** The first error the GPU reported since the last read. */
let gpuError: string | null = null;

/**
 * Create a WebGPU device and make `webgpu` the active tfjs backend. Returns a description of the adapter.
 * `limits` replaces the adapter's largest values for those limits (e.g. `{ maxStorageBufferBindingSize: 2 ** 27 }`
 * gives a device that binds at most 128 MiB, as a small GPU would); WebGPU raises a value below its default to the
 * default. Asking for other limits than the current device's replaces the device (its tensors are lost), and so does
 * asking again after the device was lost.
 */
export async function initWebGPU(limits: Record<string, number> = {}): Promise<string> {
  const wanted = JSON.stringify(limits);
  if (device && wanted === deviceLimits && deviceLost === null) {
    if (!(await tf.setBackend('webgpu')))
      throw new BackendError('WEBGPU_INIT_FAILED', 'tf.setBackend("webgpu") returned false');
    return description;
  }
  if (device) {
    if (tf.getBackend() === 'webgpu') await tf.setBackend('cpu');
    // Replacing a device by destroying it and starting a new Dawn instance aborted the process (std::system_error);
    // leaving the old device to the garbage collector and reusing the instance (below) does not.
    if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
    device = null;
  }
  let dawn: { create(flags: string[]): GpuLike; globals: Record<string, unknown> };
  // In a browser the page's own navigator.gpu is the adapter source (no Dawn package).
  const browserGpu = isNode() ? undefined : (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  if (!isNode() && !browserGpu) throw new BackendError('BACKEND_UNAVAILABLE', 'this browser has no navigator.gpu');
  try {
    dawn = browserGpu
      ? { create: () => browserGpu, globals: {} }
      : ((await import(/* @vite-ignore */ DAWN_PACKAGE)) as unknown as typeof dawn);
  } catch (e) {
    throw new BackendError(
      'BACKEND_UNAVAILABLE',
      `the optional package "webgpu" is not installed (${(e as Error).message.split('\n')[0]})`,
    );
  }
  // Import the tfjs backend before navigator.gpu exists: it then registers its kernels but not its own factory,
  // whose adapter request cannot ask for compatibility mode.
  let webgpuBackend: { WebGPUBackend: new (device: unknown, info?: unknown) => tf.KernelBackend };
  try {
    webgpuBackend = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as typeof webgpuBackend;
  } catch (e) {
    throw new BackendError(
      'BACKEND_UNAVAILABLE',
      `the optional package "@tensorflow/tfjs-backend-webgpu" is not installed (${(e as Error).message.split('\n')[0]})`,
    );
  }
  installWebGPUMatMul(); // the backend's kernels are registered now: the chosen BatchMatMul replaces tfjs-webgpu's
  Object.assign(globalThis, dawn.globals); // GPUBufferUsage, GPUMapMode, … used by the backend
  const env = nodeProcess()?.env;
  if (env) env.EGL_PLATFORM ??= 'surfaceless'; // Mesa's GLES driver without a display

  const only = browserGpu ? 'default' : envVar('HYPERLLAMA_WEBGPU_ADAPTER');
  const tried: string[] = [];
  let found: { gpu: GpuLike; adapter: AdapterLike; name: string } | null = null;
  // A replacement device comes from the first device's Dawn instance (see above).
  for (const a of ADAPTERS.filter((x) => (instance ? x.name === instance.name : !only || x.name === only))) {
    try {
      const gpu = instance?.gpu ?? dawn.create(a.flags);
      const adapter = await gpu.requestAdapter(a.request);
      if (adapter) {
        found = { gpu, adapter, name: a.name };
        break;
      }
      tried.push(`${a.name}: no adapter`);
    } catch (e) {
      tried.push(`${a.name}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (!found) throw new BackendError('BACKEND_UNAVAILABLE', `no WebGPU adapter (${tried.join('; ')})`, { tried });

  instance = { gpu: found.gpu, name: found.name };
  const { adapter } = found;
  const requiredLimits = Object.fromEntries(
    LIMITS.filter((k) => k in adapter.limits).map((k) => [k, adapter.limits[k]]),
  );
  for (const [k, v] of Object.entries(limits)) {
    if (!(k in adapter.limits))
      throw new BackendError('BAD_OPTION', `unknown WebGPU limit "${k}"`, { field: 'webgpuLimits', actual: k });
    if (!(v > 0 && v <= adapter.limits[k])) {
      throw new BackendError(
        'BAD_OPTION',
        `WebGPU limit ${k}=${v} is outside what the adapter allows (at most ${adapter.limits[k]})`,
        { field: 'webgpuLimits', actual: v },
      );
    }
    requiredLimits[k] = v;
  }
  const requiredFeatures = adapter.features.has('timestamp-query') ? ['timestamp-query'] : [];
  device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  deviceLimits = wanted;
  device.onuncapturederror = (event) => {
    gpuError ??= event.error?.message ?? 'unknown GPU error';
  };
  // A lost device (driver reset, GPU process crash, a browser destroying it) fails every later read with an opaque
  // message; remember why, so reads say so.
  const current = device;
  deviceLost = null;
  void current.lost?.then((i) => {
    if (device === current) deviceLost = `${i.reason}: ${i.message}`;
  });
  const g = globalThis as unknown as { navigator?: { gpu?: GpuLike } };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  if (!g.navigator!.gpu) Object.defineProperty(g.navigator!, 'gpu', { value: found.gpu, configurable: true });

  const info = adapter.info ?? {};
  const label =
    [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unnamed adapter';
  description = `${found.name} adapter (${label})`;
  const numbers = (limits: Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const k in limits) if (typeof limits[k] === 'number') out[k] = limits[k];
    return out;
  };
  adapterInfo = {
    source: found.name as WebGPUAdapterInfo['source'],
    description,
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    driver: info.description ?? '',
    isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
    features: [...adapter.features].sort(),
    adapterLimits: numbers(adapter.limits),
    deviceLimits: numbers(device.limits),
  };
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => {
    const backend = new webgpuBackend.WebGPUBackend(device, info);
    const read = (backend.read as Read).bind(backend);
    (backend as unknown as { read: Read }).read = async (dataId) => {
      let values: unknown;
      try {
        values = await read(dataId);
      } catch (e) {
        if (deviceLost === null) throw e;
        throw new BackendError(
          'WEBGPU_DEVICE_LOST',
          `the WebGPU device was lost (${deviceLost}), and its tensors with it: load the model again, or use wasm`,
          { message: deviceLost },
        );
      }
      if (gpuError !== null) {
        const message = gpuError.split('\n')[0];
        gpuError = null;
        const hint = /size/i.test(message)
          ? ' (a tensor exceeds what the adapter allows: use smaller batches or shorter sequences)'
          : '';
        throw new BackendError(
          'WEBGPU_ERROR',
          `the GPU rejected a computation, so its results are invalid: ${message}${hint}`,
          { message },
        );
      }
      return values;
    };
    // tfjs-webgpu reads synchronously only in a browser, through canvases; in Chromium that later destroyed the
    // device ("Device was destroyed"). Refused everywhere, as Node's Dawn refuses it, with an error that says so.
    const sync = backend as unknown as {
      readSync(dataId: object): unknown;
      tensorMap: { get(dataId: object): { values?: unknown } | undefined };
    };
    const readSync = sync.readSync.bind(backend);
    sync.readSync = (dataId) => {
      if (sync.tensorMap.get(dataId)?.values == null)
        throw new BackendError(
          'WEBGPU_SYNC_READ',
          'a synchronous read (dataSync/arraySync) of a tensor held on the GPU: use await tensor.data() on webgpu',
        );
      return readSync(dataId);
    };
    return backend;
  });
  if (!(await tf.setBackend('webgpu')))
    throw new BackendError('WEBGPU_INIT_FAILED', 'tf.setBackend("webgpu") returned false');
  return description;
}

/** The adapter behind the current webgpu device, as Dawn (or the browser) describes it. */
export interface WebGPUAdapterInfo {
  /** Which adapter request found it: `default` (the platform's GPU) or `opengles` (Mesa's software driver). */
  source: 'default' | 'opengles';
  /** The one-line description `initBackend`'s reason quotes. */
  description: string;
  vendor: string;
  architecture: string;
  /** Device name, e.g. `NVIDIA H200` or `llvmpipe-…`. */
  device: string;
  /** The driver's description (GPUAdapterInfo.description). */
  driver: string;
  /** Whether the adapter says it is a fallback (software) adapter; Mesa's llvmpipe through OpenGL ES does not. */
  isFallbackAdapter: boolean;
  features: string[];
  /** The adapter's largest limits. */
  adapterLimits: Record<string, number>;
  /** The limits the device was created with (the adapter's largest for those the tfjs backend needs). */
  deviceLimits: Record<string, number>;
}

/** The adapter and limits of the current webgpu device; null before `initBackend({ backend: 'webgpu' })` made one. */
export function webgpuAdapterInfo(): WebGPUAdapterInfo | null {
  return device ? adapterInfo : null;
}

/** The largest tensor (bytes) a webgpu shader may bind on the device in use; Infinity before one exists. */
export function webgpuMaxBindingBytes(): number {
  return device?.limits.maxStorageBufferBindingSize ?? Infinity;
}

/** Whether the current webgpu device was lost (the next `initBackend({ backend: 'webgpu' })` makes a new one). */
export function webgpuDeviceLost(): boolean {
  return deviceLost !== null;
}
