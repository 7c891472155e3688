import * as tf from '@tensorflow/tfjs';
import { BackendError } from './errors.js';
import { dirnamePath as dirname, joinPath as join } from './files.js';
import { envVar, isNode, nodeBuiltin, nodeProcess } from './platform.js';
import { loadNativeBlas } from './native.js';
import { registerWasmKernels } from './wasm-kernels.js';
import { initWebGPU, webgpuDeviceLost, webgpuMaxBindingBytes } from './webgpu.js';
import { setWebGPUMatMul, type WebGPUMatMul } from './webgpu-kernels.js';

export type BackendName = 'auto' | 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';
export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu'];

/**
 * How the wasm backend multiplies matrices: `auto` (default) = `native` when the optional OpenBLAS addon is built
 * (and `HYPERLLAMA_NATIVE` is not 0), else `xnnpack`; `native` requires the addon; `xnnpack` = XNNPACK with explicit
 * transposes; `stock` = tfjs-wasm's own kernel (slow for transposed and batched products; for comparisons).
 */
export type MatMulPath = 'auto' | 'native' | 'xnnpack' | 'stock';

export interface BackendOptions {
  /** Which backend to use; `auto` (default) tries tensorflow, then wasm, then cpu. `HYPERLLAMA_BACKEND` overrides. */
  backend?: BackendName;
  /** Threads for wasm's matMuls (OpenBLAS's, with the native addon) and its pthread pool (default: all cores, at most 8). */
  threads?: number;
  /** wasm pthread pool size (default: 1 when matMuls run on the native addon, else `threads`). 1 disables the pool. */
  wasmThreads?: number;
  /** Print the choice and its reason once to stderr (default false). */
  verbose?: boolean;
  /** wasm matMul path (default `auto`). */
  matMul?: MatMulPath;
  /**
   * webgpu only: device limits to request instead of the adapter's largest, e.g. `{ maxStorageBufferBindingSize:
   * 2 ** 27 }` to behave like a GPU that binds 128 MiB at most (values below WebGPU's defaults become the defaults).
   */
  webgpuLimits?: Record<string, number>;
  /**
   * webgpu only: the kernel of every matMul, `tfjs` (tfjs-webgpu's own; the default) or `tiled` (ours, opt-in until a
   * GPU measures it faster: `matMulWebGPU`). `HYPERLLAMA_WEBGPU_MATMUL` overrides; unset, the current choice stays.
   */
  webgpuMatMul?: WebGPUMatMul;
  /**
   * Browser only: the URL prefix (ending in `/`) the tfjs-backend-wasm `.wasm` files are served from. Under Node they
   * are found in the installed package.
   */
  wasmPaths?: string;
}

export interface BackendInfo {
  /** The tfjs backend now active. `webgpu` is used only when asked for (never by `auto`). */
  name: 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';
  /** Why it was chosen, including what was tried and failed. */
  reason: string;
  /** wasm pthread pool threads actually in use (1 for other backends). */
  threads: number;
  /** Threads that run matMuls (OpenBLAS's with the native addon, else the wasm pool's; 1 for other backends). */
  matMulThreads: number;
  /** What runs matMuls: `openblas`, `xnnpack` or `stock` on wasm; `backend` elsewhere. */
  matMul: 'openblas' | 'xnnpack' | 'stock' | 'backend';
}

type NodeRequire = ((id: string) => unknown) & { resolve(id: string): string };
/** Node's `require` for this module (only called under Node). */
const nodeRequire = (): NodeRequire =>
  nodeBuiltin<{ createRequire(url: string): NodeRequire }>('module')!.createRequire(import.meta.url);
interface NodeFsLite {
  existsSync(p: string): boolean;
  readdirSync(p: string): string[];
  mkdtempSync(prefix: string): string;
  rmSync(p: string, o: { recursive: boolean; force: boolean }): void;
  writeFileSync(p: string, data: string): void;
}
const nodeFs = (): NodeFsLite => nodeBuiltin<NodeFsLite>('fs')!;
/** Logical cores: os.cpus() under Node, navigator.hardwareConcurrency in a browser. */
function coreCount(): number {
  const os = nodeBuiltin<{ cpus(): unknown[] }>('os');
  if (os) return os.cpus().length;
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}
let current: BackendInfo | null = null;
/** The webgpu limits (JSON) the current webgpu backend was initialised with. */
let webgpuLimitsInUse = '{}';
let workerDir: string | null = null;
/** tfjs-backend-wasm registers its factory once at import; after removeBackend it cannot come back in this process. */
let wasmRemoved = false;

