import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  CompressionSampler,
  EpisodeSampler,
  FreshEpisodeSampler,
  defaultCorpus,
  loadTasks,
  readCorpus,
  syntheticKinds,
  syntheticTasks,
  type Episode,
  type EpisodeSamplerState,
  type FreshEpisodeState,
  type LmBatch,
  type SyntheticKind,
  type Task,
  type TextDocument,
} from '@hyperllama/datasets';
import { createLlama, extendVocabulary, loadLlama, type LlamaConfig, type LlamaModel } from '@hyperllama/llama-model';
import { TokenizerError, extendWordTokenizer, loadTokenizer, type Tokenizer } from '@hyperllama/tokenizer';
import type { Stage, TrainConfig } from './config.js';
import { TrainerError } from './errors.js';
import { englishLexicon, englishWords } from './lexicon.js';
import { WORD_VOCAB_SIZE, charTokenizer, wordTokenizer } from './tiny.js';

/**
 * The tokenizer: `model.tokenizer` (a file or directory, or `builtin:word` / `builtin:char`), else the base directory's,
 * else the built-in character tokenizer; grown by `model.addWords` when set.
 */
export function resolveTokenizer(cfg: TrainConfig): Tokenizer {
  const tokenizer = unextendedTokenizer(cfg);
  if (cfg.model.addWords === null) return tokenizer;
  if (!cfg.model.base) {
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `model.addWords: grows the vocabulary of a trained base; give model.base (a from-scratch model takes model.tokenizer: builtin:word)`,
      { field: 'model.addWords' },
    );
  }
  try {
    return extendWordTokenizer(
      tokenizer,
      addedWords(cfg.model.addWords).map((w) => ` ${w}`),
    ).tokenizer;
  } catch (e) {
    if (!(e instanceof TokenizerError)) throw e;
    throw new TrainerError('CONFIG_BAD_VALUE', `model.addWords: ${e.message}`, { field: 'model.addWords' });
  }
}

/** The words of `model.addWords`: `english`, or a file with one word (ASCII letters or digits) per line. */
function addedWords(source: string): string[] {
  if (source === 'english') return englishWords();
  if (!existsSync(source) || !statSync(source).isFile()) {
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `model.addWords: expected english or a word-list file, got "${source}"`,
      {
        field: 'model.addWords',
        file: source,
      },
    );
  }
  const lines = readFileSync(source, 'utf8').split(/\r?\n/);
  const words: string[] = [];
  lines.forEach((line, i) => {
    const word = line.trim();
    if (word === '') return;
    if (!/^(?:[A-Za-z]+|[0-9]+)$/.test(word)) {
      throw new TrainerError(
        'CONFIG_BAD_VALUE',
        `model.addWords: ${source}:${i + 1}: expected one word of ASCII letters or of digits, got ${JSON.stringify(word)}`,
        { field: 'model.addWords', file: source, actual: word },
      );
    }
    words.push(word);
  });
  return words;
}

/** The tokenizer before `model.addWords`: the one the base (or a from-scratch model) was trained with. */
function unextendedTokenizer(cfg: TrainConfig): Tokenizer {
  if (cfg.model.vocabSize !== null && cfg.model.tokenizer !== 'builtin:word') {
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `model.vocabSize: only the built-in word tokenizer takes a size (model.tokenizer: builtin:word), got model.tokenizer ${JSON.stringify(cfg.model.tokenizer)}`,
      { field: 'model.vocabSize' },
    );
  }
  if (cfg.model.tokenizer === 'builtin:word')
    return wordTokenizer(resolveCorpus(cfg), cfg.model.vocabSize ?? WORD_VOCAB_SIZE);
  if (cfg.model.tokenizer === 'builtin:char') return charTokenizer();
  if (cfg.model.tokenizer) return loadTokenizer(cfg.model.tokenizer);
  const base = cfg.model.base;
  if (
    base &&
    existsSync(base) &&
    statSync(base).isDirectory() &&
    (existsSync(join(base, 'tokenizer.json')) || existsSync(join(base, 'tokenizer.model')))
  ) {
    return loadTokenizer(base);
  }
  if (base)
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `model.tokenizer: the base "${base}" has no tokenizer.json / tokenizer.model; give model.tokenizer`,
      { field: 'model.tokenizer' },
    );
  return charTokenizer();
}

