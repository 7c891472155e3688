import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  CompressionSampler,
  EpisodeSampler,
  collateCompression,
  collateFewShot,
  collateHyperLlama,
  collateZeroShot,
  type CompressionSamplerState,
  type Episode,
  type EpisodeSamplerState,
  type HyperBatch,
  type LmBatch,
  type Task,
  syntheticVocabulary,
} from '@hyperllama/datasets';
import { saveLlama, type LlamaModel } from '@hyperllama/llama-model';
import { saveAdapter } from '@hyperllama/lora';
import {
  HyperLlama,
  LoraBaseline,
  PrefixTuning,
  baseModelHash,
  initPrefixTuning,
  loadHyperLlama,
  plainLoss,
  realTokens,
  writeHyperLlama,
  type PrefixSources,
} from '@hyperllama/hypernet';
import { Rng, mean, type RngState } from '@hyperllama/runtime';
import { saveTokenizer, type Tokenizer } from '@hyperllama/tokenizer';
import type { Stage, TrainConfig } from './config.js';
import { TrainerError } from './errors.js';
import { englishLexicon } from './lexicon.js';
import {
  fixedEpisodes,
  padLm,
  resolveCorpus,
  resolveModel,
  resolveTasks,
  resolveTokenizer,
  segmentLengths,
  shotRange,
  textRow,
  trainingEpisodes,
  type EpisodeSource,
} from './setup.js';

/** What the training loop needs from a stage. */
export interface Job {
  /** One line saying what trains on what. */
  summary: string;
  /** The model the job trains (its LoRA dropout Rngs are part of a checkpoint). */
  model: LlamaModel;
  params: Record<string, tf.Variable>;
  /** Draw the next training batch (advancing the data position); its loss and token count. */
  next(): { loss: () => tf.Scalar; tokens: number };
  /** Mean loss over the fixed held-out slice (read asynchronously, so it runs on webgpu). */
  evaluate(): Promise<number>;
  /**
   * HyperLlama stages: the held-out loss behind each sample's own prefix against another sample's (the swap control);
   * undefined when no held-out batch has two rows to swap between.
   */
  swapControl?(): Promise<SwapControl | undefined>;
  /** JSON-serialisable data position (samplers, mixing Rng). */
  getState(): unknown;
  setState(state: unknown): void;
  /** Write the stage's usable outputs (model dir, HyperLlama checkpoint, adapter, prefix) into `dir`. */
  exportTo(dir: string): void;
  dispose(): void;
}

/** Held-out loss with each sample's own prefix and with another sample's; the gap with a 95% interval over batches. */
export interface SwapControl {
  ownLoss: number;
  swappedLoss: number;
  /** swappedLoss − ownLoss: > 0 when the prefix carries the sample's own input. */
  gap: number;
  gapLow: number;
  gapHigh: number;
  batches: number;
}

/**
 * Own vs swapped prefix over fixed batches of at least 2 rows (a single row has nobody to swap with); the interval
 * is mean ± 1.96 standard errors of the per-batch gaps.
 */
async function swapControlOver(hl: HyperLlama, all: HyperBatch[]): Promise<SwapControl | undefined> {
  const batches = all.filter((b) => b.hyper.inputIds.length >= 2);
  if (batches.length === 0) return undefined;
  const own = await lossesOf(batches, (b) => hl.loss(b));
  const swapped = await lossesOf(batches, (b) => hl.swappedLoss(b));
  const gaps = swapped.map((s, i) => s - own[i]);
  const gap = mean(gaps, 0);
  const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - gap) ** 2, 0) / Math.max(1, gaps.length - 1));
  const half = (1.96 * sd) / Math.sqrt(Math.max(1, gaps.length));
  return {
    ownLoss: mean(own, 0),
    swappedLoss: mean(swapped, 0),
    gap,
    gapLow: gap - half,
    gapHigh: gap + half,
    batches: batches.length,
  };
}

