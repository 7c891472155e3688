import * as tf from '@tensorflow/tfjs';
import { HyperLlamaError, supportsSyncRead } from '@hyperllama/runtime';

/**
 * Errors of `@hyperllama/hypernet`: bad options, batches that do not fit the model, non-finite losses and
 * checkpoints made for another base model. `code` is stable (e.g. `HYPERNET_BASE_MISMATCH`).
 */
export class HypernetError extends HyperLlamaError {}

export function bad(
  code: string,
  field: string,
  expected: string,
  actual: unknown,
  extra: Record<string, unknown> = {},
): never {
  const where = typeof extra.file === 'string' ? `${extra.file}: ` : '';
  throw new HypernetError(code, `${where}${field}: expected ${expected}, got ${JSON.stringify(actual)}`, {
    field,
    expected,
    actual,
    ...extra,
  });
}

/**
 * Initialisations that read the model's statistics synchronously, which the webgpu backend refuses. Built on the cpu
 * or wasm backend first, their variables follow `tf.setBackend('webgpu')` on first use.
 */
export function requireSyncRead(what: string): void {
  if (supportsSyncRead()) return;
  throw new HypernetError(
    'HYPERNET_NEEDS_SYNC_READ',
    `${what} reads the model's statistics synchronously, which the ${tf.getBackend()} backend cannot do; create it on the cpu or wasm backend, then switch backends (its variables move on first use)`,
    { backend: tf.getBackend() },
  );
}
