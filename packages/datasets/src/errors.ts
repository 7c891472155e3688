import { HyperLlamaError } from '@hyperllama/runtime';

/**
 * A task file, corpus or option that `@hyperllama/datasets` cannot use. `details` carries `file` and `field`
 * (and `expected` / `actual` where they apply) so a caller can point at the exact place.
 */
export class DatasetError extends HyperLlamaError {}

/** Where a problem is: a file, optionally a line (JSONL) and a field path such as `Instances[3].output`. */
export interface Place {
  file: string;
  line?: number;
  field?: string;
}

function where(place: Place): string {
  const line = place.line === undefined ? '' : `:${place.line}`;
  const field = place.field === undefined ? '' : ` field "${place.field}"`;
  return `${place.file}${line}${field}`;
}

/** Throws a {@link DatasetError} whose message starts with the file (and line) and field it is about. */
export function fail(code: string, place: Place, problem: string, extra: Record<string, unknown> = {}): never {
  throw new DatasetError(code, `${where(place)}: ${problem}`, { ...place, ...extra });
}

/** A short description of a JSON value's type for error messages (`array`, `null`, `string`, ...). */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** Parses JSON text, turning a syntax error (e.g. a truncated file) into a `BAD_JSON` {@link DatasetError}. */
export function parseJson(text: string, place: Place): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    return fail('BAD_JSON', place, `invalid JSON (${(err as Error).message})`);
  }
}