/** `lossOf` of each batch, one at a time, read asynchronously (webgpu reads no other way). */
async function lossesOf<T>(batches: readonly T[], lossOf: (batch: T) => tf.Scalar): Promise<number[]> {
  const losses: number[] = [];
  for (const b of batches) {
    const loss = tf.tidy(() => lossOf(b));
    losses.push((await loss.data())[0]);
    loss.dispose();
  }
  return losses;
}

/** Mean of `lossOf` over batches of a fixed list. */
async function evalOver<T>(items: T[], batchSize: number, lossOf: (batch: T[]) => tf.Scalar): Promise<number> {
  return mean(await lossesOf(chunk(items, batchSize), lossOf), 0);
}

function collateOptions(cfg: TrainConfig, tokenizer: Tokenizer) {
  return { encoder: tokenizer, maxLength: cfg.data.maxLength, maxHyperLength: cfg.data.maxHyperLength };
}

function hyperFor(cfg: TrainConfig, model: LlamaModel, withTokenizer: Tokenizer): HyperLlama {
  if (cfg.hyper.from) return loadHyperLlama(cfg.hyper.from, model).hyperllama;
  const h = cfg.hyper;
  const hl = new HyperLlama(model, {
    k: h.k,
    scheme: h.scheme,
    hyper: { r: h.r, alpha: h.alpha, dropout: h.dropout, targetModules: h.targetModules },
    downstream:
      h.downstreamR > 0 ? { r: h.downstreamR, alpha: 2 * h.downstreamR, targetModules: h.targetModules } : undefined,
    seed: cfg.seed,
  });
  if (withTokenizer.numTokens !== model.config.vocabSize) {
    throw new TrainerError(
      'TOKENIZER_MISMATCH',
      `the tokenizer has ${withTokenizer.numTokens} tokens but the model's vocabSize is ${model.config.vocabSize}: gist ids must follow the vocabulary`,
      {
        field: 'model.tokenizer',
        expected: model.config.vocabSize,
        actual: withTokenizer.numTokens,
      },
    );
  }
  return hl;
}

/** Saves a HyperLlama checkpoint plus its tokenizer (with gist tokens) under `dir/hyperllama`. */
function exportHyper(hl: HyperLlama, tokenizer: Tokenizer, basePath: string, baseHash: string, dir: string): void {
  const out = join(dir, 'hyperllama');
  writeHyperLlama(hl, out, { basePath, tokenizer: 'tokenizer', baseHash });
  saveTokenizer(tokenizer.withGistTokens(hl.k), join(out, 'tokenizer'));
}

export function buildJob(stage: Stage, cfg: TrainConfig): Job {
  if (cfg.model.addWords !== null && stage !== 'pretrain-base') {
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `model.addWords: only pretrain-base grows a vocabulary (the other stages keep the base frozen), got stage ${stage}`,
      { field: 'model.addWords', actual: cfg.model.addWords },
    );
  }
  const tokenizer = resolveTokenizer(cfg);
  switch (stage) {
    case 'pretrain-base':
      return pretrainJob(cfg, tokenizer);
    case 'hyperpretrain':
      return hyperpretrainJob(cfg, tokenizer);
    case 'multitask':
      return multitaskJob(cfg, tokenizer);
    case 'prefix-tune':
      return prefixTuneJob(cfg, tokenizer);
  }
}

/** Pretraining rows are padded to a multiple of this many tokens (see `padLm`). */
const PRETRAIN_PAD_MULTIPLE = 64;

