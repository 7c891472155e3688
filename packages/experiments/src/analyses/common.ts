import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_TEMPLATE,
  EpisodeSampler,
  FreshEpisodeSampler,
  collateHyperLlama,
  collateZeroShot,
  type Episode,
  type Example,
  type HyperBatch,
  type HyperInputBatch,
  type LmBatch,
  type SyntheticKind,
  type Task,
} from '@hyperllama/datasets';
import type { Prefix } from '@hyperllama/gist-attention';
import { HyperLlama, fit, prefixedHidden, type DownstreamView } from '@hyperllama/hypernet';
import type { LlamaModel } from '@hyperllama/llama-model';
import { withActiveAdapters } from '@hyperllama/lora';
import { AdamW, IGNORE_INDEX, mean } from '@hyperllama/runtime';
import {
  answerLoss,
  EvalError,
  type EvalSettings,
  type EvalTokenizer,
  finiteMean,
  fitPlans,
  labelLogProbs,
  METRIC_SCALE,
  planTasks,
  type TaskPlan,
  type TaskScores,
} from '@hyperllama/eval';

/** A stream of training episodes (a `FreshEpisodeSampler`, an `EpisodeSampler`, ...). */
export interface EpisodeSource {
  next(): Episode;
}

/**
 * A new stream of training episodes for a seed and a number of demonstrations per episode (fixed, or `[min, max]`
 * drawn per episode); `description` says in words what the episodes are (reports record it).
 */
export type TrainEpisodes = ((seed: number, k: number | [number, number]) => EpisodeSource) & { description?: string };

/**
 * Training episodes of synthetic task kinds with new content every episode (`FreshEpisodeSampler` of
 * `@hyperllama/datasets`): label assignments, lookup tables and constants are drawn afresh, so a model trained on them
 * has to read the demonstrations instead of memorising the tasks. Pass `syntheticKinds({ seed }).train`.
 */
export function freshTrainEpisodes(kinds: readonly SyntheticKind[]): TrainEpisodes {
  const make = (seed: number, k: number | [number, number]) => new FreshEpisodeSampler(kinds, { seed, k });
  return Object.assign(make, {
    description: `fresh-content episodes of ${kinds.length} synthetic task kinds (new content every episode)`,
  });
}

/** What every analysis runs on: a base model (loaded afresh for each trained variant), a tokenizer, training data, tasks. */
export interface AnalysisSetup {
  /** A new instance of the frozen base model (each trained variant injects its own adapters into its own copy). */
  loadModel(): LlamaModel;
  tokenizer: EvalTokenizer;
  /**
   * Where every training episode comes from (mask variants' fine-tuning, the HyperLlama trained when none is given,
   * transfer's shared prefix); preferred over `trainTasks`. For synthetic data use {@link freshTrainEpisodes}.
   */
  trainEpisodes?: TrainEpisodes;
  /**
   * Fixed training tasks (e.g. a user's task file): trained on in `EpisodeSampler` episodes, only when `trainEpisodes`
   * is not given (fixed synthetic tasks would let a model memorise their content). Also part of transfer's default pool
   * of related tasks.
   */
  trainTasks?: readonly Task[];
  /**
   * Demonstrations per training episode (default `shots`): a number, or `[min, max]` drawn per episode by
   * `trainEpisodes`; with `trainTasks` every episode gets the maximum.
   */
  trainShots?: number | [number, number];
  /** Tasks evaluated (held out from training). */
  evalTasks: readonly Task[];
  /** A HyperLlama to use (compression, sensitivity, transfer) or start every variant from (masks): loads it onto `model`. */
  loadHyperLlama?: (model: LlamaModel) => HyperLlama;
  seed: number;
  /** Demonstrations per task. */
  shots: number;
  /** Evaluated instances per task. */
  maxInstances: number;
  maxLength: number;
  maxHyperLength: number;
  maxNewTokens: number;
  batchSize: number;
  /** One line of progress (the CLI prints it on stderr). */
  log?: (line: string) => void;
}

/**
 * The setup's training episodes with `k` demonstrations each (default: the setup's `trainShots`, else `shots`):
 * `trainEpisodes` when given, else an `EpisodeSampler` over `trainTasks` (k: the maximum of a range).
 */
export function trainingEpisodes(
  setup: AnalysisSetup,
  k: number | [number, number] = setup.trainShots ?? setup.shots,
): EpisodeSource {
  if (setup.trainEpisodes) return setup.trainEpisodes(setup.seed, k);
  if (setup.trainTasks && setup.trainTasks.length > 0)
    return new EpisodeSampler([...setup.trainTasks], { seed: setup.seed, k: typeof k === 'number' ? k : k[1] });
  throw new EvalError(
    'NO_TRAINING_DATA',
    'this analysis trains, but the setup has neither trainEpisodes nor trainTasks',
    { field: 'trainEpisodes' },
  );
}

