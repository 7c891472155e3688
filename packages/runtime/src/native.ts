import { dirnamePath as dirname, joinPath as join } from './files.js';
import { envVar, nodeBuiltin, nodeProcess } from './platform.js';

/** The native addon (native/*.c): OpenBLAS matMuls and fused kernels on the tensors' memory (see native/README.md). */
export interface NativeBlas {
  /** C_i[m, n] = op(A_i) · op(B_i) for i < batch; A_i at i·strideA floats (0 = shared), B_i at i·strideB, C_i at i·m·n. */
  sgemmBatched(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    strideA: number,
    strideB: number,
  ): void;
  /** Row-wise softmax cross-entropy: losses [n] and dlogits [n, C] (see softmaxCrossEntropyWithGrad). */
  softmaxCrossEntropy(
    logits: Float32Array,
    targets: Int32Array,
    weights: Float32Array,
    losses: Float32Array,
    grad: Float32Array,
    rows: number,
    classes: number,
  ): void;
  threads(): number;
  setThreads(n: number): void;
}

/** Functions every addon build must have; an older local build without one is passed over. */
const REQUIRED: readonly (keyof NativeBlas)[] = ['sgemmBatched', 'softmaxCrossEntropy', 'threads', 'setThreads'];

/** Where the addon came from: a local build (`native/build`, from `npm run build:native` or the install script) or the
 * binary shipped for this platform (`native/prebuilt/<platform>-<arch>`). */
export type NativeSource = 'local' | 'prebuilt';

export interface NativeLoad {
  blas: NativeBlas | null;
  /** With an addon: what it is (`prebuilt linux-x64`, `local build`); without: why there is none. */
  why: string;
  source: NativeSource | null;
  file: string | null;
}

/** The addon files to try, in order: a local build, then the prebuilt binary for this platform and architecture. */
export function nativeCandidates(
  packageRoot: string,
  platform: string,
  arch: string,
): Array<{ source: NativeSource; file: string; label: string }> {
  const target = `${platform}-${arch}`;
  return [
    { source: 'local', file: join(packageRoot, 'native', 'build', 'hyperllama_blas.node'), label: 'local build' },
    {
      source: 'prebuilt',
      file: join(packageRoot, 'native', 'prebuilt', target, 'hyperllama_blas.node'),
      label: `prebuilt ${target}`,
    },
  ];
}

let loaded: NativeLoad | null = null;

/**
 * Load the native addon once: a local build (`<package>/native/build`) if there is one that loads, else the prebuilt
 * binary for this platform (`<package>/native/prebuilt/<platform>-<arch>`). Without either (or with
 * `HYPERLLAMA_NATIVE=0`) `blas` is null and `why` says, in one line, why the pure-wasm path runs.
 */
export function loadNativeBlas(): NativeLoad {
  if (envVar('HYPERLLAMA_NATIVE') === '0') return { blas: null, why: 'HYPERLLAMA_NATIVE=0', source: null, file: null };
  if (loaded) return loaded;
  const node = nodeBuiltin<{ createRequire(url: string): (id: string) => unknown }>('module');
  const { existsSync } = nodeBuiltin<{ existsSync(p: string): boolean }>('fs') ?? {};
  const { fileURLToPath } = nodeBuiltin<{ fileURLToPath(u: string): string }>('url') ?? {};
  const proc = nodeProcess() as { platform?: string; arch?: string } | undefined;
  if (!node || !existsSync || !fileURLToPath || !proc?.platform || !proc.arch)
    return { blas: null, why: 'not in Node (the addon is a Node module)', source: null, file: null };
  const require = node.createRequire(import.meta.url);
  // src/ (tests) and dist/ (the build) are both one level below the package root.
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const failures: string[] = [];
  for (const c of nativeCandidates(root, proc.platform, proc.arch)) {
    if (!existsSync(c.file)) continue;
    try {
      const blas = require(c.file) as NativeBlas;
      const missing = REQUIRED.filter((f) => typeof blas[f] !== 'function');
      if (missing.length) failures.push(`${c.label} lacks ${missing.join(', ')} (rebuild it)`);
      else return (loaded = { blas, why: c.label, source: c.source, file: c.file });
    } catch (e) {
      failures.push(`${c.label} failed to load: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const target = `${proc.platform}-${proc.arch}`;
  loaded = {
    blas: null,
    why: failures.length
      ? failures.join('; ')
      : `no prebuilt addon for ${target} and none built here (\`npm run build:native -w @hyperllama/runtime\` needs a C compiler and OpenBLAS)`,
    source: null,
    file: null,
  };
  return loaded;
}
