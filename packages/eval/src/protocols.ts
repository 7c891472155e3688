import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_TEMPLATE,
  IGNORE_INDEX,
  answerRow,
  collateHyperLlama,
  collateRankClassification,
  collateZeroShot,
  fewShotRow,
  optionsOf,
  referencesOf,
  type CollateOptions,
  type Example,
  type LmBatch,
  type PromptTemplate,
  type RankMode,
  type Task,
  type TokenEncoder,
} from '@hyperllama/datasets';
import type { GistPrefix } from '@hyperllama/gist-attention';
import { continuationText, generate, type KVPrefix, type LlamaModel, type TextCodec } from '@hyperllama/llama-model';
import { withActiveAdapters } from '@hyperllama/lora';
import { HyperLlama, PrefixTuning, prefixedHidden, trainStep, type PrefixInit, type PrefixLike } from '@hyperllama/hypernet';
import { AdamW, Rng } from '@hyperllama/runtime';
import type { TaskScores } from './aggregate.js';
import { EvalError } from './errors.js';
import { exactMatch, optionCorrect, rankClassify, rougeLScore, type RankScoring } from './metrics.js';
import type { CurvePoint, MethodResult } from './report.js';

/** What evaluation needs from a tokenizer (`@hyperllama/tokenizer`'s `Tokenizer` provides it). */
export type EvalTokenizer = TokenEncoder & TextCodec;

/** The k demonstrations and the evaluated instances of one task, the same for every method. */
export interface TaskPlan {
  task: Task;
  examples: Example[];
  instances: Example[];
}

export interface PlanOptions {
  /** Demonstrations per task (fewer when the pool is smaller). */
  shots: number;
  /** At most this many evaluated instances per task (default all). */
  maxInstances?: number;
  seed: number;
}

/**
 * Seeded per-task choice of demonstrations and instances: `new Rng(seed).fork(task name)` draws the k examples from
 * the task's pool (its `examples`, else its instances) and, when there are more than `maxInstances` candidates, which
 * instances to keep (in their original order). Instances used as demonstrations are never evaluated.
 */
export function planTasks(tasks: readonly Task[], o: PlanOptions): TaskPlan[] {
  if (!Number.isInteger(o.shots) || o.shots < 0) throw new EvalError('BAD_OPTION', `shots: expected an integer >= 0, got ${o.shots}`, { field: 'shots', actual: o.shots });
  return tasks.map((task) => {
    const rng = new Rng(o.seed).fork(`plan/${task.name}`);
    const fromPool = task.examples.length > 0;
    const pool = fromPool ? task.examples : task.instances;
    const examples = rng.sample([...pool], Math.min(o.shots, pool.length));
    let candidates = task.instances.map((inst, i) => ({ inst, i })).filter(({ inst }) => fromPool || !examples.includes(inst));
    const max = o.maxInstances ?? candidates.length;
    if (candidates.length > max) candidates = rng.sample(candidates, max).sort((a, b) => a.i - b.i);
    if (candidates.length === 0) throw new EvalError('NO_INSTANCES', `task "${task.name}": no instance left to evaluate after taking ${examples.length} demonstrations`, { field: task.name });
    return { task, examples, instances: candidates.map((c) => c.inst) };
  });
}

/** Settings shared by every method. */
export interface EvalSettings {
  model: LlamaModel;
  tokenizer: EvalTokenizer;
  template?: PromptTemplate;
  /** Longest downstream / few-shot row in tokens (demonstrations that do not fit are dropped; default 1024). */
  maxLength?: number;
  /** Longest hypernetwork input (default 1024). */
  maxHyperLength?: number;
  /** Rows per forward pass (default 16). */
  batchSize?: number;
  /** Rank classification by summed (default) or mean option log-likelihood. */
  scoring?: RankScoring;
  /** Generated tokens per instance for ROUGE-L / exact-match tasks (default 64). */
  maxNewTokens?: number;
  /** Put the task definition in front (zero-shot, ICL) or into the hypernetwork input (default true). */
  useDefinition?: boolean;
  /** Adapters active for the no-prefix methods (e.g. the multi-task ICL LoRA); default none. */
  adapters?: { 'zero-shot'?: string[]; icl?: string[] };
}