/** What the setup trains on, in words (reports record it). */
export function describeTraining(
  setup: AnalysisSetup,
  k: number | [number, number] = setup.trainShots ?? setup.shots,
): string {
  if (setup.trainEpisodes)
    return `${setup.trainEpisodes.description ?? "episodes of the setup's episode source"}, ${typeof k === 'number' ? k : `${k[0]}-${k[1]}`} shots`;
  return `episodes of ${setup.trainTasks?.length ?? 0} fixed training tasks, ${typeof k === 'number' ? k : k[1]} shots`;
}

/** Multi-task training of a HyperLlama variant (the compact loop of the trainer's `multitask` stage). */
export interface TrainVariantOptions {
  k: number;
  downstreamView?: DownstreamView;
  /** Gists see only the last m demonstrations (see {@link gistViewFrom}). */
  lastExamples?: number;
  steps: number;
  /** Default 3e-3 (the trainer's multitask default). */
  lr?: number;
  /** Episodes per step (default 8). */
  batchSize?: number;
}

/** Population standard deviation. */
export function std(xs: readonly number[]): number {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
}

/** Pearson correlation (NaN when either side is constant or there are fewer than 3 points). */
export function pearson(xs: readonly number[], ys: readonly number[]): number {
  if (xs.length !== ys.length)
    throw new EvalError('BAD_OPTION', `pearson: ${xs.length} x values but ${ys.length} y values`, { field: 'ys' });
  if (xs.length < 3) return NaN;
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  xs.forEach((x, i) => {
    sxy += (x - mx) * (ys[i] - my);
    sxx += (x - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  });
  return sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy);
}

/** Ranks with ties averaged (1-based). */
export function ranks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => ({ x, i })).sort((a, b) => a.x - b.x);
  const out = Array.from({ length: xs.length }, () => 0);
  for (let s = 0; s < order.length;) {
    let e = s;
    while (e + 1 < order.length && order[e + 1].x === order[s].x) e++;
    for (let j = s; j <= e; j++) out[order[j].i] = (s + e) / 2 + 1;
    s = e + 1;
  }
  return out;
}

/** Spearman rank correlation. */
export const spearman = (xs: readonly number[], ys: readonly number[]): number => pearson(ranks(xs), ranks(ys));

/** A number with two decimals, or "n/a". */
export const fixedOrNa = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

/** A task's score on [0, 1] (ROUGE-L divided by 100). */
export const unitScore = (s: TaskScores): number => mean(s.scores) / METRIC_SCALE[s.metric];

/**
 * Macro average on [0, 1] and its standard error: each task's per-instance scores (divided by the metric's maximum)
 * give the variance of its mean; the average's variance is their sum over T².
 */
export function averageWithError(results: readonly TaskScores[]): { average: number; stderr: number } {
  const T = results.length;
  const average = mean(results.map(unitScore));
  const variance = results.reduce((v, r) => {
    const xs = r.scores.map((x) => x / METRIC_SCALE[r.metric]);
    return v + (xs.length > 1 ? std(xs) ** 2 / xs.length : 0);
  }, 0);
  return { average, stderr: Math.sqrt(variance) / T };
}

/**
 * The setup's plans for `tasks`, with one list of demonstrations per task that fits both the ICL rows and a hyper
 * input of `gists` gists (so ICL and HyperLlama see the same demonstrations; use the largest k compared).
 */
export function setupPlans(setup: AnalysisSetup, tasks: readonly Task[], gists: number): TaskPlan[] {
  return fitSetupPlans(
    setup,
    planTasks(tasks, { shots: setup.shots, maxInstances: setup.maxInstances, seed: setup.seed }),
    gists,
  );
}

/** {@link setupPlans}' fitting for plans made otherwise (e.g. other draws of the demonstrations). */
export function fitSetupPlans(setup: AnalysisSetup, plans: readonly TaskPlan[], gists: number): TaskPlan[] {
  return fitPlans(plans, {
    tokenizer: setup.tokenizer,
    maxLength: setup.maxLength,
    maxHyperLength: setup.maxHyperLength,
    gists,
  });
}

/** Evaluation settings on `model` with the setup's lengths and batch size. */
export function evalSettings(setup: AnalysisSetup, model: LlamaModel): EvalSettings {
  return {
    model,
    tokenizer: setup.tokenizer,
    maxLength: setup.maxLength,
    maxHyperLength: setup.maxHyperLength,
    maxNewTokens: setup.maxNewTokens,
    batchSize: setup.batchSize,
  };
}