/** All weights of a Llama, from scratch (or from `model.base`), on corpus text mixed with training-family episodes. */
function pretrainJob(cfg: TrainConfig, tokenizer: Tokenizer): Job {
  const { model } = resolveModel(cfg, tokenizer, true);
  const params = Object.fromEntries(model.namedWeights());
  const docs = resolveCorpus(cfg);
  const sets = resolveTasks(cfg);
  const { train, evalTasks } = sets;
  const lengths = segmentLengths(cfg.data.seqLen);
  const shots = shotRange(cfg);
  let text = new CompressionSampler(docs, tokenizer, { seed: cfg.seed, lengths });
  let episodes = trainingEpisodes(cfg, sets, shots);
  let mix = new Rng(cfg.seed).fork('mix');
  const fewShotRow = (e: Episode) => {
    const b = collateFewShot([e], { encoder: tokenizer, maxLength: cfg.data.maxLength });
    return { ids: b.inputIds[0] };
  };
  if (cfg.data.textFraction + cfg.data.repeatFraction > 1) {
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      `data.repeatFraction: data.textFraction + data.repeatFraction must be at most 1, got ${cfg.data.textFraction} + ${cfg.data.repeatFraction}`,
      { field: 'data.repeatFraction' },
    );
  }
  const words = repeatVocabulary(tokenizer);
  // Common English words as token runs (most are spelled in characters), for a share of the repeat rows.
  const openWords =
    cfg.data.openLexicon > 0
      ? englishLexicon().inputs.map((w) => tokenizer.encode(` ${w}`, { bos: false, eos: false }))
      : undefined;
  if (cfg.data.repeatFraction > 0 && words.length === 0) {
    throw new TrainerError(
      'CONFIG_BAD_VALUE',
      'data.repeatFraction: repeat rows are made of whole-word tokens, and this tokenizer has none (use model.tokenizer: builtin:word)',
      { field: 'data.repeatFraction' },
    );
  }
  const rowsFrom = (textSampler: CompressionSampler, episodeSampler: EpisodeSource, rng: Rng, n: number) =>
    Array.from({ length: n }, () => {
      const r = rng.next();
      if (r < cfg.data.textFraction) return { ids: textRow(textSampler, tokenizer.bosId) };
      if (r < cfg.data.textFraction + cfg.data.repeatFraction)
        return repeatRow(
          openWords && rng.next() < cfg.data.openLexicon ? openWords : words,
          rng,
          tokenizer.bosId,
          cfg.data.seqLen,
        );
      return fewShotRow(episodeSampler.next());
    });
  const evalRng = new Rng(cfg.seed).fork('eval');
  const evalBatches = Array.from({ length: cfg.evalBatches }, (_, i) =>
    padLm(
      rowsFrom(
        new CompressionSampler(docs, tokenizer, { seed: cfg.seed + 1000 + i, lengths }),
        new EpisodeSampler(evalTasks, { seed: cfg.seed + 1000 + i, k: cfg.data.shots }),
        evalRng,
        cfg.batchSize,
      ),
      tokenizer.padId,
    ),
  );
  return {
    model,
    summary: `pretrain-base: ${Object.keys(params).length} tensors (${count(params)} parameters), ${docs.length} documents + ${sets.fresh ? `fresh-content episodes of ${sets.fresh.length} synthetic task kinds` : `${train.length} training tasks`}`,
    params,
    next() {
      const batch = padLm(rowsFrom(text, episodes, mix, cfg.batchSize), tokenizer.padId, PRETRAIN_PAD_MULTIPLE);
      return { loss: () => plainLoss(model, batch, { training: true }), tokens: realTokens(batch) };
    },
    evaluate: async () => mean(await lossesOf(evalBatches, (b) => plainLoss(model, b)), 0),
    getState: () => ({ text: text.getState(), episodes: episodes.getState(), mix: mix.getState() }),
    setState(s) {
      const st = s as { text: CompressionSamplerState; episodes: unknown; mix: RngState };
      text = new CompressionSampler(docs, tokenizer, { seed: cfg.seed, lengths }, st.text);
      episodes = trainingEpisodes(cfg, sets, shots, st.episodes);
      mix = Rng.fromState(st.mix);
    },
    exportTo(dir) {
      saveLlama(model, join(dir, 'model'));
      saveTokenizer(tokenizer, join(dir, 'model'));
    },
    dispose: () => model.dispose(),
  };
}

