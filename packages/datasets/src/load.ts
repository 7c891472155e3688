import { fail, parseJson } from './errors.js';
import { detectLineFormat, loadLineTask, type LineFormat } from './formats/lines.js';
import { isMetaIclDir, isMetaIclFileName, loadMetaIclDir, type MetaIclOptions } from './formats/metaicl.js';
import { loadSniTask } from './formats/sni.js';
import { asObject, type Task } from './task.js';
import {
  basenamePath as basename,
  dirnamePath as dirname,
  extnamePath as extname,
  fileSystem,
  joinPath as join,
} from '@hyperllama/runtime';

export type TaskFormat = 'sni' | 'metaicl' | 'p3' | 'jsonl';
const FORMATS: readonly TaskFormat[] = ['sni', 'metaicl', 'p3', 'jsonl'];

export interface LoadTasksOptions extends MetaIclOptions {
  /** `auto` (default) detects the format from file names and contents. */
  format?: 'auto' | TaskFormat;
}

export interface LoadedTasks {
  /** The format(s) found, in the order of the tasks. */
  formats: TaskFormat[];
  tasks: Task[];
  /** One line saying what was found, e.g. `175 sni tasks (23738 instances) from /data/sni`. */
  summary: string;
}

/**
 * Loads every task under a file or directory: an S-NI task file or folder of them, a MetaICL task folder or a
 * folder of MetaICL task folders, or P3-style / plain JSONL files (one task per file). Any unreadable or malformed
 * file aborts the whole load with a {@link DatasetError}; nothing is skipped silently.
 */
export function loadTasks(path: string, opts: LoadTasksOptions = {}): LoadedTasks {
  const format = opts.format ?? 'auto';
  if (format !== 'auto' && !FORMATS.includes(format)) {
    fail(
      'UNKNOWN_FORMAT',
      { file: path, field: 'format' },
      `unknown format "${format}"; expected auto, ${FORMATS.join(', ')}`,
    );
  }
  if (!fileSystem().exists(path)) fail('MISSING_FILE', { file: path }, 'no such file or directory');
  const loaded = fileSystem().isDirectory(path) ? loadDir(path, format, opts) : [loadFile(path, format, opts)];
  const entries = loaded.flat();
  if (entries.length === 0)
    fail('NO_TASKS', { file: path }, 'no tasks found (expected S-NI .json, MetaICL folders or .jsonl files)');

  const seen = new Set<string>();
  for (const { task } of entries) {
    if (seen.has(task.name))
      fail('DUPLICATE_TASK', { file: path, field: 'name' }, `two tasks are named "${task.name}"`);
    seen.add(task.name);
  }
  const formats = entries.map((e) => e.format);
  const counts = FORMATS.filter((f) => formats.includes(f)).map((f) => `${formats.filter((x) => x === f).length} ${f}`);
  const instances = entries.reduce((n, e) => n + e.task.instances.length, 0);
  return {
    formats,
    tasks: entries.map((e) => e.task),
    summary: `${counts.join(' + ')} tasks (${instances} instances) from ${path}`,
  };
}

interface Entry {
  format: TaskFormat;
  task: Task;
}

function loadFile(file: string, format: 'auto' | TaskFormat, opts: MetaIclOptions): Entry[] {
  const name = basename(file);
  const detected = format !== 'auto' ? format : detectFileFormat(file);
  if (detected === 'sni') return [{ format: 'sni', task: loadSniTask(file) }];
  if (detected === 'metaicl') {
    const m = /^(.+)_(\d+)_(\d+)_(train|dev|test)\.jsonl$/.exec(name);
    if (!m) fail('UNKNOWN_FORMAT', { file }, 'not a MetaICL file name (<task>_<k>_<seed>_{train,dev,test}.jsonl)');
    const tasks = loadMetaIclDir(dirname(file), opts).filter(
      (t) => t.name === m[1] || t.name === `${m[1]}_${m[2]}_${m[3]}`,
    );
    return tasks.map((task) => ({ format: 'metaicl', task }));
  }
  return [{ format: detected, task: loadLineTask(file, detected) }];
}

function detectFileFormat(file: string): TaskFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.json') return 'sni';
  if (ext === '.jsonl') {
    if (isMetaIclFileName(basename(file))) return 'metaicl';
    const firstLine = fileSystem()
      .readText(file)
      .split('\n')
      .find((l) => l.trim() !== '');
    if (firstLine === undefined) fail('NO_INSTANCES', { file }, 'empty JSONL file');
    const lineFormat: LineFormat | undefined = detectLineFormat(
      asObject(parseJson(firstLine, { file, line: 1 }), { file, line: 1 }),
    );
    if (lineFormat) return lineFormat;
    fail('UNKNOWN_FORMAT', { file, line: 1 }, 'JSONL lines have neither {input, output} nor {inputs, targets}');
  }
  return fail('UNKNOWN_FORMAT', { file }, `cannot tell the task format of a "${ext || 'extensionless'}" file`);
}

function loadDir(dir: string, format: 'auto' | TaskFormat, opts: MetaIclOptions): Entry[][] {
  const names = fileSystem().list(dir).sort();
  const metaicl = (d: string): Entry[] => loadMetaIclDir(d, opts).map((task) => ({ format: 'metaicl', task }));
  if ((format === 'auto' || format === 'metaicl') && isMetaIclDir(dir)) return [metaicl(dir)];
  const subdirs = names.map((n) => join(dir, n)).filter((p) => fileSystem().isDirectory(p) && isMetaIclDir(p));
  if ((format === 'auto' || format === 'metaicl') && subdirs.length > 0) return subdirs.map(metaicl);
  if (format === 'metaicl') fail('NO_TASKS', { file: dir }, 'no MetaICL task files or folders here');

  const files = names.map((n) => join(dir, n)).filter((p) => !fileSystem().isDirectory(p));
  const json = files.filter((p) => extname(p).toLowerCase() === '.json');
  const jsonl = files.filter((p) => extname(p).toLowerCase() === '.jsonl');
  if (format === 'sni' || (format === 'auto' && json.length > 0))
    return json.map((f) => [{ format: 'sni', task: loadSniTask(f) }]);
  return jsonl.map((f) => loadFile(f, format, opts));
}