/**
 * Per row of a hyper batch built by `collateHyperLlama` (default template), the column where the last `m` packed
 * demonstrations start: pass it as `gistViewFrom` so that the gists read only those. The column is found by encoding
 * the text before them (exact for tokenizers whose encoding of a text prefix is a prefix of the encoding).
 */
export function gistViewFrom(
  hyper: HyperInputBatch,
  rows: ReadonlyArray<{ definition?: string; examples: readonly Example[] }>,
  m: number,
  o: { encoder: EvalTokenizer; useDefinition?: boolean },
): number[] {
  if (!Number.isInteger(m) || m < 1)
    throw new EvalError('BAD_OPTION', `last examples: expected an integer >= 1, got ${m}`, {
      field: 'lastExamples',
      actual: m,
    });
  const t = DEFAULT_TEMPLATE;
  return rows.map((row, b) => {
    const first = hyper.attentionMask[b].indexOf(1); // BOS
    const hidden = Math.max(0, hyper.numExamples[b] - m); // demonstrations the gists may not read
    if (hidden === 0) return first + 1;
    const head = (o.useDefinition ?? true) && row.definition ? t.definition(row.definition) : '';
    const text =
      head +
      row.examples
        .slice(0, hidden)
        .map((e) => t.prompt(e.input) + t.answer(e.output) + t.separator)
        .join('');
    return first + 1 + o.encoder.encode(text, { bos: false, eos: false }).length;
  });
}

/** The hyper batch of one task's demonstrations (batch 1). */
export function taskHyperBatch(
  setup: AnalysisSetup,
  hl: HyperLlama,
  task: Task,
  examples: readonly Example[],
): HyperBatch {
  const target = examples[0] ?? task.instances[0];
  return collateHyperLlama([{ task, examples, target }], {
    encoder: setup.tokenizer,
    gistIds: hl.gistIds,
    maxLength: setup.maxLength,
    maxHyperLength: setup.maxHyperLength,
  });
}

/** A task's prefix under a trained variant (batch 1); the caller disposes it. */
export function variantPrefix(setup: AnalysisSetup, hl: HyperLlama, plan: TaskPlan, lastExamples?: number): Prefix {
  const batch = taskHyperBatch(setup, hl, plan.task, plan.examples);
  const from = lastExamples
    ? gistViewFrom(batch.hyper, [{ definition: plan.task.definition, examples: plan.examples }], lastExamples, {
        encoder: setup.tokenizer,
      })
    : undefined;
  return hl.encode(batch.hyper, { gistViewFrom: from });
}

/**
 * Trains a HyperLlama variant on a fresh copy of the base: `steps` AdamW steps on few-shot episodes of the setup's
 * training data ({@link trainingEpisodes}: fresh-content episodes, else the training tasks). Starts from `setup.loadHyperLlama`'s weights where names and shapes match (the hyper LoRA
 * always; the gist rows when k matches), else from the default initialisation. Returns the HyperLlama and the
 * training losses (first and last).
 */
export async function trainVariant(
  setup: AnalysisSetup,
  o: TrainVariantOptions,
): Promise<{ hl: HyperLlama; steps: number; firstLoss: number; lastLoss: number }> {
  const hl = setup.loadHyperLlama
    ? fromStart(setup, o)
    : new HyperLlama(setup.loadModel(), { k: o.k, downstreamView: o.downstreamView, seed: setup.seed });
  const params = hl.trainableVariables();
  let firstLoss = NaN;
  let lastLoss = NaN;
  // Under the `nothing` view without a downstream adapter no trainable parameter reaches the output: nothing to train.
  const steps = o.downstreamView === 'nothing' && !hl.hasDownstreamAdapter ? 0 : o.steps;
  if (steps > 0) {
    const sampler = trainingEpisodes(setup);
    const optimizer = new AdamW(params, { lr: o.lr ?? 3e-3, weightDecay: 0 });
    const copts = {
      encoder: setup.tokenizer,
      gistIds: hl.gistIds,
      maxLength: setup.maxLength,
      maxHyperLength: setup.maxHyperLength,
    };
    ({ firstLoss, lastLoss } = await fit({
      params,
      optimizer,
      steps,
      maxGradNorm: 1,
      objective: () => {
        const episodes = Array.from({ length: o.batchSize ?? 8 }, () => sampler.next());
        const batch = collateHyperLlama(episodes, copts);
        const from = o.lastExamples
          ? gistViewFrom(
              batch.hyper,
              episodes.map((e) => ({ definition: e.task.definition, examples: e.examples })),
              o.lastExamples,
              { encoder: setup.tokenizer },
            )
          : undefined;
        return () => hl.loss(batch, { training: true, gistViewFrom: from });
      },
    }));
    optimizer.dispose();
  }
  return { hl, steps, firstLoss, lastLoss };
}