/** Compression hyperpretraining on corpus text: `[BOS] A D <gists>` → prefix; the downstream reads B and predicts C. */
function hyperpretrainJob(cfg: TrainConfig, tokenizer: Tokenizer): Job {
  const { model, basePath } = resolveModel(cfg, tokenizer, false);
  const hl = hyperFor(cfg, model, tokenizer);
  const baseHash = baseModelHash(model);
  const docs = resolveCorpus(cfg);
  const lengths = segmentLengths(cfg.data.seqLen);
  const opts = { encoder: tokenizer, gistIds: hl.gistIds };
  let sampler = new CompressionSampler(docs, tokenizer, { seed: cfg.seed, lengths });
  const evalSampler = new CompressionSampler(docs, tokenizer, { seed: cfg.seed + 1000, lengths });
  const evalBatches = Array.from({ length: cfg.evalBatches }, () =>
    collateCompression(
      Array.from({ length: cfg.batchSize }, () => evalSampler.next()),
      opts,
    ),
  );
  const params = hl.trainableVariables();
  return {
    model,
    summary: `hyperpretrain: k=${hl.k} (${hl.scheme}), ${count(params)} trainable parameters, ${docs.length} documents`,
    params,
    next() {
      const batch = collateCompression(
        Array.from({ length: cfg.batchSize }, () => sampler.next()),
        opts,
      );
      return { loss: () => hl.loss(batch, { training: true }), tokens: hyperTokens(batch) };
    },
    evaluate: async () => mean(await lossesOf(evalBatches, (b) => hl.loss(b)), 0),
    swapControl: () => swapControlOver(hl, evalBatches),
    getState: () => ({ text: sampler.getState() }),
    setState(s) {
      sampler = new CompressionSampler(
        docs,
        tokenizer,
        { seed: cfg.seed, lengths },
        (s as { text: CompressionSamplerState }).text,
      );
    },
    exportTo: (dir) => exportHyper(hl, tokenizer, basePath, baseHash, dir),
    dispose() {
      hl.dispose();
      model.dispose();
    },
  };
}

/** Single-token words (with a leading space) that repeat rows are made of, each as its one-token run. */
function repeatVocabulary(tokenizer: Tokenizer): number[][] {
  const ids = syntheticVocabulary()
    .map((w) => tokenizer.encode(` ${w}`, { bos: false, eos: false }))
    .filter((t) => t.length === 1)
    .map((t) => t[0]);
  return [...new Set(ids)].map((id) => [id]);
}

/**
 * `[BOS] w1 … wn w1 … wn`: n random words (n in [4, seqLen/2], each one or more tokens) then the same run again,
 * with the loss on the second run after its first word (the only tokens that can be predicted, and only by copying
 * from context). Copying is the skill in-context learning rests on (induction); a base trained without such rows
 * learns the episodes' format long before it learns to copy an answer shown in the examples.
 */
function repeatRow(words: number[][], rng: Rng, bosId: number, seqLen: number): { ids: number[]; labels: number[] } {
  const n = 4 + rng.int(Math.max(1, Math.floor(seqLen / 2) - 3));
  const run = Array.from({ length: n }, () => words[rng.int(words.length)]);
  const flat = run.flat();
  const ids = [bosId, ...flat, ...flat];
  const firstPredicted = 1 + flat.length + run[0].length;
  return { ids, labels: ids.map((id, t) => (t >= firstPredicted ? id : -100)) };
}

function hyperTokens(batch: HyperBatch): number {
  return realTokens(batch.hyper) + realTokens(batch.downstream);
}

