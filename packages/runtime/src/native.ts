import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The optional OpenBLAS addon built by `native/build.mjs` (see native/hyperllama_blas.c). */
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

const require = createRequire(import.meta.url);
let loaded: { blas: NativeBlas | null; why: string } | null = null;

/**
 * Load the native matMul addon once. Returns null (with the reason) when it was not built, fails to load, or
 * `HYPERLLAMA_NATIVE=0` turns it off. The file sits at `<package>/native/build/hyperllama_blas.node`.
 */
export function loadNativeBlas(): { blas: NativeBlas | null; why: string } {
  if (process.env.HYPERLLAMA_NATIVE === '0') return { blas: null, why: 'HYPERLLAMA_NATIVE=0' };
  if (loaded) return loaded;
  // src/ (tests) and dist/ (the build) are both one level below the package root.
  const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'build', 'hyperllama_blas.node');
  if (!existsSync(file)) loaded = { blas: null, why: 'not built (run `npm run build:native -w @hyperllama/runtime`)' };
  else {
    try {
      loaded = { blas: require(file) as NativeBlas, why: `OpenBLAS addon ${file}` };
    } catch (e) {
      loaded = { blas: null, why: `failed to load ${file}: ${(e as Error).message.split('\n')[0]}` };
    }
  }
  return loaded;
}