/** Try the optional native TensorFlow bindings, GPU build first. Returns the reason on failure. */
/**
 * Why a tfjs-node package cannot load, told without importing it: not installed, or installed without its native
 * addon (its installer downloads libtensorflow, which fails offline). Importing such a package anyway registers its
 * kernels before failing, and the second package then prints a warning for each of them (about 150 lines).
 */
function missingBinding(pkg: string): string | null {
  let dir: string;
  try {
    dir = dirname(nodeRequire().resolve(`${pkg}/package.json`));
  } catch {
    return 'not installed';
  }
  const fs = nodeFs();
  const lib = join(dir, 'lib');
  const built = fs.existsSync(lib) && fs.readdirSync(lib).some((d) => fs.existsSync(join(lib, d, 'tfjs_binding.node')));
  return built
    ? null
    : 'installed without its native addon (lib/napi-v*/tfjs_binding.node: libtensorflow was not downloaded)';
}

async function tryTensorflow(): Promise<{ ok: true; pkg: string } | { ok: false; why: string }> {
  const why: string[] = [];
  if (!isNode()) return { ok: false, why: 'native TensorFlow needs Node' };
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    const missing = missingBinding(pkg);
    if (missing) {
      why.push(`${pkg}: ${missing}`);
      continue;
    }
    try {
      await import(pkg);
      if (tf.findBackend('tensorflow')) return { ok: true, pkg };
      why.push(`${pkg} loaded but registered no 'tensorflow' backend`);
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      why.push(`${pkg}: ${/Cannot find (module|package)/.test(msg) ? 'not installed' : msg.split('\n')[0]}`);
    }
  }
  return { ok: false, why: why.join('; ') };
}

/**
 * Emscripten's pthread workers are created from Blob URLs, which Node's worker_threads cannot load, and tfjs turns
 * threads off in Node. We write the worker (with the threaded module factory prepended) to a .cjs file and hand
 * emscripten that path instead of a Blob URL.
 */
function enableWasmThreads(): void {
  // Workers inherit the parent's execArgv (test runners and loaders add flags a plain CommonJS worker rejects).
  const { mkdtempSync, writeFileSync } = nodeFs();
  const { tmpdir } = nodeBuiltin<{ tmpdir(): string }>('os')!;
  const threads = nodeBuiltin<{ Worker: new (file: string | URL, options?: object) => object }>('worker_threads')!;
  const OriginalWorker = threads.Worker;
  threads.Worker = class extends OriginalWorker {
    constructor(file: string | URL, options: object = {}) {
      const ours = typeof file === 'string' && file.endsWith('.worker.cjs');
      super(file, ours ? { ...options, execArgv: [] } : options);
    }
  };
  const g = globalThis as unknown as { Blob: typeof Blob; URL: typeof URL };
  const OriginalBlob = g.Blob;
  const originalCreate = g.URL.createObjectURL.bind(g.URL);
  let mainScript: string | null = null;
  class RecordingBlob extends OriginalBlob {
    readonly sourceText: string | null;
    constructor(parts: ConstructorParameters<typeof Blob>[0] = [], options?: ConstructorParameters<typeof Blob>[1]) {
      super(parts, options);
      this.sourceText = parts && parts.every((p) => typeof p === 'string') ? (parts as string[]).join('') : null;
      if (this.sourceText?.startsWith('var WasmBackendModuleThreadedSimd')) mainScript = this.sourceText;
    }
  }
  g.Blob = RecordingBlob as unknown as typeof Blob;
  g.URL.createObjectURL = (obj: Blob): string => {
    const text = obj instanceof RecordingBlob ? obj.sourceText : null;
    if (text !== null && text.includes('worker_threads') && mainScript !== null) {
      // The worker normally imports the main script from the Blob it is sent; define the factory up front instead.
      const worker = text.replace(
        /if\(typeof e\.data\.urlOrBlob=="string"\)\{importScripts\(e\.data\.urlOrBlob\)\}else\{var objectUrl=URL\.createObjectURL\(e\.data\.urlOrBlob\);importScripts\(objectUrl\);URL\.revokeObjectURL\(objectUrl\)\}/,
        '',
      );
      workerDir ??= mkdtempSync(join(tmpdir(), 'hyperllama-wasm-'));
      const file = join(workerDir, 'tfjs-backend-wasm-threaded-simd.worker.cjs');
      // The factory source refers to the bundle's module-level requires (fs, path, perf_hooks, os).
      // (Assembled, so this package's code holds no literal require of a Node builtin: see the browser bundle check.)
      const modules = [
        ['0', 'fs'],
        ['1', 'path'],
        ['3', 'perf_hooks'],
        ['4', 'os'],
      ];
      const requires = `var ${modules.map(([i, m]) => `require$$${i}=require('${m}')`).join(',')},commonjsGlobal=globalThis;`;
      writeFileSync(file, `${requires}\n${mainScript};\n${worker}`);
      return file;
    }
    return originalCreate(obj);
  };
}

