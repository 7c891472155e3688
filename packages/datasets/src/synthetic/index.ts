import { Rng } from '@hyperllama/runtime';
import { fail } from '../errors.js';
import { makeExample, type Example, type Task } from '../task.js';
import { SYNTHETIC_FAMILIES, type SyntheticFamily } from './families.js';

export { SYNTHETIC_FAMILIES, type Pair, type Skill, type SyntheticFamily, type TaskSetup } from './families.js';

export interface SyntheticTaskOptions {
  seed: number;
  /** Size of each task's few-shot pool (default 32). */
  numExamples?: number;
  /** Number of instances per task (default 32). */
  numInstances?: number;
}

export interface SyntheticSplitOptions extends SyntheticTaskOptions {
  /** Families whose every variant is held out (default: sort, symbol_topic, compare, wrap). */
  heldOutFamilies?: readonly string[];
  /** Fraction of each remaining family's variants held out, chosen by the seed (default 0.25, at least one). */
  heldOutFraction?: number;
}

/** Training tasks and the two kinds of held-out tasks; no task is in more than one list. */
export interface SyntheticSplit {
  train: Task[];
  /** Unseen parameter settings of families that are otherwise trained on. */
  heldOutParams: Task[];
  /** Every task of the held-out families. */
  heldOutFamilies: Task[];
}

export const DEFAULT_HELD_OUT_FAMILIES: readonly string[] = ['sort', 'symbol_topic', 'compare', 'wrap'];

export function syntheticFamily(name: string): SyntheticFamily {
  const family = SYNTHETIC_FAMILIES.find((f) => f.name === name);
  if (!family) fail('UNKNOWN_FAMILY', { file: 'synthetic', field: 'family' }, `unknown family "${name}"; known: ${SYNTHETIC_FAMILIES.map((f) => f.name).join(', ')}`);
  return family;
}

/** `synth_<family>_<variant>`: a safe file name, unique across families. */
export function syntheticTaskName(family: string, variant: string): string {
  return `synth_${family}_${variant}`;
}

/**
 * One synthetic task. Everything random comes from `new Rng(seed).fork(<task name>)`, so a task depends only on
 * the seed and its own name, not on which other tasks are generated. Inputs are kept distinct while the family's
 * input space allows; the first `numExamples` draws form the example pool, the rest the instances.
 */
export function makeSyntheticTask(familyName: string, variant: string, opts: SyntheticTaskOptions): Task {
  const family = syntheticFamily(familyName);
  if (!family.variants.includes(variant)) {
    fail('UNKNOWN_FAMILY', { file: 'synthetic', field: 'variant' }, `family "${familyName}" has no variant "${variant}"`);
  }
  const numExamples = opts.numExamples ?? 32;
  const numInstances = opts.numInstances ?? 32;
  const name = syntheticTaskName(family.name, variant);
  const rng = new Rng(opts.seed).fork(name);
  const setup = family.setup(variant, rng.fork('setup'));

  const needed = numExamples + numInstances;
  const drawn: Example[] = [];
  const inputs = new Set<string>();
  // Prefer distinct inputs; small input spaces (e.g. a 4-key lookup table) fall back to repeats.
  for (let attempt = 0; drawn.length < needed; attempt++) {
    const { input, output } = setup.sample(rng);
    if (inputs.has(input) && attempt < needed * 20) continue;
    inputs.add(input);
    drawn.push(makeExample(input, [output]));
  }
  const task: Task = {
    name,
    source: 'synthetic',
    category: family.skill,
    examples: drawn.slice(0, numExamples),
    instances: drawn.slice(numExamples),
    metric: setup.options ? 'accuracy' : 'exact',
  };
  if (setup.options) task.options = setup.options;
  return task;
}

/** Every task of every family, split into training and held-out (by family and by parameter) sets. */
export function syntheticTasks(opts: SyntheticSplitOptions): SyntheticSplit {
  const heldOutFamilies = opts.heldOutFamilies ?? DEFAULT_HELD_OUT_FAMILIES;
  heldOutFamilies.forEach(syntheticFamily);
  const fraction = opts.heldOutFraction ?? 0.25;
  if (!(fraction >= 0 && fraction < 1)) fail('BAD_OPTION', { file: 'synthetic', field: 'heldOutFraction' }, `expected a number in [0, 1), got ${fraction}`);

  const split: SyntheticSplit = { train: [], heldOutParams: [], heldOutFamilies: [] };
  for (const family of SYNTHETIC_FAMILIES) {
    const tasks = family.variants.map((v) => makeSyntheticTask(family.name, v, opts));
    if (heldOutFamilies.includes(family.name)) {
      split.heldOutFamilies.push(...tasks);
      continue;
    }
    const count = fraction === 0 ? 0 : Math.max(1, Math.round(family.variants.length * fraction));
    const held = new Set(new Rng(opts.seed).fork(`held-out/${family.name}`).sample(family.variants, Math.min(count, family.variants.length - 1)));
    for (const [i, task] of tasks.entries()) (held.has(family.variants[i]) ? split.heldOutParams : split.train).push(task);
  }
  return split;
}
