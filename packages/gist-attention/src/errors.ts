import { HyperLlamaError } from '@hyperllama/runtime';

/**
 * Errors of `@hyperllama/gist-attention`: bad shapes or ids given to a mask, position or prefix builder, and
 * prefix files that are malformed or were made for another model config. `code` is stable (e.g. `GIST_BAD_SHAPE`).
 */
export class GistAttentionError extends HyperLlamaError {}

/** Throws a {@link GistAttentionError} with code `code` unless `ok`; the message names field, expected and actual. */
export function check(
  ok: boolean,
  code: string,
  field: string,
  expected: string,
  actual: unknown,
  extra: Record<string, unknown> = {},
): asserts ok {
  if (!ok) {
    const where = typeof extra.file === 'string' ? `${extra.file}: ` : '';
    throw new GistAttentionError(code, `${where}${field}: expected ${expected}, got ${show(actual)}`, {
      field,
      expected,
      actual,
      ...extra,
    });
  }
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
