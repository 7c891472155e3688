import { fail, parseJson, type Place } from '../errors.js';
import {
  asObject,
  assertHasInstances,
  makeExample,
  readOptionalStrings,
  readString,
  sameStrings,
  type Example,
  type Task,
} from '../task.js';
import { readJsonl } from './jsonl.js';
import type { TaskSplit } from './sni.js';
import { basenamePath as basename, fileSystem, joinPath as join } from '@hyperllama/runtime';

/** `<task>_<k>_<seed>_<split>.jsonl`, the file names MetaICL's k-shot data uses. */
const METAICL_FILE = /^(.+)_(\d+)_(\d+)_(train|dev|test)\.jsonl$/;

export function isMetaIclFileName(name: string): boolean {
  return METAICL_FILE.test(name);
}

export interface MetaIclOptions {
  /** Which file gives the instances: `test` when present else `dev` by default. */
  evalSplit?: 'test' | 'dev';
}

/**
 * Reads one MetaICL task directory. Each `(task, k, seed)` group of files becomes one task: the `train` file is the
 * few-shot pool (`examples`), the `test` file (or `dev`) the `instances`. A label set shared by every line becomes
 * `Task.options`; differing per-line `options` stay on the examples. A directory holding several `(k, seed)` groups
 * names its tasks `<task>_<k>_<seed>`.
 */
export function loadMetaIclDir(dir: string, opts: MetaIclOptions = {}): Task[] {
  const groups = new Map<string, Map<string, string>>(); // "task_k_seed" -> split -> file
  for (const name of fileSystem().list(dir).sort()) {
    const m = METAICL_FILE.exec(name);
    if (!m) continue;
    const key = `${m[1]}_${m[2]}_${m[3]}`;
    if (!groups.has(key)) groups.set(key, new Map());
    groups.get(key)!.set(m[4], join(dir, name));
  }
  if (groups.size === 0)
    fail('NO_TASKS', { file: dir }, 'no MetaICL files (<task>_<k>_<seed>_{train,dev,test}.jsonl) in this directory');
  return [...groups].map(([key, files]) => {
    const taskName = groups.size === 1 ? METAICL_FILE.exec(basename([...files.values()][0]))![1] : key;
    return loadMetaIclGroup(taskName, files, dir, opts);
  });
}

function loadMetaIclGroup(name: string, files: Map<string, string>, dir: string, opts: MetaIclOptions): Task {
  const evalSplit = opts.evalSplit ?? (files.has('test') ? 'test' : 'dev');
  const evalFile = files.get(evalSplit);
  if (evalFile === undefined)
    fail(
      'MISSING_FILE',
      { file: join(dir, `${name}_*_${evalSplit}.jsonl`) },
      `no ${evalSplit} file for task "${name}"`,
    );
  const examples = files.has('train') ? readMetaIclFile(files.get('train')!) : [];
  const instances = readMetaIclFile(evalFile);
  const task: Task = { name, source: 'metaicl', examples, instances, metric: 'rougeL' };
  hoistSharedOptions(task);
  if ([...examples, ...instances].every((e) => (e.options ?? task.options) !== undefined)) task.metric = 'accuracy';
  return assertHasInstances(task, { file: evalFile });
}

function readMetaIclFile(file: string): Example[] {
  return readJsonl(file).map(({ line, value }) => {
    const place: Place = { file, line };
    const options = readOptionalStrings(value, 'options', place);
    return makeExample(readString(value, 'input', place), [readString(value, 'output', place)], {
      options: options && options.length > 0 ? options : undefined,
    });
  });
}

/** Moves per-example options to `task.options` when every example and instance has the same non-empty list. */
export function hoistSharedOptions(task: Task): void {
  const all = [...task.examples, ...task.instances];
  const lists = all.map((e) => e.options);
  if (lists.some((l) => l === undefined) || !sameStrings(lists as string[][])) return;
  task.options = lists[0];
  for (const e of all) delete e.options;
}

/** A MetaICL split file (`hr_to_lr.json` etc.): an object of task-name lists such as `train` and `test`. */
export function loadMetaIclSplit(file: string): TaskSplit & Record<string, string[]> {
  const place: Place = { file };
  const obj = asObject(parseJson(fileSystem().readText(file), place), place);
  for (const key of ['train', 'test'])
    if (!(key in obj)) fail('MISSING_FIELD', { file, field: key }, 'missing required field');
  for (const [key, value] of Object.entries(obj)) {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      fail('BAD_FIELD', { file, field: key }, 'expected an array of task names');
    }
  }
  return obj as TaskSplit & Record<string, string[]>;
}

/** True when `dir` is a directory holding MetaICL files directly. */
export function isMetaIclDir(dir: string): boolean {
  return fileSystem().isDirectory(dir) && fileSystem().list(dir).some(isMetaIclFileName);
}