/** Multi-task training on few-shot episodes of the training tasks, for HyperLlama or a baseline. */
function multitaskJob(cfg: TrainConfig, tokenizer: Tokenizer): Job {
  const { model, basePath } = resolveModel(cfg, tokenizer, false);
  const baseHash = baseModelHash(model);
  const sets = resolveTasks(cfg);
  const { train, evalTasks } = sets;
  const fewShot = cfg.method === 'hyperllama' || cfg.method === 'icl';
  const k = fewShot ? shotRange(cfg) : 0;
  let sampler = trainingEpisodes(cfg, sets, k);
  const evalEpisodes = fixedEpisodes(
    evalTasks,
    cfg.evalBatches * cfg.batchSize,
    cfg.seed + 1000,
    fewShot ? cfg.data.shots : 0,
  );
  const draw = () => Array.from({ length: cfg.batchSize }, () => sampler.next());
  const copts = collateOptions(cfg, tokenizer);

  let method: {
    params: Record<string, tf.Variable>;
    loss(eps: Episode[], training: boolean): tf.Scalar;
    tokens(eps: Episode[]): number;
    swapControl?(): Promise<SwapControl | undefined>;
    exportTo(dir: string): void;
    dispose(): void;
  };
  if (cfg.method === 'hyperllama') {
    const hl = hyperFor(cfg, model, tokenizer);
    const collate = (eps: Episode[]) => collateHyperLlama(eps, { ...copts, gistIds: hl.gistIds });
    method = {
      params: hl.trainableVariables(),
      loss: (eps, training) => hl.loss(collate(eps), { training }),
      tokens: (eps) => hyperTokens(collate(eps)),
      swapControl: () => swapControlOver(hl, chunk(evalEpisodes, cfg.batchSize).map(collate)),
      exportTo: (dir) => exportHyper(hl, tokenizer, basePath, baseHash, dir),
      dispose: () => hl.dispose(),
    };
  } else if (cfg.method === 'shared-prefix') {
    const sample = collateZeroShot(fixedEpisodes(train, 4, cfg.seed + 2000, 0), copts).inputIds;
    const pt = PrefixTuning.random(model, cfg.prefix.length, { sampleIds: sample, seed: cfg.seed });
    const collate = (eps: Episode[]) => collateZeroShot(eps, copts);
    method = {
      params: pt.trainableVariables(),
      loss: (eps, training) => pt.loss(model, collate(eps), { training }),
      tokens: (eps) => realTokens(collate(eps)),
      exportTo: (dir) => pt.save(join(dir, 'prefix.safetensors'), model, { base_model: basePath, base_hash: baseHash }),
      dispose: () => pt.dispose(),
    };
  } else {
    const adapter = cfg.method;
    const h = cfg.hyper;
    const lora = new LoraBaseline(model, adapter, {
      r: h.r,
      alpha: h.alpha,
      dropout: h.dropout,
      targetModules: h.targetModules,
      seed: cfg.seed,
    });
    const collate = (eps: Episode[]): LmBatch =>
      adapter === 'icl' ? collateFewShot(eps, copts) : collateZeroShot(eps, copts);
    method = {
      params: lora.trainableVariables(),
      loss: (eps, training) => lora.loss(collate(eps), { training }),
      tokens: (eps) => realTokens(collate(eps)),
      exportTo(dir) {
        saveAdapter(model, adapter, join(dir, 'adapter'), { baseModelNameOrPath: basePath });
        saveTokenizer(tokenizer, join(dir, 'adapter', 'tokenizer'));
      },
      dispose() {},
    };
  }
  return {
    model,
    summary: `multitask --method ${cfg.method}: ${count(method.params)} trainable parameters, ${sets.fresh ? `fresh-content episodes of ${sets.fresh.length} synthetic task kinds` : `${train.length} training tasks`}, ${typeof k === 'number' ? k : k.join('-')} shots`,
    params: method.params,
    next() {
      const eps = draw();
      return { loss: () => method.loss(eps, true), tokens: method.tokens(eps) };
    },
    evaluate: () => evalOver(evalEpisodes, cfg.batchSize, (eps) => method.loss(eps, false)),
    ...(method.swapControl ? { swapControl: method.swapControl } : {}),
    getState: () => ({ episodes: sampler.getState() }),
    setState(s) {
      sampler = trainingEpisodes(cfg, sets, k, (s as { episodes: unknown }).episodes);
    },
    exportTo: (dir) => method.exportTo(dir),
    dispose() {
      method.dispose();
      model.dispose();
    },
  };
}

/**
 * Prefix tuning on one task: trains a prefix on the task's example pool, evaluates on its instances (the curve
 * goes to metrics.jsonl). With `prefix.hypernet`, the downstream model is that checkpoint's (its downstream adapter
 * on, the hyper adapter off) whatever the initialisation, so that the three initialisations are comparable.
 */