interface WasmSetup {
  /** wasm pool threads in use. */
  threads: number;
  matMul: BackendInfo['matMul'];
  matMulThreads: number;
  note: string;
}

async function initWasm(
  threads: number,
  wasmThreads: number | undefined,
  path: MatMulPath,
  wasmPaths: string | undefined,
): Promise<WasmSetup> {
  if (wasmRemoved) {
    throw new BackendError(
      'WASM_DISPOSED',
      'the wasm backend was disposed in this process and cannot be initialised again',
    );
  }
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (isNode()) {
    const dist = dirname(nodeRequire().resolve('@tensorflow/tfjs-backend-wasm'));
    if (!nodeFs().existsSync(join(dist, 'tfjs-backend-wasm-simd.wasm'))) {
      throw new BackendError('WASM_FILES_MISSING', `the wasm binaries are missing from ${dist}`, { file: dist });
    }
    wasm.setWasmPaths(`${dist}/`);
  } else if (wasmPaths) {
    wasm.setWasmPaths(wasmPaths.endsWith('/') ? wasmPaths : `${wasmPaths}/`);
  }
  const native =
    path === 'auto' || path === 'native' ? loadNativeBlas() : { blas: null, why: `matMul "${path}" requested` };
  if (path === 'native' && !native.blas)
    throw new BackendError('NATIVE_UNAVAILABLE', `native matMul unavailable: ${native.why}`);
  // With OpenBLAS doing the matMuls on every core, the remaining (memory-bound) wasm ops run best on one thread:
  // a second pool thread would compete with OpenBLAS's workers (PyTorch's fastest 2-core setting is the same split).
  const pool = wasmThreads ?? (native.blas ? 1 : threads);
  if (pool > 1 && !isNode()) {
    // A browser decides for itself: threads only where cross-origin isolation gives SharedArrayBuffer.
    wasm.setThreadsCount(pool);
  } else if (pool > 1) {
    enableWasmThreads();
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(pool);
  } else {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  }
  native.blas?.setThreads(threads);
  registerWasmKernels({ native: native.blas, fastMatMul: path !== 'stock' });
  const matMul = native.blas ? 'openblas' : path === 'stock' ? 'stock' : 'xnnpack';
  const note = native.blas
    ? `matMul on OpenBLAS (${native.why}, ${threads} thread(s))`
    : `matMul on ${matMul} (no native addon: ${native.why})`;
  // The wasm module caps its thread pool at half the logical cores it sees (1 on a 2-core machine); it reads
  // the core count from os.cpus(), so show it enough cores while the backend starts.
  const os = nodeBuiltin<{ cpus: () => unknown[] }>('os') ?? { cpus: () => [] };
  const realCpus = os.cpus;
  if (pool > 1 && isNode())
    os.cpus = () => Array.from({ length: 2 * pool }, (_, i) => realCpus()[i % realCpus().length]);
  // In a browser it sizes the pool from navigator.hardwareConcurrency the same way: shadow it meanwhile.
  const nav = (globalThis as { navigator?: object }).navigator;
  const shadow = pool > 1 && !isNode() && nav !== undefined;
  if (shadow) Object.defineProperty(nav, 'hardwareConcurrency', { value: 2 * pool, configurable: true });
  try {
    if (!(await tf.setBackend('wasm')))
      throw new BackendError('WASM_INIT_FAILED', 'tf.setBackend("wasm") returned false');
  } finally {
    os.cpus = realCpus;
    if (shadow) delete (nav as { hardwareConcurrency?: number }).hardwareConcurrency;
  }
  const used = pool > 1 && (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) ? wasm.getThreadsCount() : 1;
  return { threads: used, matMul, matMulThreads: native.blas ? threads : used, note };
}