/** How one method runs the frozen model for one task: rows are built in `mode`, then run by `hidden`/`generate`. */
interface Condition {
  mode: RankMode;
  /** Hidden states [R, T, D] of right-padded rows. */
  hidden(batch: Pick<LmBatch, 'inputIds' | 'attentionMask'>): tf.Tensor3D;
  /** Greedy continuations of prompts (token ids, BOS included). */
  generate(prompts: number[][], maxNewTokens: number): Promise<number[][]>;
}

function plainCondition(s: EvalSettings, mode: 'zeroshot' | 'fewshot', adapters: readonly string[]): Condition {
  const { model } = s;
  return {
    mode,
    hidden: (batch) =>
      withActiveAdapters(model, adapters, () =>
        tf.tidy(() => model.forward({ inputIds: tf.tensor2d(batch.inputIds, undefined, 'int32'), attentionMask: tf.tensor2d(batch.attentionMask, undefined, 'int32'), returnHidden: true }).hidden!),
      ),
    generate: (prompts, maxNewTokens) =>
      withActiveAdapters(model, adapters, async () => (await generate(model, prompts, { maxNewTokens, stopIds: [model.config.eosTokenId], padId: s.tokenizer.padId })).tokens),
  };
}

/** A downstream condition behind a prefix of batch 1 (a HyperLlama prefix or a tuned one). */
function prefixCondition(s: EvalSettings, prefix: PrefixLike, adapters: readonly string[]): Condition {
  const { model } = s;
  const offset = prefix.positionOffsets?.[0] ?? prefix.length;
  return {
    mode: 'hyper',
    hidden: (batch) => withActiveAdapters(model, adapters, () => prefixedHidden(model, batch, prefix)),
    generate: (prompts, maxNewTokens) =>
      withActiveAdapters(model, adapters, async () => (await generate(model, prompts, { maxNewTokens, prefix, positionOffset: offset, stopIds: [model.config.eosTokenId], padId: s.tokenizer.padId })).tokens),
  };
}

function collateOptions(s: EvalSettings, extra: Partial<CollateOptions> = {}): CollateOptions {
  return { encoder: s.tokenizer, template: s.template ?? DEFAULT_TEMPLATE, maxLength: s.maxLength ?? 1024, useDefinition: s.useDefinition ?? true, ...extra };
}

/**
 * Per-token log-probabilities of the labelled tokens of each row: `labels[r][t]` is predicted from position t-1.
 * Returns one array per row (empty for a row without labels). Read asynchronously (webgpu in Node reads no other way).
 */
export async function labelLogProbs(model: LlamaModel, hidden: tf.Tensor3D, labels: number[][]): Promise<number[][]> {
  const [R, T, D] = hidden.shape;
  const at: number[] = []; // flat index of the predicting position
  const ids: number[] = [];
  const owner: number[] = [];
  labels.forEach((row, r) =>
    row.forEach((id, t) => {
      if (t > 0 && id !== IGNORE_INDEX) {
        at.push(r * T + t - 1);
        ids.push(id);
        owner.push(r);
      }
    }),
  );
  const out: number[][] = Array.from({ length: R }, () => []);
  if (at.length === 0) return out;
  const logProbs = tf.tidy(() => {
    const picked = tf.gather(tf.reshape(hidden, [R * T, D]), tf.tensor1d(at, 'int32')) as tf.Tensor2D; // [N, D]
    const logits = model.logitsFromHidden(picked); // [N, V]
    const logZ = tf.logSumExp(logits, 1); // [N]
    const chosen = tf.gatherND(logits, tf.tensor2d(ids.map((id, n) => [n, id]), [ids.length, 2], 'int32')) as tf.Tensor1D; // [N]
    return tf.sub(chosen, logZ);
  });
  let values: Float32Array;
  try {
    values = (await logProbs.data()) as Float32Array;
  } finally {
    logProbs.dispose();
  }
  values.forEach((v, n) => out[owner[n]].push(v));
  return out;
}

/** Prompt ids of a row: everything before its first labelled token. */
function promptIds(row: { ids: number[]; labels: number[] }): number[] {
  const first = row.labels.findIndex((l) => l !== IGNORE_INDEX);
  return first < 0 ? row.ids : row.ids.slice(0, first);
}

/** The generated answer: the continuation up to the template's separator, trimmed. */
function answerText(s: EvalSettings, prompt: number[], tokens: number[]): string {
  const separator = (s.template ?? DEFAULT_TEMPLATE).separator;
  const text = continuationText(s.tokenizer, prompt, tokens);
  const cut = separator ? text.indexOf(separator) : -1;
  return (cut >= 0 ? text.slice(0, cut) : text).trim();
}