/** The Llama config of a from-scratch model: the `model.*` sizes and the tokenizer's vocabulary and special ids. */
export function scratchConfig(cfg: TrainConfig, tokenizer: Tokenizer): LlamaConfig {
  const m = cfg.model;
  if (m.hiddenSize % m.numAttentionHeads !== 0) {
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `model.hiddenSize: expected a multiple of model.numAttentionHeads (${m.numAttentionHeads}), got ${m.hiddenSize}`,
      { field: 'model.hiddenSize' },
    );
  }
  if (m.numAttentionHeads % m.numKeyValueHeads !== 0) {
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `model.numKeyValueHeads: expected a divisor of model.numAttentionHeads (${m.numAttentionHeads}), got ${m.numKeyValueHeads}`,
      { field: 'model.numKeyValueHeads' },
    );
  }
  return {
    vocabSize: tokenizer.numTokens,
    hiddenSize: m.hiddenSize,
    intermediateSize: m.intermediateSize,
    numHiddenLayers: m.numHiddenLayers,
    numAttentionHeads: m.numAttentionHeads,
    numKeyValueHeads: m.numKeyValueHeads,
    headDim: m.hiddenSize / m.numAttentionHeads,
    maxPositionEmbeddings: m.maxPositionEmbeddings,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    bosTokenId: tokenizer.bosId,
    eosTokenId: tokenizer.eosId,
    padTokenId: tokenizer.padId,
  };
}

/** The base model: `model.base` loaded, or the seeded random-init tiny default (identical for the same seed). */
export function resolveModel(
  cfg: TrainConfig,
  tokenizer: Tokenizer,
  trainable: boolean,
): { model: LlamaModel; basePath: string } {
  if (cfg.model.base) {
    let model = loadLlama(cfg.model.base, { trainable });
    if (cfg.model.addWords !== null) model = withAddedWords(cfg, tokenizer, model, trainable);
    // Gist tokens live past the vocabulary; every other id must index the base's embedding exactly.
    const tokens = tokenizer.numTokens - tokenizer.gistIds.length;
    if (tokens !== model.config.vocabSize) {
      model.dispose();
      throw new TrainerError(
        'TOKENIZER_MISMATCH',
        `model.tokenizer: ${cfg.model.tokenizer ?? tokenizer.source} has ${tokens} tokens but the base ${cfg.model.base} has vocabSize ${model.config.vocabSize}`,
        {
          field: 'model.tokenizer',
          file: cfg.model.tokenizer ?? tokenizer.source,
          expected: model.config.vocabSize,
          actual: tokens,
        },
      );
    }
    return { model, basePath: cfg.model.base };
  }
  const model = createLlama(scratchConfig(cfg, tokenizer), { seed: cfg.seed, std: cfg.model.initStd, trainable });
  return { model, basePath: `random-init(seed=${cfg.seed})` };
}

/**
 * The base grown to `tokenizer`'s added words: each new row starts as the mean of the rows of the pieces the base's
 * own tokenizer spells that word with.
 */
function withAddedWords(cfg: TrainConfig, tokenizer: Tokenizer, base: LlamaModel, trainable: boolean): LlamaModel {
  const spelled = unextendedTokenizer(cfg);
  const sources: number[][] = [];
  for (let id = base.config.vocabSize; id < tokenizer.vocabSize; id++) {
    sources.push(spelled.encode(tokenizer.idToToken(id)!, { bos: false, eos: false }));
  }
  const grown = extendVocabulary(base, sources, { trainable });
  base.dispose();
  return grown;
}