/**
 * Choose and initialise the tfjs backend. `auto` tries `tensorflow` (the optional `@tensorflow/tfjs-node-gpu`, then
 * `@tensorflow/tfjs-node`), then `wasm`, then `cpu`; the environment variable `HYPERLLAMA_BACKEND` forces one.
 * Idempotent: a second call with the same choice returns the current backend.
 */
export async function initBackend(options: BackendOptions = {}): Promise<BackendInfo> {
  const forced = envVar('HYPERLLAMA_BACKEND')?.trim();
  const requested = (forced || options.backend || 'auto') as BackendName;
  if (!BACKEND_NAMES.includes(requested)) {
    throw new BackendError(
      'UNKNOWN_BACKEND',
      `unknown backend "${requested}"${forced ? ' (from HYPERLLAMA_BACKEND)' : ''}; expected one of ${BACKEND_NAMES.join(', ')}`,
      { field: forced ? 'HYPERLLAMA_BACKEND' : 'backend', actual: requested, expected: BACKEND_NAMES },
    );
  }
  const threads = options.threads ?? Math.min(8, Math.max(1, coreCount()));
  if (!Number.isInteger(threads) || threads < 1) {
    throw new BackendError('BAD_THREADS', `threads must be a positive integer, got ${threads}`, {
      field: 'threads',
      actual: threads,
    });
  }
  if (options.wasmThreads !== undefined && !(Number.isInteger(options.wasmThreads) && options.wasmThreads >= 1)) {
    throw new BackendError('BAD_THREADS', `wasmThreads must be a positive integer, got ${options.wasmThreads}`, {
      field: 'wasmThreads',
      actual: options.wasmThreads,
    });
  }
  const webgpuMatMul = envVar('HYPERLLAMA_WEBGPU_MATMUL')?.trim() || options.webgpuMatMul;
  if (requested === 'webgpu' && webgpuMatMul) setWebGPUMatMul(webgpuMatMul as WebGPUMatMul);
  // A webgpu device asked for with other limits is a different backend, and a lost one is no backend: either way a
  // new device replaces the current one.
  const otherLimits =
    current?.name === 'webgpu' &&
    requested === 'webgpu' &&
    (JSON.stringify(options.webgpuLimits ?? {}) !== webgpuLimitsInUse || webgpuDeviceLost());
  if (current && (requested === 'auto' || requested === current.name) && !otherLimits) return current;
  if (current) await disposeBackend();

  const source = forced
    ? 'forced by HYPERLLAMA_BACKEND'
    : options.backend && options.backend !== 'auto'
      ? 'requested'
      : 'auto';
  const notes: string[] = [];
  let info: BackendInfo | null = null;

  if (requested === 'tensorflow' || requested === 'auto') {
    const tfn = await tryTensorflow();
    if (tfn.ok && (await tf.setBackend('tensorflow'))) {
      info = {
        name: 'tensorflow',
        reason: `${source}: native TensorFlow from ${tfn.pkg}`,
        threads: 1,
        matMul: 'backend',
        matMulThreads: 1,
      };
    } else if (requested === 'tensorflow') {
      throw new BackendError(
        'BACKEND_UNAVAILABLE',
        `backend "tensorflow" is unavailable: ${tfn.ok ? 'setBackend failed' : tfn.why}`,
        {
          actual: 'tensorflow',
        },
      );
    } else {
      notes.push(`tensorflow unavailable (${tfn.ok ? 'setBackend failed' : tfn.why})`);
    }
  }
  if (requested === 'webgpu') {
    try {
      const adapter = await initWebGPU(options.webgpuLimits);
      info = {
        name: 'webgpu',
        reason: `${source}: WebGPU on the ${adapter}`,
        threads: 1,
        matMul: 'backend',
        matMulThreads: 1,
      };
      webgpuLimitsInUse = JSON.stringify(options.webgpuLimits ?? {});
    } catch (e) {
      if (e instanceof BackendError && e.code === 'BAD_OPTION') throw e;
      throw new BackendError('BACKEND_UNAVAILABLE', `backend "webgpu" failed to initialise: ${(e as Error).message}`, {
        actual: 'webgpu',
      });
    }
  }
  if (!info && (requested === 'wasm' || requested === 'auto')) {
    try {
      const used = await initWasm(threads, options.wasmThreads, options.matMul ?? 'auto', options.wasmPaths);
      info = {
        name: 'wasm',
        reason: [source, ...notes, `wasm with XNNPACK, ${used.threads} thread(s)`, used.note].join('; '),
        threads: used.threads,
        matMul: used.matMul,
        matMulThreads: used.matMulThreads,
      };
    } catch (e) {
      if (requested === 'wasm') {
        throw new BackendError('BACKEND_UNAVAILABLE', `backend "wasm" failed to initialise: ${(e as Error).message}`, {
          actual: 'wasm',
        });
      }
      notes.push(`wasm failed (${(e as Error).message})`);
    }
  }
  if (!info) {
    await tf.setBackend('cpu');
    info = {
      name: 'cpu',
      reason: [source, ...notes, 'pure-JS cpu backend'].join('; '),
      threads: 1,
      matMul: 'backend',
      matMulThreads: 1,
    };
  }
  await tf.ready();
  silenceCpuBanner();
  current = info;
  if (options.verbose) {
    const line = `[hyperllama] backend: ${info.name} (${info.reason})`;
    const stderr = nodeProcess()?.stderr;
    if (stderr) stderr.write(`${line}\n`);
    else console.info(line);
  }
  return info;
}

