import { fail, typeName, type Place } from './errors.js';

/** One input with its reference output(s). */
export interface Example {
  input: string;
  /** The primary reference: the training target and the first of `outputs`. */
  output: string;
  /** All references, present only when there are several (S-NI instances may have more than one). */
  outputs?: string[];
  /** Answer options of this example when they differ between examples (e.g. multiple-choice QA). */
  options?: string[];
  /** The instance id from the source file, when it had one. */
  id?: string;
}

export type Metric = 'accuracy' | 'rougeL' | 'exact';

/** Every task format loads into this one shape. */
export interface Task {
  name: string;
  /** The dataset it came from: an S-NI file's `Source` when it has one, else the format (`sni`, `metaicl`, `p3`, `jsonl`, `synthetic`). */
  source: string;
  category?: string;
  /** The natural-language instruction, when the task has one (S-NI `Definition`). */
  definition?: string;
  /** The pool few-shot examples are drawn from. */
  examples: Example[];
  /** What gets evaluated (or, in training, the targets). Never empty. */
  instances: Example[];
  /** The label set shared by every example and instance (classification tasks). */
  options?: string[];
  metric: Metric;
}

/** Every reference output of an example (`outputs` when present, else `[output]`). */
export function referencesOf(example: Example): string[] {
  return example.outputs ?? [example.output];
}

/** The answer options of an example within its task (its own, else the task's), or undefined. */
export function optionsOf(task: Task, example: Example): string[] | undefined {
  return example.options ?? task.options;
}

/** Builds an {@link Example} from one or more references, keeping `outputs` only when there are several. */
export function makeExample(
  input: string,
  references: string[],
  extra: { options?: string[]; id?: string } = {},
): Example {
  const example: Example = { input, output: references[0] };
  if (references.length > 1) example.outputs = [...references];
  if (extra.options !== undefined) example.options = extra.options;
  if (extra.id !== undefined) example.id = extra.id;
  return example;
}

// ---- field readers for loaders: each names the file and field path when the value is missing or mistyped ----

export type JsonObject = Record<string, unknown>;

export function asObject(value: unknown, place: Place): JsonObject {
  if (typeName(value) !== 'object')
    fail('BAD_FIELD', place, `expected an object, got ${typeName(value)}`, {
      expected: 'object',
      actual: typeName(value),
    });
  return value as JsonObject;
}

function field(obj: JsonObject, key: string, place: Place): unknown {
  if (!(key in obj) || obj[key] === undefined)
    fail('MISSING_FIELD', { ...place, field: joinField(place.field, key) }, 'missing required field');
  return obj[key];
}

export function joinField(parent: string | undefined, key: string | number): string {
  if (typeof key === 'number') return `${parent ?? ''}[${key}]`;
  return parent ? `${parent}.${key}` : key;
}

export function readString(obj: JsonObject, key: string, place: Place): string {
  const value = field(obj, key, place);
  if (typeof value !== 'string') mistyped(place, key, 'a string', value);
  return value;
}

/**
 * A string, or a non-empty array of strings (returned as an array either way). Numbers are accepted and written
 * as JavaScript prints them: released S-NI files hold a few numeric answers (e.g. `"output": [51]`).
 */
export function readStrings(obj: JsonObject, key: string, place: Place, allowEmpty = false): string[] {
  const value = field(obj, key, place);
  const isText = (v: unknown): boolean => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
  if (isText(value)) return [String(value)];
  if (!Array.isArray(value) || !value.every(isText) || (!allowEmpty && value.length === 0)) {
    mistyped(
      place,
      key,
      allowEmpty ? 'a string or an array of strings' : 'a string or a non-empty array of strings',
      value,
    );
  }
  return (value as unknown[]).map(String);
}

export function readArray(obj: JsonObject, key: string, place: Place): unknown[] {
  const value = field(obj, key, place);
  if (!Array.isArray(value)) mistyped(place, key, 'an array', value);
  return value;
}

/** An optional array of strings (e.g. `options`); undefined when absent or null. */
export function readOptionalStrings(obj: JsonObject, key: string, place: Place): string[] | undefined {
  if (obj[key] === undefined || obj[key] === null) return undefined;
  return readStrings(obj, key, place, true);
}

function mistyped(place: Place, key: string, expected: string, value: unknown): never {
  return fail(
    'BAD_FIELD',
    { ...place, field: joinField(place.field, key) },
    `expected ${expected}, got ${typeName(value)}`,
    {
      expected,
      actual: typeName(value),
    },
  );
}

/** Throws `NO_INSTANCES` for a task with nothing to evaluate. */
export function assertHasInstances(task: Task, place: Place): Task {
  if (task.instances.length === 0) fail('NO_INSTANCES', place, `task "${task.name}" has no instances`);
  return task;
}

/** True when every array in `lists` holds the same strings in the same order. */
export function sameStrings(lists: string[][]): boolean {
  return lists.every((l) => l.length === lists[0].length && l.every((s, i) => s === lists[0][i]));
}
