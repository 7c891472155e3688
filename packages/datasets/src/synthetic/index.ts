import { Rng, type RngState } from '@hyperllama/runtime';
import type { Episode } from '../sampler.js';
import { fail } from '../errors.js';
import { makeExample, type Example, type Task } from '../task.js';
import { SYNTHETIC_FAMILIES, TASK_LEXICON, type Lexicon, type SyntheticFamily, type TaskSetup } from './families.js';
import type { ContentPool } from './words.js';

export { SYNTHETIC_FAMILIES, type Lexicon, type SyntheticFamily } from './families.js';
export { isHeldOutContent, syntheticVocabulary, type ContentPool } from './words.js';

/**
 * A lexicon whose inputs, label words, keys, values and constants all come from `words` (e.g. common English
 * words): at least 8 distinct words of lowercase ASCII letters, which every rule can work with.
 */
export function lexiconOf(words: readonly string[]): Lexicon {
  const distinct = [...new Set(words)];
  const bad = distinct.find((w) => !/^[a-z]+$/.test(w));
  if (bad !== undefined)
    fail(
      'BAD_OPTION',
      { file: 'lexiconOf', field: 'words' },
      `expected lowercase ASCII words, got ${JSON.stringify(bad)}`,
    );
  if (distinct.length < 8)
    fail(
      'BAD_OPTION',
      { file: 'lexiconOf', field: 'words' },
      `expected at least 8 distinct words, got ${distinct.length}`,
    );
  return { inputs: distinct, content: distinct, values: distinct };
}

