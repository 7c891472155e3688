import { fail } from './errors.js';
import type { Example, Task } from './task.js';
import { joinPath as join, nodeWriteFs } from '@hyperllama/runtime';

const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * Writes each task to `<dir>/<task.name>.json` in the Super-NaturalInstructions schema, plus two optional keys
 * (`Options`, `Metric`) so that {@link loadTasks} reads the files back into identical tasks. The output depends
 * only on the tasks (fixed key order, 2-space indentation, trailing newline). Returns the written paths.
 */
export function exportSniTasks(tasks: readonly Task[], dir: string): string[] {
  for (const task of tasks) {
    if (!SAFE_NAME.test(task.name))
      fail('BAD_FIELD', { file: dir, field: 'name' }, `task name "${task.name}" is not a safe file name`);
  }
  nodeWriteFs().mkdirSync(dir, { recursive: true });
  return tasks.map((task) => {
    const file = join(dir, `${task.name}.json`);
    nodeWriteFs().writeFileSync(file, `${JSON.stringify(toSni(task), null, 2)}\n`);
    return file;
  });
}

function toSni(task: Task): Record<string, unknown> {
  const sni: Record<string, unknown> = {
    Source: [task.source],
    Categories: task.category === undefined ? [] : [task.category],
    Definition: task.definition === undefined ? [] : [task.definition],
    'Positive Examples': task.examples.map((e) => item(e, e.outputs ?? e.output)),
    'Negative Examples': [],
    Instances: task.instances.map((e) => item(e, e.outputs ?? [e.output])),
  };
  if (task.options !== undefined) sni.Options = task.options;
  sni.Metric = task.metric;
  return sni;
}

function item(e: Example, output: string | string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (e.id !== undefined) out.id = e.id;
  out.input = e.input;
  out.output = output;
  if (e.options !== undefined) out.options = e.options;
  return out;
}
