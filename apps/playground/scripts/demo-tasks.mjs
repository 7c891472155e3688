// Writes the playground's demo tasks (tasks/<name>.json, S-NI format) from the synthetic generator: held-out content
// (label assignments and constants training never shows), seed 0. Run after `npm run build`:
//   node apps/playground/scripts/demo-tasks.mjs
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportSniTasks, makeSyntheticTask } from '@hyperllama/datasets';

const DEMOS = [
  ['constant', 'c3'],
  ['symbol_rule', 'vowel_first_l2'],
  ['pick', 'word_first'],
  ['repeat', 'word_x3'],
];
const tasks = DEMOS.map(([family, variant]) =>
  makeSyntheticTask(family, variant, { seed: 0, pool: 'heldout', numExamples: 16, numInstances: 8 }),
);
const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'tasks');
exportSniTasks(tasks, out);
console.log(`wrote ${tasks.map((t) => t.name).join(', ')} to ${out}`);