export interface TaskSets {
  train: Task[];
  /**
   * What the held-out loss draws from: `data.evalTasks` when set; else unseen parameter settings of the synthetic
   * families, or each task file's instances held out by `data.heldOutShare` (never trained on).
   */
  evalTasks: Task[];
  /** Every task (prefix-tune looks its task up here), held-out families last. */
  all: Task[];
  heldOutFamilies: Task[];
  /**
   * Synthetic training: the kinds of task whose content training episodes draw afresh every time (set when
   * `data.tasks` is null; `train` then only lists fixed examples of those kinds).
   */
  fresh?: SyntheticKind[];
}

/** A stream of training episodes with a JSON-serialisable position. */
export interface EpisodeSource {
  next(): Episode;
  getState(): unknown;
}

/** Demonstrations per training episode: `data.shots`, or a range from `data.minShots` for fresh synthetic episodes. */
export function shotRange(cfg: TrainConfig): number | [number, number] {
  // Only few-shot training asks for a range: an episode with no demonstration cannot teach reading them.
  if (cfg.data.shots < 1)
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `data.shots: expected at least 1 demonstration per few-shot episode, got ${cfg.data.shots}`,
      { field: 'data.shots', actual: cfg.data.shots },
    );
  const min = cfg.data.minShots;
  if (min === null || min === cfg.data.shots) return cfg.data.shots;
  if (min > cfg.data.shots)
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `data.minShots: expected at most data.shots (${cfg.data.shots}), got ${min}`,
      { field: 'data.minShots', actual: min },
    );
  return [min, cfg.data.shots];
}

/**
 * The training episodes of a stage: fresh-content synthetic episodes (new labels, tables, constants every episode,
 * `k` a number or a range) or episodes of the task files. `state` restores a position from a checkpoint.
 */
export function trainingEpisodes(
  cfg: TrainConfig,
  sets: TaskSets,
  k: number | [number, number],
  state?: unknown,
): EpisodeSource {
  if (sets.fresh) {
    const open = cfg.data.openLexicon > 0 ? { lexicon: englishLexicon(), fraction: cfg.data.openLexicon } : undefined;
    // Only a share above 0 draws for definitions, so streams without them stay as they were.
    const definitions = cfg.data.definitions > 0 ? cfg.data.definitions : undefined;
    return new FreshEpisodeSampler(
      sets.fresh,
      { seed: cfg.seed, k, open, definitions },
      state as FreshEpisodeState | undefined,
    );
  }
  // Task files bring their own words and definitions.
  const unsupported = (['openLexicon', 'definitions'] as const).find((field) => cfg.data[field] > 0);
  if (unsupported) {
    const why = {
      openLexicon: 'only synthetic episodes can draw their words from another lexicon',
      definitions: 'only synthetic episodes get made-up definitions (task files bring their own)',
    }[unsupported];
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `data.${unsupported}: ${why}; with data.tasks (${cfg.data.tasks}) set it to 0`,
      { field: `data.${unsupported}`, actual: cfg.data[unsupported] },
    );
  }
  return new EpisodeSampler(
    sets.train,
    { seed: cfg.seed, k: typeof k === 'number' ? k : k[1] },
    state as EpisodeSamplerState | undefined,
  );
}

export function resolveTasks(cfg: TrainConfig): TaskSets {
  const evalFile = cfg.data.evalTasks ? loadTasks(cfg.data.evalTasks).tasks : undefined;
  if (cfg.data.tasks) {
    const { tasks } = loadTasks(cfg.data.tasks);
    if (evalFile) return { train: tasks, evalTasks: evalFile, all: [...tasks, ...evalFile], heldOutFamilies: [] };
    const split = holdOutInstances(tasks, cfg.data.heldOutShare);
    if (split.heldOut.length === 0) {
      throw new TrainerError(
        'CONFIG_BAD_VALUE',
        `data.heldOutShare: ${cfg.data.heldOutShare} holds out no instance of any task in ${cfg.data.tasks} (a task needs at least 2 instances); raise it or set data.evalTasks`,
        { field: 'data.heldOutShare', actual: cfg.data.heldOutShare },
      );
    }
    return { train: split.train, evalTasks: split.heldOut, all: tasks, heldOutFamilies: [] };
  }
  const split = syntheticTasks({ seed: cfg.seed });
  return {
    fresh: syntheticKinds({ seed: cfg.seed }).train,
    train: split.train,
    evalTasks: evalFile ?? split.heldOutParams,
    all: [...split.train, ...split.heldOutParams, ...split.heldOutFamilies, ...(evalFile ?? [])],
    heldOutFamilies: split.heldOutFamilies,
  };
}

