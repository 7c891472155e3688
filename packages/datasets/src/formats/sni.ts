import { fail, parseJson, type Place } from '../errors.js';
import {
  asObject,
  assertHasInstances,
  joinField,
  makeExample,
  readArray,
  readOptionalStrings,
  readString,
  readStrings,
  type Example,
  type Metric,
  type Task,
} from '../task.js';
import { basenamePath as basename, fileSystem, joinPath as join } from '@hyperllama/runtime';

const METRICS: readonly Metric[] = ['accuracy', 'rougeL', 'exact'];

/**
 * Reads one Super-NaturalInstructions task file: `Definition` (a list of strings, or a plain string in older
 * files), `Categories`, `Source`, `Positive Examples` (the few-shot pool) and `Instances` (`output` a list of
 * references; `id` optional in older files). Two optional keys written by {@link exportSniTasks} are also read:
 * `Options` (the task's label set) and `Metric`.
 */
export function loadSniTask(file: string): Task {
  const place: Place = { file };
  const obj = asObject(parseJson(fileSystem().readText(file), place), place);
  if (!('Instances' in obj))
    fail('MISSING_FIELD', { file, field: 'Instances' }, 'missing required field (not an S-NI task file?)');

  const task: Task = {
    name: basename(file).replace(/\.json$/i, ''),
    source: optionalText(obj, 'Source', place, ', ') ?? 'sni',
    examples: readList(obj, 'Positive Examples', place),
    instances: readList(obj, 'Instances', place),
    metric: 'rougeL',
  };
  const definition = optionalText(obj, 'Definition', place, '\n');
  if (definition !== undefined) task.definition = definition;
  const category = optionalText(obj, 'Categories', place, ', ');
  if (category !== undefined) task.category = category;
  const options = readOptionalStrings(obj, 'Options', place);
  // An empty label set is no label set, as in the JSONL and MetaICL loaders (rank classification needs labels).
  if (options !== undefined && options.length > 0) task.options = options;
  if ('Metric' in obj) {
    const metric = readString(obj, 'Metric', place);
    if (!METRICS.includes(metric as Metric))
      fail('BAD_FIELD', { file, field: 'Metric' }, `expected one of ${METRICS.join(', ')}, got "${metric}"`);
    task.metric = metric as Metric;
    // Accuracy is rank classification over the label set: without one the task cannot be scored.
    const unlabeled = [...task.examples, ...task.instances].find((e) => !(e.options ?? task.options)?.length);
    if (metric === 'accuracy' && unlabeled)
      fail(
        'BAD_FIELD',
        { file, field: 'Options' },
        `"Metric": "accuracy" needs a label set ("Options", or "options" on every example); "${unlabeled.input.slice(0, 40)}" has none`,
      );
  }
  return assertHasInstances(task, place);
}

/** `Positive Examples` may be absent (treated as empty); `Instances` must be present. */
/** Each item has `input` and `output` (a string or a list of references), optionally `id` and `options`. */
function readList(obj: Record<string, unknown>, key: string, place: Place): Example[] {
  if (key !== 'Instances' && !(key in obj)) return [];
  return readArray(obj, key, place).map((item, i) => {
    const p = { ...place, field: joinField(key, i) };
    const o = asObject(item, p);
    const id = 'id' in o ? readString(o, 'id', p) : undefined;
    return makeExample(readString(o, 'input', p), readStrings(o, 'output', p), {
      id,
      options: readOptionalStrings(o, 'options', p),
    });
  });
}

/** A string or list of strings joined by `sep`; undefined when absent or empty. */
function optionalText(obj: Record<string, unknown>, key: string, place: Place, sep: string): string | undefined {
  const parts = readOptionalStrings(obj, key, place);
  return parts === undefined || parts.length === 0 ? undefined : parts.join(sep);
}

/** Task names of an S-NI split folder (`splits/<name>/{train,test}_tasks.txt`; `dev_tasks.txt` when present). */
export interface TaskSplit {
  train: string[];
  test: string[];
  dev?: string[];
}

export function loadSniSplit(dir: string): TaskSplit {
  const split: TaskSplit = {
    train: readTaskList(join(dir, 'train_tasks.txt')),
    test: readTaskList(join(dir, 'test_tasks.txt')),
  };
  const dev = join(dir, 'dev_tasks.txt');
  if (fileSystem().exists(dev)) split.dev = readTaskList(dev);
  return split;
}

/** One task name per line (blank lines ignored, a trailing `.json` dropped). */
export function readTaskList(file: string): string[] {
  if (!fileSystem().exists(file)) fail('MISSING_FILE', { file }, 'task list not found');
  return fileSystem()
    .readText(file)
    .split(/\r?\n/)
    .map((line) => line.trim().replace(/\.json$/i, ''))
    .filter((line) => line.length > 0);
}