export interface SyntheticTaskOptions {
  seed: number;
  /** Size of each task's few-shot pool (default 32). */
  numExamples?: number;
  /** Number of instances per task (default 32). */
  numInstances?: number;
  /**
   * Which content the task gets: `train` (what training episodes draw) or `heldout` (label assignments, lookup tables
   * and constant answers that training never shows). Default: `train`.
   */
  pool?: ContentPool;
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

const DEFAULT_HELD_OUT_FAMILIES: readonly string[] = ['sort', 'symbol_topic', 'compare', 'wrap'];

function syntheticFamily(name: string): SyntheticFamily {
  const family = SYNTHETIC_FAMILIES.find((f) => f.name === name);
  if (!family)
    fail(
      'UNKNOWN_FAMILY',
      { file: 'synthetic', field: 'family' },
      `unknown family "${name}"; known: ${SYNTHETIC_FAMILIES.map((f) => f.name).join(', ')}`,
    );
  return family;
}

/** `synth_<family>_<variant>` (`…_heldout` for held-out content): a safe file name, unique across families. */
export function syntheticTaskName(family: string, variant: string, pool: ContentPool = 'train'): string {
  return `synth_${family}_${variant}${pool === 'heldout' ? '_heldout' : ''}`;
}

/** Draws `n` input/output pairs, distinct inputs while the task's input space allows (then repeats). */
function drawPairs(setup: TaskSetup, rng: Rng, n: number): Example[] {
  const drawn: Example[] = [];
  const inputs = new Set<string>();
  for (let attempt = 0; drawn.length < n; attempt++) {
    const { input, output } = setup.sample(rng);
    if (inputs.has(input) && attempt < n * 20) continue;
    inputs.add(input);
    drawn.push(makeExample(input, [output]));
  }
  return drawn;
}

/**
 * `n` instances of a classification task, as many of each label as `n` allows (labels in the order of `options`, the
 * first `n mod labels` one more), so that a constant answer scores chance and not the majority share of a random
 * draw. Inputs stay distinct from each other and from the example pool while the input space allows.
 */
function balancedInstances(
  setup: TaskSetup,
  rng: Rng,
  examples: readonly Example[],
  options: readonly string[],
  n: number,
): Example[] {
  const want = options.map((_, i) => Math.floor(n / options.length) + (i < n % options.length ? 1 : 0));
  const byLabel: Example[][] = options.map(() => []);
  const seen = new Set(examples.map((x) => x.input));
  for (let attempt = 0; byLabel.some((xs, i) => xs.length < want[i]); attempt++) {
    if (attempt > n * 200)
      fail('BAD_OPTION', { file: 'synthetic', field: 'options' }, `cannot draw ${n} class-balanced instances`);
    const { input, output } = setup.sample(rng);
    const label = options.indexOf(output);
    if (label < 0 || byLabel[label].length >= want[label] || (seen.has(input) && attempt < n * 20)) continue;
    seen.add(input);
    byLabel[label].push(makeExample(input, [output]));
  }
  // Interleaved, so that a prefix of the list (`maxInstances`) stays balanced too.
  return Array.from({ length: Math.max(...want) }, (_, j) =>
    byLabel.flatMap((xs) => (j < xs.length ? [xs[j]] : [])),
  ).flat();
}

/** One synthetic task: a family's variant with content drawn from a pool. */
export interface SyntheticKind {
  family: string;
  variant: string;
}

/**
 * One synthetic task. Everything random comes from `new Rng(seed).fork(<task name>)`, so a task depends only on
 * the seed and its own name, not on which other tasks are generated. Inputs are kept distinct while the family's
 * input space allows; the first `numExamples` draws form the example pool, the rest the instances.
 */
export function makeSyntheticTask(familyName: string, variant: string, opts: SyntheticTaskOptions): Task {
  const family = syntheticFamily(familyName);
  if (!family.variants.includes(variant)) {
    fail(
      'UNKNOWN_FAMILY',
      { file: 'synthetic', field: 'variant' },
      `family "${familyName}" has no variant "${variant}"`,
    );
  }
  const numExamples = opts.numExamples ?? 32;
  const numInstances = opts.numInstances ?? 32;
  const pool = opts.pool ?? 'train';
  const name = syntheticTaskName(family.name, variant, pool);
  const rng = new Rng(opts.seed).fork(name);
  const setup = family.setup(variant, rng.fork('setup'), pool);
  const drawn = drawPairs(setup, rng, numExamples + numInstances);
  const examples = drawn.slice(0, numExamples);
  const task: Task = {
    name,
    source: 'synthetic',
    category: family.skill,
    examples,
    instances: setup.options
      ? balancedInstances(setup, rng.fork('balanced'), examples, setup.options, numInstances)
      : drawn.slice(numExamples),
    metric: setup.options ? 'accuracy' : 'exact',
  };
  if (setup.options) task.options = setup.options;
  return task;
}

/** The kinds of task of each split: training variants, held-out variants of trained families, held-out families. */
export interface SyntheticKindSplit {
  train: SyntheticKind[];
  heldOutParams: SyntheticKind[];
  heldOutFamilies: SyntheticKind[];
}

/** Which (family, variant) pairs train and which are held out; depends only on the seed and the options. */
export function syntheticKinds(
  opts: Pick<SyntheticSplitOptions, 'seed' | 'heldOutFamilies' | 'heldOutFraction'>,
): SyntheticKindSplit {
  const heldOutFamilies = opts.heldOutFamilies ?? DEFAULT_HELD_OUT_FAMILIES;
  heldOutFamilies.forEach(syntheticFamily);
  const fraction = opts.heldOutFraction ?? 0.25;
  if (!(fraction >= 0 && fraction < 1))
    fail('BAD_OPTION', { file: 'synthetic', field: 'heldOutFraction' }, `expected a number in [0, 1), got ${fraction}`);

  const split: SyntheticKindSplit = { train: [], heldOutParams: [], heldOutFamilies: [] };
  for (const family of SYNTHETIC_FAMILIES) {
    const kinds = family.variants.map((variant) => ({ family: family.name, variant }));
    if (heldOutFamilies.includes(family.name)) {
      split.heldOutFamilies.push(...kinds);
      continue;
    }
    const count = fraction === 0 ? 0 : Math.max(1, Math.round(family.variants.length * fraction));
    const held = new Set(
      new Rng(opts.seed)
        .fork(`held-out/${family.name}`)
        .sample(family.variants, Math.min(count, family.variants.length - 1)),
    );
    for (const kind of kinds) (held.has(kind.variant) ? split.heldOutParams : split.train).push(kind);
  }
  return split;
}

/**
 * Every task of every family, split into training and held-out (by family and by parameter) sets. Training tasks
 * draw `train` content; held-out tasks `heldout` content, so no held-out label assignment, lookup table or constant
 * answer is ever shown in training. (Training itself should use {@link FreshEpisodeSampler}, which
 * draws new content for every episode; these fixed training tasks are for inspection and tests.)
 */
export function syntheticTasks(opts: SyntheticSplitOptions): SyntheticSplit {
  const kinds = syntheticKinds(opts);
  const make = (list: SyntheticKind[], pool: ContentPool) =>
    list.map((k) => makeSyntheticTask(k.family, k.variant, { ...opts, pool }));
  return {
    train: make(kinds.train, 'train'),
    heldOutParams: make(kinds.heldOutParams, 'heldout'),
    heldOutFamilies: make(kinds.heldOutFamilies, 'heldout'),
  };
}

/** Whether a synthetic task name belongs to a control family (reported apart from the headline average). */
export function isControlTask(name: string): boolean {
  return SYNTHETIC_FAMILIES.some((f) => f.control && name.startsWith(syntheticTaskName(f.name, '')));
}

export interface FreshEpisodeOptions {
  seed: number;
  /** Demonstrations per episode: a number, or `[min, max]` drawn uniformly per episode. */
  k: number | [number, number];
  /** Content pool (default `train`). */
  pool?: ContentPool;
  /**
   * A share of episodes (`fraction`, 0-1) that draw their words from `lexicon` instead of the tasks' own words, e.g.
   * a list of common English words, many of which a word tokenizer spells in characters: such episodes teach reading
   * and copying words the tokenizer does not know.
   */
  open?: { lexicon: Lexicon; fraction: number };
  /**
   * Share of episodes (0-1) whose task carries its family's short instruction as a definition (see
   * `SyntheticFamily.describe`), as real task files do; the others have none. Default: none.
   */
  definitions?: number;
}

/** JSON-serialisable position of a {@link FreshEpisodeSampler}. */
export interface FreshEpisodeState {
  kind: 'fresh-episodes';
  position: number;
  rng: RngState;
}

/**
 * Few-shot episodes whose task content is new every time: each episode picks a family, then one of its variants, at random,
 * draws that kind's content (label words and their assignment, lookup table, constant...) afresh from the pool, then
 * k demonstrations and one target with distinct inputs. Memorising a task's content is useless: only reading the
 * demonstrations predicts the target. The episode's task holds the demonstrations as `examples` and the target as
 * its only instance. Restoring {@link getState} continues the same stream.
 */
export class FreshEpisodeSampler {
  private rng: Rng;
  private position = 0;
  private readonly families: string[];
  /** Family name → indices of its kinds. */
  private readonly byFamily = new Map<string, number[]>();