/**
 * Splits each task's instances: the last `round(share·n)` (at least 1 when share > 0 and n ≥ 2, never all) go to
 * `heldOut`, the rest to `train`. A task without an example pool keeps drawing demonstrations from its training
 * instances in both halves, so held-out targets never appear as demonstrations either.
 */
export function holdOutInstances(tasks: readonly Task[], share: number): { train: Task[]; heldOut: Task[] } {
  const train: Task[] = [];
  const heldOut: Task[] = [];
  for (const task of tasks) {
    const n = task.instances.length;
    const held = share > 0 && n >= 2 ? Math.min(n - 1, Math.max(1, Math.round(share * n))) : 0;
    if (held === 0) {
      train.push(task);
      continue;
    }
    const trainPart = task.instances.slice(0, n - held);
    train.push({ ...task, instances: trainPart });
    heldOut.push({
      ...task,
      examples: task.examples.length > 0 ? task.examples : trainPart,
      instances: task.instances.slice(n - held),
    });
  }
  return { train, heldOut };
}

export function resolveCorpus(cfg: TrainConfig): TextDocument[] {
  return cfg.data.corpus ? readCorpus(cfg.data.corpus) : defaultCorpus();
}

/** A, B, C, D segment lengths that add up to `seqLen` (B and C, what the downstream reads, get the remainder). */
export function segmentLengths(seqLen: number): { a: number; b: number; c: number; d: number } {
  const q = Math.max(1, Math.floor(seqLen / 4));
  return { a: q, b: q, c: Math.max(1, seqLen - 3 * q), d: q };
}

/**
 * Right-padded LM rows; labels on every real token except BOS (plain language modelling) unless given. The width is
 * rounded up to a `multiple`: fewer distinct tensor sizes keep the wasm heap, which never shrinks, from fragmenting
 * over thousands of steps.
 */
export function padLm(rows: Array<{ ids: number[]; labels?: number[] }>, padId: number, multiple = 1): LmBatch {
  const width = Math.ceil(Math.max(...rows.map((r) => r.ids.length)) / multiple) * multiple;
  const fill = <T>(xs: T[], v: T) => [...xs, ...Array<T>(width - xs.length).fill(v)];
  return {
    inputIds: rows.map((r) => fill(r.ids, padId)),
    attentionMask: rows.map((r) =>
      fill(
        r.ids.map(() => 1),
        0,
      ),
    ),
    labels: rows.map((r) => fill(r.labels ?? r.ids.map((id, t) => (t === 0 ? -100 : id)), -100)),
    lengths: rows.map((r) => r.ids.length),
  };
}

/** Text windows of `seqLen` tokens (after BOS) from a compression sampler. */
export function textRow(sampler: CompressionSampler, bosId: number): number[] {
  const s = sampler.next();
  return [bosId, ...s.a, ...s.b, ...s.c, ...s.d];
}

/** Fixed episodes for evaluation (a sampler of its own seed, so training data order is untouched). */
export function fixedEpisodes(tasks: Task[], count: number, seed: number, k: number) {
  const sampler = new EpisodeSampler(tasks, { seed, k });
  return Array.from({ length: count }, () => sampler.next());
}

export const STAGE_OUTPUT: Record<Stage, string> = {
  'pretrain-base': 'model',
  hyperpretrain: 'hyperllama',
  multitask: '(hyperllama | adapter | prefix.safetensors)',
  'prefix-tune': 'prefix.safetensors',
};
