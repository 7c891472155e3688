import { HyperLlamaError } from '@hyperllama/runtime';

/**
 * Errors of `@hyperllama/hypernet`: bad options, batches that do not fit the model, non-finite losses and
 * checkpoints made for another base model. `code` is stable (e.g. `HYPERNET_BASE_MISMATCH`).
 */
export class HypernetError extends HyperLlamaError {}

export function bad(code: string, field: string, expected: string, actual: unknown, extra: Record<string, unknown> = {}): never {
  const where = typeof extra.file === 'string' ? `${extra.file}: ` : '';
  throw new HypernetError(code, `${where}${field}: expected ${expected}, got ${JSON.stringify(actual)}`, { field, expected, actual, ...extra });
}