  constructor(
    readonly kinds: readonly SyntheticKind[],
    private readonly opts: FreshEpisodeOptions,
    state?: FreshEpisodeState,
  ) {
    if (kinds.length === 0)
      fail('NO_TASKS', { file: 'FreshEpisodeSampler', field: 'kinds' }, 'needs at least one kind of task');
    kinds.forEach((k, i) => {
      syntheticFamily(k.family);
      this.byFamily.set(k.family, [...(this.byFamily.get(k.family) ?? []), i]);
    });
    this.families = [...this.byFamily.keys()];
    const [lo, hi] = typeof opts.k === 'number' ? [opts.k, opts.k] : opts.k;
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && hi >= lo)) {
      fail(
        'BAD_OPTION',
        { file: 'FreshEpisodeSampler', field: 'k' },
        `expected an integer >= 0 or [min, max] with min <= max, got ${JSON.stringify(opts.k)}`,
      );
    }
    const open = opts.open;
    if (open !== undefined && !(open.fraction >= 0 && open.fraction <= 1 && open.lexicon?.inputs?.length > 0)) {
      fail(
        'BAD_OPTION',
        { file: 'FreshEpisodeSampler', field: 'open' },
        `expected { lexicon, fraction } with a lexicon of words and 0 <= fraction <= 1, got fraction ${JSON.stringify(open.fraction)}`,
      );
    }
    if (opts.definitions !== undefined && !(opts.definitions >= 0 && opts.definitions <= 1)) {
      fail(
        'BAD_OPTION',
        { file: 'FreshEpisodeSampler', field: 'definitions' },
        `expected a share between 0 and 1, got ${JSON.stringify(opts.definitions)}`,
      );
    }
    if (state) {
      if (state.kind !== 'fresh-episodes')
        fail(
          'BAD_STATE',
          { file: 'FreshEpisodeSampler', field: 'kind' },
          `expected "fresh-episodes", got ${JSON.stringify(state.kind)}`,
        );
      this.rng = Rng.fromState(state.rng);
      this.position = state.position;
    } else {
      this.rng = new Rng(opts.seed).fork('fresh-episodes');
    }
  }

  next(): Episode {
    const rng = this.rng;
    // Families are equally likely whatever their number of variants; then a variant of the family.
    const family0 = this.families[rng.int(this.families.length)];
    const taskIndex = rng.pick(this.byFamily.get(family0)!);
    const { family: familyName, variant } = this.kinds[taskIndex];
    const family = syntheticFamily(familyName);
    const pool = this.opts.pool ?? 'train';
    const [lo, hi] = typeof this.opts.k === 'number' ? [this.opts.k, this.opts.k] : this.opts.k;
    const k = lo + rng.int(hi - lo + 1);
    // Only a sampler with an open lexicon draws for it, so the stream of one without is unchanged.
    const { open } = this.opts;
    const setup = family.setup(variant, rng, pool, open && rng.next() < open.fraction ? open.lexicon : TASK_LEXICON);
    const pairs = drawPairs(setup, rng, k + 1);
    const target = pairs[k];
    const task: Task = {
      name: syntheticTaskName(family.name, variant, pool),
      source: 'synthetic',
      category: family.skill,
      examples: pairs.slice(0, k),
      instances: [target],
      metric: setup.options ? 'accuracy' : 'exact',
    };
    if (setup.options) task.options = setup.options;
    if (this.opts.definitions !== undefined && rng.next() < this.opts.definitions)
      task.definition = family.describe(variant);
    this.position++;
    return { taskIndex, task, examples: task.examples, target, targetIndex: 0 };
  }

  getState(): FreshEpisodeState {
    return { kind: 'fresh-episodes', position: this.position, rng: this.rng.getState() };
  }
}