/** Scores every instance of a planned task under one condition: rank classification or generation + metric. */
async function scoreTask(plan: TaskPlan, condition: Condition, s: EvalSettings): Promise<TaskScores> {
  const { task, examples, instances } = plan;
  const batchSize = s.batchSize ?? 16;
  const o = collateOptions(s, { eos: false });
  const base = { task: task.name, ...(task.category ? { category: task.category } : {}) };
  const ranked = task.metric === 'accuracy' && instances.every((inst) => (optionsOf(task, inst)?.length ?? 0) > 0);

  if (ranked) {
    const scores: number[] = [];
    // Chunks of instances whose rows (one per option) make about one batch.
    const perInstance = Math.max(1, Math.floor(batchSize / Math.max(...instances.map((i) => optionsOf(task, i)!.length))));
    for (let start = 0; start < instances.length; start += perInstance) {
      const chunk = instances.slice(start, start + perInstance);
      // Behind a prefix, rows hold only the instance (the zero-shot rows without the definition).
      const batch =
        condition.mode === 'hyper'
          ? collateRankClassification(task, chunk, [], 'zeroshot', { ...o, useDefinition: false })
          : collateRankClassification(task, chunk, examples, condition.mode, o);
      const hidden = condition.hidden(batch.rows);
      let logProbs: number[][];
      try {
        logProbs = await labelLogProbs(s.model, hidden, batch.rows.labels);
      } finally {
        hidden.dispose();
      }
      chunk.forEach((inst, i) => {
        const options = optionsOf(task, inst)!;
        const rows = batch.rowInstance.map((owner, r) => (owner === i ? r : -1)).filter((r) => r >= 0);
        const chosen = rankClassify(rows.map((r) => logProbs[r]), s.scoring ?? 'sum');
        scores.push(optionCorrect(options, batch.rowOption[rows[chosen]], referencesOf(inst)));
      });
    }
    return { ...base, metric: 'accuracy', scores };
  }

  const metric = task.metric === 'rougeL' ? 'rougeL' : 'exact';
  const definition = condition.mode === 'hyper' ? undefined : task.definition;
  const prompts = instances.map((inst) =>
    promptIds(condition.mode === 'fewshot' ? fewShotRow(o, definition, examples, inst.input, '') : answerRow(o, inst.input, '', definition)),
  );
  const scores: number[] = [];
  for (let start = 0; start < instances.length; start += batchSize) {
    const chunk = prompts.slice(start, start + batchSize);
    const outputs = await condition.generate(chunk, s.maxNewTokens ?? 64);
    outputs.forEach((tokens, i) => {
      const prediction = answerText(s, chunk[i], tokens);
      const refs = referencesOf(instances[start + i]);
      scores.push(metric === 'rougeL' ? rougeLScore(prediction, refs) : exactMatch(prediction, refs));
    });
  }
  return { ...base, metric, scores };
}

/** The HyperLlama prefix of a task (batch 1): the hyper pass over its definition and demonstrations, once. */
export function taskPrefix(hl: HyperLlama, plan: TaskPlan, s: EvalSettings): GistPrefix {
  const o = { ...collateOptions(s), gistIds: [...hl.gistIds], maxHyperLength: s.maxHyperLength ?? 1024 };
  // Only the hyper half is used; the downstream half needs some target, any one will do.
  const target = plan.examples[0] ?? plan.instances[0];
  const { hyper } = collateHyperLlama([{ task: plan.task, examples: plan.examples, target }], o);
  return hl.encode(hyper);
}

export type BaseMethod = 'zero-shot' | 'icl' | 'hyperllama';

export interface ProgressEvent {
  method: string;
  task: string;
  done: number;
  total: number;
}

/** Scores each planned task with `zero-shot`, `icl` (full attention over the k examples) or `hyperllama`. */
export async function evaluateMethod(
  method: BaseMethod,
  plans: readonly TaskPlan[],
  s: EvalSettings & { hyperllama?: HyperLlama; prefixes?: Map<string, PrefixLike> },
  onProgress?: (e: ProgressEvent) => void,
): Promise<TaskScores[]> {
  const hl = s.hyperllama;
  if (method === 'hyperllama' && !hl && !s.prefixes) throw new EvalError('NO_HYPERNET', 'method hyperllama needs a HyperLlama checkpoint or stored prefixes', { field: 'method' });
  const out: TaskScores[] = [];
  for (const [i, plan] of plans.entries()) {
    if (method === 'hyperllama') {
      const stored = s.prefixes?.get(plan.task.name);
      const prefix = stored ?? taskPrefix(hl!, plan, s);
      try {
        out.push(await scoreTask(plan, prefixCondition(s, prefix, downstreamAdapters(s)), s));
      } finally {
        if (!stored) tf.dispose([...prefix.keys, ...prefix.values]);
      }
    } else {
      const mode = method === 'icl' ? 'fewshot' : 'zeroshot';
      out.push(await scoreTask(method === 'icl' ? plan : { ...plan, examples: [] }, plainCondition(s, mode, s.adapters?.[method] ?? []), s));
    }
    onProgress?.({ method, task: plan.task.name, done: i + 1, total: plans.length });
  }
  return out;
}