/** A variant with the starting checkpoint's adapter settings and its trainable values wherever a name and shape match. */
function fromStart(setup: AnalysisSetup, o: TrainVariantOptions): HyperLlama {
  const scratch = setup.loadModel();
  const source = setup.loadHyperLlama!(scratch);
  try {
    const hl = new HyperLlama(setup.loadModel(), {
      k: o.k,
      downstreamView: o.downstreamView,
      seed: setup.seed,
      hyper: source.hyperAdapter,
      downstream: source.downstreamAdapter,
      scheme: source.scheme,
    });
    const from = source.trainableVariables();
    for (const [name, v] of Object.entries(hl.trainableVariables())) {
      const s = from[name];
      if (s && s.shape.join(',') === v.shape.join(',')) v.assign(s);
    }
    return hl;
  } finally {
    source.dispose();
    scratch.dispose();
  }
}

/** The setup's HyperLlama: the given checkpoint, or one trained now with the standard mask for `steps`. */
export async function obtainHyperLlama(
  setup: AnalysisSetup,
  o: { k: number; steps: number },
): Promise<{ hl: HyperLlama; trained: boolean }> {
  if (setup.loadHyperLlama) return { hl: setup.loadHyperLlama(setup.loadModel()), trained: false };
  setup.log?.(
    `no HyperLlama checkpoint given: training one (k=${o.k}, ${o.steps} steps on ${describeTraining(setup)})`,
  );
  return { hl: (await trainVariant(setup, { k: o.k, steps: o.steps })).hl, trained: true };
}

/**
 * The answer loss of a plan's evaluated instances, each read alone (`Input: … Output:`, no definition) behind `prefix`
 * (or nothing), with `adapters` active: per instance the mean negative log-likelihood per answer token WITHOUT the EOS
 * token (the headline answer loss of `@hyperllama/eval`), averaged over instances. A finer signal than exact match on
 * a small model, where most generated answers score 0. (`evaluateMethod` reports the same per instance.)
 */
export async function answerNll(
  setup: AnalysisSetup,
  model: LlamaModel,
  plan: TaskPlan,
  prefix: Prefix | undefined,
  adapters: readonly string[],
): Promise<number> {
  const o = { encoder: setup.tokenizer, maxLength: setup.maxLength, useDefinition: false };
  const losses: number[] = [];
  for (let start = 0; start < plan.instances.length; start += setup.batchSize) {
    const batch = collateZeroShot(
      plan.instances
        .slice(start, start + setup.batchSize)
        .map((target) => ({ task: { definition: undefined }, target })),
      o,
    );
    await withActiveAdapters(model, adapters, async () => {
      const hidden = prefix
        ? prefixedHidden(model, batch, prefix)
        : tf.tidy(
            () =>
              model.forward({
                inputIds: tf.tensor2d(batch.inputIds, undefined, 'int32'),
                attentionMask: tf.tensor2d(batch.attentionMask, undefined, 'int32'),
                returnHidden: true,
              }).hidden!,
          );
      try {
        losses.push(...rowAnswerLosses(await labelLogProbs(model, hidden, batch.labels), batch, setup.tokenizer.eosId));
      } finally {
        hidden.dispose();
      }
    });
  }
  return finiteMean(losses);
}

/** Per row of `batch`, the answer loss without EOS (nats/token) from its labels' log-probabilities. */
export function rowAnswerLosses(
  logProbs: readonly number[][],
  batch: Pick<LmBatch, 'labels'>,
  eosId: number,
): number[] {
  return logProbs.map((lp, r) => {
    const labelled = batch.labels[r].filter((l) => l !== IGNORE_INDEX);
    return answerLoss(lp, labelled.length > 0 && labelled[labelled.length - 1] === eosId).withoutEos;
  });
}

/** Mean over tasks of each task's mean answer loss (without EOS), from `evaluateMethod`'s scores. */
export function meanAnswerLoss(scores: readonly TaskScores[]): number {
  return finiteMean(scores.map((t) => finiteMean(t.answerLoss ?? [])));
}

/** Frees a HyperLlama and its model. */
export function disposeHyperLlama(hl: HyperLlama): void {
  hl.dispose();
  hl.model.dispose();
}
