import type { Place } from '../errors.js';
import { assertHasInstances, makeExample, readOptionalStrings, readString, readStrings, type Task } from '../task.js';
import { readJsonl } from './jsonl.js';
import { hoistSharedOptions } from './metaicl.js';
import { basenamePath as basename } from '@hyperllama/runtime';

/** The two one-task-per-file JSONL formats. */
export type LineFormat = 'p3' | 'jsonl';

/** Field names of each line format: P3-style `{inputs, targets, answer_choices?}` and plain `{input, output, options?}`. */
const FIELDS: Record<LineFormat, { input: string; output: string; options: string }> = {
  p3: { input: 'inputs', output: 'targets', options: 'answer_choices' },
  jsonl: { input: 'input', output: 'output', options: 'options' },
};

/**
 * Reads a JSONL file in which every line is one instance of a single task named after the file. The output field
 * may be a string or a list of references. Such a file has no separate example pool: samplers draw the few-shot
 * examples from the other instances.
 */
export function loadLineTask(file: string, format: LineFormat): Task {
  const f = FIELDS[format];
  const instances = readJsonl(file).map(({ line, value }) => {
    const place: Place = { file, line };
    const options = readOptionalStrings(value, f.options, place);
    return makeExample(readString(value, f.input, place), readStrings(value, f.output, place), {
      options: options && options.length > 0 ? options : undefined,
    });
  });
  const task: Task = {
    name: basename(file).replace(/\.jsonl$/i, ''),
    source: format,
    examples: [],
    instances,
    metric: 'rougeL',
  };
  hoistSharedOptions(task);
  if (instances.every((e) => (e.options ?? task.options) !== undefined)) task.metric = 'accuracy';
  return assertHasInstances(task, { file });
}

/** Which line format a parsed first line is in, or undefined when it is neither. */
export function detectLineFormat(first: Record<string, unknown>): LineFormat | undefined {
  if ('inputs' in first && 'targets' in first) return 'p3';
  if ('input' in first && 'output' in first) return 'jsonl';
  return undefined;
}