export interface PrefixTuningOptions {
  init: PrefixInit;
  /** Optimisation steps per task. */
  steps: number;
  /** Evaluate every this many steps (and at step 0 and the last step). */
  evalEvery: number;
  lr?: number;
  /** Prefix length for `random` (default: the HyperLlama's k, else 8). */
  length?: number;
  /** `shared`: the trained shared prefix (batch 1). */
  sharedPrefix?: KVPrefix;
  seed?: number;
}

/** The adapters of a downstream pass: a HyperLlama checkpoint's downstream LoRA when it has one, else none. */
function downstreamAdapters(s: { hyperllama?: HyperLlama }): string[] {
  return s.hyperllama?.hasDownstreamAdapter ? ['downstream'] : [];
}

/**
 * Per-task prefix tuning on the task's k demonstrations, evaluated along the way. The downstream model is the
 * HyperLlama's (its downstream adapter on, when it has one) for every initialisation, so the three are comparable.
 */
export async function evaluatePrefixTuning(
  plans: readonly TaskPlan[],
  s: EvalSettings & { hyperllama?: HyperLlama },
  p: PrefixTuningOptions,
  onProgress?: (e: ProgressEvent) => void,
): Promise<{ scores: TaskScores[]; curve: CurvePoint[] }> {
  const method = `prefix-tuning-${p.init}`;
  if (!(Number.isInteger(p.steps) && p.steps >= 0)) throw new EvalError('BAD_OPTION', `prefix tuning steps: expected an integer >= 0, got ${p.steps}`, { field: 'steps' });
  if (!(Number.isInteger(p.evalEvery) && p.evalEvery >= 1)) throw new EvalError('BAD_OPTION', `prefix tuning evalEvery: expected an integer >= 1, got ${p.evalEvery}`, { field: 'evalEvery' });
  const evalSteps = [...new Set([0, ...Array.from({ length: Math.floor(p.steps / p.evalEvery) }, (_, i) => (i + 1) * p.evalEvery), p.steps])];
  const perStep = new Map<number, TaskScores[]>(evalSteps.map((st) => [st, []]));
  const o = collateOptions(s, { useDefinition: false });
  const downstream = downstreamAdapters(s);
  const final: TaskScores[] = [];
  for (const [index, plan] of plans.entries()) {
    if (plan.examples.length === 0) throw new EvalError('NO_EXAMPLES', `prefix tuning task "${plan.task.name}" needs demonstrations (shots > 0)`, { field: 'shots' });
    const train = collateZeroShot(plan.examples.map((target) => ({ task: { definition: undefined }, target })), o);
    const tuned = initPrefix(plan, s, p, train);
    const optimizer = new AdamW(tuned.trainableVariables(), { lr: p.lr ?? 1e-2, weightDecay: 0 });
    let last: TaskScores | undefined;
    try {
      for (let step = 0; ; step++) {
        if (perStep.has(step)) {
          last = await scoreTask(plan, prefixCondition(s, tuned.prefix(), downstream), s);
          perStep.get(step)!.push(last);
        }
        if (step >= p.steps) break;
        await withActiveAdapters(s.model, downstream, () => trainStep(tuned.trainableVariables(), optimizer, () => tuned.loss(s.model, train, { training: true })));
      }
    } finally {
      optimizer.dispose();
      tuned.dispose();
    }
    onProgress?.({ method, task: plan.task.name, done: index + 1, total: plans.length });
    final.push(last!);
  }
  return { scores: final, curve: evalSteps.map((step) => ({ step, scores: perStep.get(step)! })) };
}