function prefixTuneJob(cfg: TrainConfig, tokenizer: Tokenizer): Job {
  const { model, basePath } = resolveModel(cfg, tokenizer, false);
  const tasks = resolveTasks(cfg);
  const task = pickTask(cfg, tasks.all, tasks.heldOutFamilies);
  const copts = collateOptions(cfg, tokenizer);
  const hyper = cfg.prefix.hypernet ? loadHyperLlama(cfg.prefix.hypernet, model).hyperllama : undefined;
  let start: PrefixSources = {};
  if (cfg.prefix.init === 'random') {
    const sampleIds = collateZeroShot(
      task.examples.slice(0, 4).map((target) => ({ task, target })),
      copts,
    ).inputIds;
    start = { sampleIds };
  } else if (cfg.prefix.init === 'shared') {
    if (!cfg.prefix.shared)
      throw new TrainerError(
        'CONFIG_MISSING',
        'prefix.shared: --init shared needs the shared prefix file (multitask --method shared-prefix output)',
        { field: 'prefix.shared' },
      );
    start = { shared: cfg.prefix.shared };
  } else {
    if (!hyper)
      throw new TrainerError('CONFIG_MISSING', 'prefix.hypernet: --init hyper needs a HyperLlama checkpoint folder', {
        field: 'prefix.hypernet',
      });
    if (hyper.scheme !== 'restart')
      throw new TrainerError(
        'CONFIG_BAD_VALUE',
        `prefix.hypernet: --init hyper needs a "restart" checkpoint, got "${hyper.scheme}"`,
        { field: 'prefix.hypernet' },
      );
    const examples = new Rng(cfg.seed)
      .fork('prefix-examples')
      .sample(task.examples, Math.min(cfg.data.shots, task.examples.length));
    const batch = collateHyperLlama([{ task, examples, target: examples[0] }], { ...copts, gistIds: hyper.gistIds });
    start = { hyper: hyper.encode(batch.hyper) };
  }
  let pt: PrefixTuning;
  try {
    pt = initPrefixTuning(model, cfg.prefix.init, { length: cfg.prefix.length, seed: cfg.seed, ...start });
  } finally {
    start.hyper?.dispose();
  }
  const pool: Task = { ...task, instances: task.examples };
  let sampler = new EpisodeSampler([pool], { seed: cfg.seed, k: 0 });
  const evalTargets = task.instances.slice(0, cfg.evalBatches * cfg.batchSize).map((target) => ({ task, target }));
  const params = pt.trainableVariables();
  return {
    model,
    summary: `prefix-tune --init ${cfg.prefix.init}: task ${task.name}, prefix length ${pt.length}, ${task.examples.length} training examples, ${evalTargets.length} evaluation instances`,
    params,
    next() {
      const batch = collateZeroShot(
        Array.from({ length: cfg.batchSize }, () => sampler.next()),
        copts,
      );
      return { loss: () => pt.loss(model, batch, { training: true }), tokens: realTokens(batch) };
    },
    evaluate: () => evalOver(evalTargets, cfg.batchSize, (eps) => pt.loss(model, collateZeroShot(eps, copts))),
    getState: () => ({ episodes: sampler.getState() }),
    setState(s) {
      sampler = new EpisodeSampler([pool], { seed: cfg.seed, k: 0 }, (s as { episodes: EpisodeSamplerState }).episodes);
    },
    exportTo: (dir) =>
      pt.save(join(dir, 'prefix.safetensors'), model, { task: task.name, init: cfg.prefix.init, base_model: basePath }),
    dispose() {
      pt.dispose();
      hyper?.dispose();
      model.dispose();
    },
  };
}

function pickTask(cfg: TrainConfig, all: Task[], heldOut: Task[]): Task {
  if (cfg.prefix.task) {
    const t = all.find((x) => x.name === cfg.prefix.task);
    if (!t)
      throw new TrainerError(
        'CONFIG_BAD_VALUE',
        `prefix.task: no task named "${cfg.prefix.task}" (have ${all
          .slice(0, 8)
          .map((x) => x.name)
          .join(', ')}…)`,
        { field: 'prefix.task', actual: cfg.prefix.task },
      );
    return t;
  }
  return heldOut[0] ?? all[all.length - 1];
}

function chunk<T>(items: T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
}

function count(params: Record<string, tf.Variable>): number {
  return Object.values(params).reduce((n, v) => n + v.size, 0);
}