/** The cpu backend prints an advert for tfjs-node on first use; our backend choice already says what runs. */
function silenceCpuBanner(): void {
  const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false;
}

/** The active backend chosen by {@link initBackend}, or null before it. */
export function currentBackend(): BackendInfo | null {
  return current;
}

/**
 * Release the backend. For wasm this removes the backend, which terminates its pthread workers so the process can
 * exit; call it at the end of a program and in test teardown.
 */
export async function disposeBackend(): Promise<void> {
  if (!current) return;
  const name = current.name;
  current = null;
  if (name === 'wasm') {
    // Removing the wasm backend terminates its pthread workers, which would otherwise keep the process alive.
    await tf.setBackend('cpu');
    tf.removeBackend('wasm');
    wasmRemoved = true;
  }
  if (name === 'webgpu') await tf.setBackend('cpu');
  if (workerDir) {
    nodeFs().rmSync(workerDir, { recursive: true, force: true });
    workerDir = null;
  }
}

/**
 * Whether the active backend can read tensor values synchronously (`dataSync`). In Node the webgpu backend cannot:
 * code on a hot path that only validates values (not computes with them) should skip the read there.
 */
export function supportsSyncRead(): boolean {
  return tf.getBackend() !== 'webgpu';
}

/**
 * The largest tensor, in bytes, the active backend can give one kernel: the device's storage-buffer binding limit on
 * webgpu (128 MiB on the software adapter), unbounded elsewhere. Ops that can be split (attention) stay under it.
 */
export function maxKernelTensorBytes(): number {
  return tf.getBackend() === 'webgpu' ? webgpuMaxBindingBytes() : Infinity;
}

/**
 * Reads `tensors` asynchronously where the active backend cannot read synchronously (webgpu), so that synchronous
 * reads of them (`dataSync`, as file writers do) work afterwards: the backend keeps the values it read next to the GPU
 * copy, until the tensor is disposed (an optimizer step replaces a variable's tensor). Elsewhere it does nothing.
 */
export async function readToHost(tensors: Iterable<tf.Tensor>): Promise<void> {
  if (supportsSyncRead()) return;
  for (const t of tensors) await t.data(); // one at a time: one staging buffer in flight
}

/**
 * Runs the synchronous `f` on the cpu backend when the active one cannot read synchronously, then switches back: for
 * loading code that reads what it creates (checksums, statistics). The tensors `f` creates move to the active backend
 * on first use; tensors already on that backend cannot be read here.
 */
export async function onSyncReadBackend<T>(f: () => T): Promise<T> {
  if (supportsSyncRead()) return f();
  const active = tf.getBackend();
  await tf.setBackend('cpu');
  try {
    return f();
  } finally {
    await tf.setBackend(active);
  }
}