function initPrefix(plan: TaskPlan, s: EvalSettings & { hyperllama?: HyperLlama }, p: PrefixTuningOptions, train: LmBatch): PrefixTuning {
  if (p.init === 'random') {
    return withActiveAdapters(s.model, downstreamAdapters(s), () => PrefixTuning.random(s.model, p.length ?? s.hyperllama?.k ?? 8, { sampleIds: train.inputIds, seed: p.seed ?? 0 }));
  }
  if (p.init === 'shared') {
    if (!p.sharedPrefix) throw new EvalError('NO_SHARED_PREFIX', 'prefix tuning from "shared" needs a trained shared prefix', { field: 'sharedPrefix' });
    return PrefixTuning.fromPrefix(p.sharedPrefix);
  }
  if (!s.hyperllama) throw new EvalError('NO_HYPERNET', 'prefix tuning from "hyper" needs a HyperLlama checkpoint', { field: 'hyperllama' });
  const prefix = taskPrefix(s.hyperllama, plan, s);
  try {
    return PrefixTuning.fromPrefix(prefix);
  } finally {
    tf.dispose([...prefix.keys, ...prefix.values]);
  }
}

/** A requested method: a base one or `prefix-tuning-<init>`. */
export type MethodName = BaseMethod | `prefix-tuning-${PrefixInit}`;

export const ALL_METHODS: readonly MethodName[] = ['zero-shot', 'icl', 'hyperllama', 'prefix-tuning-random', 'prefix-tuning-shared', 'prefix-tuning-hyper'];

/** Parses `zero-shot,icl,hyperllama,prefix-tuning` (`prefix-tuning` alone means every initialisation available). */
export function parseMethods(text: string, available: { shared: boolean; hyper: boolean }): MethodName[] {
  const out: MethodName[] = [];
  for (const raw of text.split(',').map((m) => m.trim()).filter(Boolean)) {
    if (raw === 'prefix-tuning') {
      out.push('prefix-tuning-random');
      if (available.shared) out.push('prefix-tuning-shared');
      if (available.hyper) out.push('prefix-tuning-hyper');
    } else if ((ALL_METHODS as readonly string[]).includes(raw)) out.push(raw as MethodName);
    else throw new EvalError('UNKNOWN_METHOD', `unknown method "${raw}"; expected ${[...ALL_METHODS, 'prefix-tuning'].join(', ')}`, { field: 'methods', actual: raw });
  }
  if (out.length === 0) throw new EvalError('UNKNOWN_METHOD', 'no method given', { field: 'methods' });
  return [...new Set(out)];
}

export interface EvaluateOptions extends PlanOptions {
  methods: readonly MethodName[];
  prefixTuning?: Omit<PrefixTuningOptions, 'init'>;
}

/** Plans the tasks once (seeded) and runs every method on the same demonstrations and instances. */
export async function evaluate(
  tasks: readonly Task[],
  s: EvalSettings & { hyperllama?: HyperLlama; prefixes?: Map<string, PrefixLike> },
  o: EvaluateOptions,
  onProgress?: (e: ProgressEvent) => void,
): Promise<MethodResult[]> {
  const plans = planTasks(tasks, o);
  const shared = {
    shots: o.shots,
    seed: o.seed,
    maxInstances: o.maxInstances ?? null,
    scoring: s.scoring ?? 'sum',
    maxLength: s.maxLength ?? 1024,
    maxNewTokens: s.maxNewTokens ?? 64,
  };
  const results: MethodResult[] = [];
  for (const method of o.methods) {
    if (method.startsWith('prefix-tuning-')) {
      const init = method.slice('prefix-tuning-'.length) as PrefixInit;
      const pt = { steps: 20, evalEvery: 5, ...o.prefixTuning, init };
      const { scores, curve } = await evaluatePrefixTuning(plans, s, pt, onProgress);
      const { sharedPrefix: _shared, ...ptConfig } = pt;
      results.push({ method, configuration: { ...shared, ...ptConfig, lr: pt.lr ?? 1e-2 }, scores, curve });
      continue;
    }
    const adapters = method === 'hyperllama' ? downstreamAdapters(s) : (s.adapters?.[method as 'icl' | 'zero-shot'] ?? []);
    const configuration = { ...shared, ...(method === 'zero-shot' ? { shots: 0 } : {}), adapters, ...(method === 'hyperllama' ? { k: s.hyperllama?.k ?? null, storedPrefixes: s.prefixes !== undefined } : {}) };
    results.push({ method, configuration, scores: await evaluateMethod(method as BaseMethod, plans, s, onProgress) });
  }
  return results;
}
