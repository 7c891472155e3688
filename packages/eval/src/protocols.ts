import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_TEMPLATE,
  answerRow,
  collateHyperLlama,
  collateZeroShot,
  fewShotRow,
  hyperRow,
  optionsOf,
  referencesOf,
  type CollateOptions,
  type Example,
  type LmBatch,
  type PromptTemplate,
  type Task,
  type TokenEncoder,
} from '@hyperllama/datasets';
import type { Prefix } from '@hyperllama/gist-attention';
import { continuationText, generate, type LlamaModel, type TextCodec } from '@hyperllama/llama-model';
import { withActiveAdapters } from '@hyperllama/lora';
import { HyperLlama, PrefixTuning, fit, initPrefixTuning, prefixedHidden, type PrefixInit } from '@hyperllama/hypernet';
import { AdamW, IGNORE_INDEX, Rng, mean } from '@hyperllama/runtime';
import { categoryKey, type TaskScores } from './aggregate.js';
import { EvalError } from './errors.js';
import {
  answerLoss,
  exactMatch,
  optionCorrect,
  rankClassify,
  rougeLScore,
  type ExactMatchNormalization,
  type RankScoring,
} from './metrics.js';
import type { CurvePoint, MethodResult } from './report.js';
import { shardItems, type Shard } from './shards.js';

/** What evaluation needs from a tokenizer (`@hyperllama/tokenizer`'s `Tokenizer` provides it). */
export type EvalTokenizer = TokenEncoder & TextCodec;

/** The k demonstrations, the evaluated instances and the prefix-tuning pool of one task, the same for every method. */
export interface TaskPlan {
  task: Task;
  /** The demonstrations every method sees (ICL in context, HyperLlama through its hypernetwork), in order. */
  examples: Example[];
  instances: Example[];
  /**
   * Prefix tuning's training pool (it contains the demonstrations and never an evaluated instance); default: the
   * demonstrations.
   */
  pool?: Example[];
  /** Where the pool comes from: the task's `examples`, or instances split off from evaluation (no separate pool). */
  poolFrom?: 'examples' | 'instances';
  /** Demonstrations drawn before {@link fitPlan} dropped the ones that do not fit (default `examples.length`). */
  drawn?: number;
}

export interface PlanOptions {
  /** Demonstrations per task (fewer when the pool is smaller). */
  shots: number;
  /** At most this many evaluated instances per task (default all). */
  maxInstances?: number;
  seed: number;
  /** Size of each task's prefix-tuning pool (default 32; the demonstrations are always in it). */
  poolSize?: number;
}

/**
 * k demonstrations from `pool`, as balanced over the labels (`output`s) as the pool allows: labels in a seeded order,
 * each label's examples seeded-shuffled, taken round-robin (one per label per round, labels that run out skipped),
 * then the chosen ones shuffled.
 */
export function balancedDemonstrations(pool: readonly Example[], k: number, rng: Rng): Example[] {
  const byLabel = new Map<string, Example[]>();
  for (const e of pool) byLabel.set(e.output, [...(byLabel.get(e.output) ?? []), e]);
  const labels = rng.shuffle([...byLabel.keys()].sort());
  const groups = labels.map((l) => rng.shuffle([...byLabel.get(l)!]));
  const chosen: Example[] = [];
  for (let round = 0; chosen.length < Math.min(k, pool.length); round++) {
    for (const g of groups) {
      if (chosen.length >= k) break;
      if (round < g.length) chosen.push(g[round]);
    }
  }
  return rng.shuffle(chosen);
}

/**
 * Seeded per-task choice of demonstrations, instances and prefix-tuning pool: `new Rng(seed).fork('plan/<task>')`.
 * The demonstrations come from the task's pool (its `examples`, else its instances); a task with a closed label set
 * (`options`) gets class-balanced demonstrations ({@link balancedDemonstrations}), any other a seeded random draw.
 * When there are more than `maxInstances` candidates, which instances to keep (in their original order) is seeded
 * too. Instances used as demonstrations are never evaluated. The tuning pool is the demonstrations plus (seeded) more
 * of the task's `examples`, up to `poolSize`; a task without `examples` has its pool split off its instances: the
 * demonstrations plus instances not selected for evaluation (`poolFrom: 'instances'`).
 */
export function planTasks(tasks: readonly Task[], o: PlanOptions): TaskPlan[] {
  if (!Number.isInteger(o.shots) || o.shots < 0)
    throw new EvalError('BAD_OPTION', `shots: expected an integer >= 0, got ${o.shots}`, {
      field: 'shots',
      actual: o.shots,
    });
  const poolSize = o.poolSize ?? 32;
  if (!Number.isInteger(poolSize) || poolSize < 0)
    throw new EvalError('BAD_OPTION', `poolSize: expected an integer >= 0, got ${poolSize}`, {
      field: 'poolSize',
      actual: poolSize,
    });
  return tasks.map((task) => {
    const rng = new Rng(o.seed).fork(`plan/${task.name}`);
    const fromPool = task.examples.length > 0;
    const source = fromPool ? task.examples : task.instances;
    const k = Math.min(o.shots, source.length);
    const examples =
      (task.options?.length ?? 0) > 0
        ? balancedDemonstrations(source, k, rng.fork('balanced'))
        : rng.sample([...source], k);
    const shown = new Set(examples);
    let candidates = task.instances.map((inst, i) => ({ inst, i })).filter(({ inst }) => fromPool || !shown.has(inst));
    const max = o.maxInstances ?? candidates.length;
    let leftover: Example[] = [];
    if (candidates.length > max) {
      const kept = rng.sample(candidates, max).sort((a, b) => a.i - b.i);
      const keptSet = new Set(kept.map((c) => c.i));
      leftover = candidates.filter((c) => !keptSet.has(c.i)).map((c) => c.inst);
      candidates = kept;
    }
    if (candidates.length === 0)
      throw new EvalError(
        'NO_INSTANCES',
        `task "${task.name}": no instance left to evaluate after taking ${examples.length} demonstrations`,
        { field: task.name },
      );
    const room = Math.max(0, poolSize - examples.length);
    const extra = fromPool
      ? (() => {
          const rest = task.examples.filter((e) => !shown.has(e));
          return rng.fork('pool').sample(rest, Math.min(room, rest.length));
        })()
      : leftover.slice(0, room);
    return {
      task,
      examples,
      instances: candidates.map((c) => c.inst),
      pool: [...examples, ...extra],
      poolFrom: fromPool ? 'examples' : 'instances',
      drawn: examples.length,
    };
  });
}

/** What fitting a plan's demonstrations to the length budgets needs. */
export interface FitOptions {
  tokenizer: TokenEncoder;
  template?: PromptTemplate;
  /** Longest ICL row (default 1024). */
  maxLength?: number;
  /** Longest hypernetwork input (default 1024). */
  maxHyperLength?: number;
  useDefinition?: boolean;
  /** Gist tokens closing the hyper input (the HyperLlama's k); omit to fit the ICL rows only. */
  gists?: number;
}

/** Encoded rows whose tail is this close to the longest one's are checked exactly (tokenisation at joins may differ). */
const FIT_SLACK = 16;

/**
 * The plan with one list of demonstrations that fits BOTH budgets: the hyper input (definition, demonstrations and
 * the k gists within `maxHyperLength`) and every ICL row (definition, demonstrations, an instance and any of its
 * answers — the first reference and each option — plus EOS, within `maxLength`), dropping demonstrations from the end
 * until both fit. An instance whose row does not fit even without demonstrations is cut anyway and sees none; it does
 * not empty the list for the others. Idempotent; `drawn` keeps the count before fitting.
 */
export function fitPlan(plan: TaskPlan, f: FitOptions): TaskPlan {
  const drawn = plan.drawn ?? plan.examples.length;
  if (plan.examples.length === 0) return { ...plan, drawn };
  const template = f.template ?? DEFAULT_TEMPLATE;
  const o: CollateOptions = {
    encoder: f.tokenizer,
    template,
    maxLength: f.maxLength ?? 1024,
    useDefinition: f.useDefinition ?? true,
    eos: true,
  };
  const definition = plan.task.definition;
  let count = plan.examples.length;
  if (f.gists !== undefined) {
    const gistIds = Array.from({ length: f.gists }, () => f.tokenizer.padId);
    count = Math.min(
      count,
      hyperRow({ ...o, gistIds, maxHyperLength: f.maxHyperLength ?? 1024 }, definition, plan.examples).numExamples,
    );
  }
  const candidates = plan.instances.flatMap((inst) =>
    [...new Set([referencesOf(inst)[0], ...(optionsOf(plan.task, inst) ?? [])])].map((answer) => ({
      input: inst.input,
      answer,
      length: f.tokenizer.encode(template.prompt(inst.input) + template.answer(answer), { bos: false, eos: false })
        .length,
    })),
  );
  // A row too long even without demonstrations is cut anyway (it sees none); it does not take the others' away.
  const head = (o.useDefinition ?? true) && definition ? template.definition(definition) : '';
  const fitsAlone = (c: (typeof candidates)[number]) =>
    f.tokenizer.encode(head + template.prompt(c.input) + template.answer(c.answer), { bos: false, eos: false }).length +
      2 <=
    o.maxLength!;
  const sorted = [...candidates].sort((a, b) => b.length - a.length);
  const longest = sorted.find(fitsAlone)?.length ?? 0;
  for (const c of sorted.filter((c) => c.length >= longest - FIT_SLACK && c.length <= longest + FIT_SLACK)) {
    if (count === 0) break;
    if (!fitsAlone(c)) continue;
    count = Math.min(count, fewShotRow(o, definition, plan.examples.slice(0, count), c.input, c.answer).numExamples);
  }
  return { ...plan, examples: plan.examples.slice(0, count), drawn };
}

/** {@link fitPlan} for every plan. */
export function fitPlans(plans: readonly TaskPlan[], f: FitOptions): TaskPlan[] {
  return plans.map((p) => fitPlan(p, f));
}

/** Settings shared by every method. */
export interface EvalSettings {
  model: LlamaModel;
  tokenizer: EvalTokenizer;
  template?: PromptTemplate;
  /** Longest downstream / few-shot row in tokens (default 1024); see {@link fitPlan}. */
  maxLength?: number;
  /** Longest hypernetwork input (default 1024). */
  maxHyperLength?: number;
  /** Rows per forward pass (default 16). */
  batchSize?: number;
  /** Rank classification by mean (default: length-normalised) or summed option log-likelihood. */
  scoring?: RankScoring;
  /** Generated tokens per instance for ROUGE-L / exact-match tasks (default 64). */
  maxNewTokens?: number;
  /** Put the task definition in front (zero-shot, ICL) or into the hypernetwork input (default true). */
  useDefinition?: boolean;
  /**
   * Exact match: `strict` (surrounding whitespace trimmed only), `sni` (S-NI's normalisation), or `auto` (default):
   * `sni` for Super-NaturalInstructions tasks ({@link usesSniExactMatch}), `strict` for every other.
   */
  exactMatch?: 'auto' | ExactMatchNormalization;
  /** Adapters active for the no-prefix methods (e.g. the multi-task ICL LoRA); default none. */
  adapters?: { 'zero-shot'?: string[]; icl?: string[] };
}

/**
 * Whether a task is scored as S-NI's own scorer scores it (normalised exact match): its source is `sni`, or its name
 * is an S-NI task name (`task<N>_…`; S-NI files carry the original dataset as `Source`).
 */
export function usesSniExactMatch(task: Pick<Task, 'name' | 'source'>): boolean {
  return task.source.toLowerCase() === 'sni' || /^task\d+_/.test(task.name);
}

/** The plan's fitting options under evaluation settings (gists: the HyperLlama's k, when there is one). */
export function fitOptions(s: EvalSettings, gists?: number): FitOptions {
  return {
    tokenizer: s.tokenizer,
    template: s.template,
    maxLength: s.maxLength,
    maxHyperLength: s.maxHyperLength,
    useDefinition: s.useDefinition,
    ...(gists !== undefined ? { gists } : {}),
  };
}

/** How one method runs the frozen model for one task: rows are built in `mode`, then run by `hidden`/`generate`. */
interface Condition {
  mode: 'zeroshot' | 'fewshot' | 'hyper';
  /** The demonstrations in context (few-shot rows) and the definition in front (zero-shot and few-shot rows). */
  examples: readonly Example[];
  definition?: string;
  /** Behind a prefix: the demonstrations it was computed from (undefined for a tuned prefix). */
  prefixDemonstrations?: number;
  /** Hidden states [R, T, D] of right-padded rows. */
  hidden(batch: Pick<LmBatch, 'inputIds' | 'attentionMask'>): tf.Tensor3D;
  /** Greedy continuations of prompts (token ids, BOS included). */
  generate(prompts: number[][], maxNewTokens: number): Promise<number[][]>;
}

function plainCondition(
  s: EvalSettings,
  mode: 'zeroshot' | 'fewshot',
  adapters: readonly string[],
  context: { examples: readonly Example[]; definition?: string },
): Condition {
  const { model } = s;
  return {
    mode,
    ...context,
    hidden: (batch) =>
      withActiveAdapters(model, adapters, () =>
        tf.tidy(
          () =>
            model.forward({
              inputIds: tf.tensor2d(batch.inputIds, undefined, 'int32'),
              attentionMask: tf.tensor2d(batch.attentionMask, undefined, 'int32'),
              returnHidden: true,
            }).hidden!,
        ),
      ),
    generate: (prompts, maxNewTokens) =>
      withActiveAdapters(
        model,
        adapters,
        async () =>
          (
            await generate(model, prompts, {
              maxNewTokens,
              stopIds: [model.config.eosTokenId],
              padId: s.tokenizer.padId,
            })
          ).tokens,
      ),
  };
}

/** A downstream condition behind a prefix of batch 1 (a HyperLlama prefix or a tuned one); rows hold the instance only. */
function prefixCondition(
  s: EvalSettings,
  prefix: Prefix,
  adapters: readonly string[],
  demonstrations?: number,
): Condition {
  const { model } = s;
  return {
    mode: 'hyper',
    examples: [],
    prefixDemonstrations: demonstrations,
    hidden: (batch) => withActiveAdapters(model, adapters, () => prefixedHidden(model, batch, prefix)),
    generate: (prompts, maxNewTokens) =>
      withActiveAdapters(
        model,
        adapters,
        async () =>
          (
            await generate(model, prompts, {
              maxNewTokens,
              prefix,
              stopIds: [model.config.eosTokenId],
              padId: s.tokenizer.padId,
            })
          ).tokens,
      ),
  };
}

function collateOptions(s: EvalSettings, extra: Partial<CollateOptions> = {}): CollateOptions {
  return {
    encoder: s.tokenizer,
    template: s.template ?? DEFAULT_TEMPLATE,
    maxLength: s.maxLength ?? 1024,
    useDefinition: s.useDefinition ?? true,
    ...extra,
  };
}

/**
 * Per-token log-probabilities of the labelled tokens of each row: `labels[r][t]` is predicted from position t-1.
 * Returns one array per row (empty for a row without labels). Read asynchronously (webgpu reads no other way).
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
    const chosen = tf.gatherND(
      logits,
      tf.tensor2d(
        ids.map((id, n) => [n, id]),
        [ids.length, 2],
        'int32',
      ),
    ) as tf.Tensor1D; // [N]
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

interface Row {
  ids: number[];
  labels: number[];
  numExamples: number;
}

/** Right-padded rows (padding: `padId`, mask 0, label ignored). */
function padRows(rows: readonly Row[], padId: number): Pick<LmBatch, 'inputIds' | 'attentionMask' | 'labels'> {
  const width = Math.max(0, ...rows.map((r) => r.ids.length));
  const fill = <T>(xs: T[], v: T): T[] => [...xs, ...Array<T>(width - xs.length).fill(v)];
  return {
    inputIds: rows.map((r) => fill(r.ids, padId)),
    attentionMask: rows.map((r) =>
      fill(
        r.ids.map(() => 1),
        0,
      ),
    ),
    labels: rows.map((r) => fill(r.labels, IGNORE_INDEX)),
  };
}

/** Whether a row's last label is EOS (absent when the answer was cut to fit). */
function endsWithEos(row: Row, eosId: number): boolean {
  const labelled = row.labels.filter((l) => l !== IGNORE_INDEX);
  return labelled.length > 0 && labelled[labelled.length - 1] === eosId;
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

/**
 * Scores every instance of a planned task under one condition (rank classification, or generation + metric) and
 * measures its answer loss: the first reference's tokens teacher-forced in an EOS-labelled row (for rank
 * classification the option rows are EOS-labelled too, so one pass gives both; the EOS log-probability does not enter
 * the option scores).
 */
async function scoreTask(
  plan: Pick<TaskPlan, 'task' | 'instances'>,
  condition: Condition,
  s: EvalSettings,
): Promise<TaskScores> {
  const { task, instances } = plan;
  const batchSize = s.batchSize ?? 16;
  const eosId = s.tokenizer.eosId;
  const hyper = condition.mode === 'hyper';
  // Behind a prefix, rows hold only the instance (no definition): the prefix carries the task.
  const base = collateOptions(s, hyper ? { useDefinition: false } : {});
  const definition = hyper ? undefined : condition.definition;
  const rowOf = (input: string, answer: string, eos: boolean): Row => {
    const o = { ...base, eos };
    if (condition.mode === 'fewshot') return fewShotRow(o, definition, condition.examples, input, answer);
    return { ...answerRow(o, input, answer, definition), numExamples: condition.prefixDemonstrations ?? 0 };
  };
  const meta = { task: task.name, ...(task.category ? { category: task.category } : {}) };
  const losses: number[] = [];
  const lossesWithEos: number[] = [];
  const seen: number[] = [];
  const forward = async (rows: Row[]): Promise<number[][]> => {
    const batch = padRows(rows, s.tokenizer.padId);
    const hidden = condition.hidden(batch);
    try {
      return await labelLogProbs(s.model, hidden, batch.labels);
    } finally {
      hidden.dispose();
    }
  };
  const pushLoss = (row: Row, logProbs: number[]) => {
    const l = answerLoss(logProbs, endsWithEos(row, eosId));
    losses.push(l.withoutEos);
    lossesWithEos.push(l.withEos);
  };
  const ranked = task.metric === 'accuracy' && instances.every((inst) => (optionsOf(task, inst)?.length ?? 0) > 0);

  if (ranked) {
    const scores: number[] = [];
    const scoring = s.scoring ?? 'mean';
    // Chunks of instances whose rows (one per option, plus the reference when it is not an option) make about one batch.
    const perInstance = Math.max(
      1,
      Math.floor(batchSize / Math.max(...instances.map((i) => optionsOf(task, i)!.length))),
    );
    for (let start = 0; start < instances.length; start += perInstance) {
      const chunk = instances.slice(start, start + perInstance);
      const rows: Row[] = [];
      const layout = chunk.map((inst) => {
        const options = optionsOf(task, inst)!;
        const first = rows.length;
        for (const option of options) rows.push(rowOf(inst.input, option, true));
        const reference = referencesOf(inst)[0];
        let lossRow = options.indexOf(reference);
        if (lossRow < 0) {
          rows.push(rowOf(inst.input, reference, true));
          lossRow = options.length;
        }
        return { options, first, lossRow: first + lossRow };
      });
      const logProbs = await forward(rows);
      chunk.forEach((inst, i) => {
        const { options, first, lossRow } = layout[i];
        const optionLogProbs = options.map((_, j) => {
          const r = first + j;
          return endsWithEos(rows[r], eosId) ? logProbs[r].slice(0, -1) : logProbs[r];
        });
        scores.push(optionCorrect(options, rankClassify(optionLogProbs, scoring), referencesOf(inst)));
        pushLoss(rows[lossRow], logProbs[lossRow]);
        seen.push(Math.min(...options.map((_, j) => rows[first + j].numExamples)));
      });
    }
    return {
      ...meta,
      metric: 'accuracy',
      scores,
      answerLoss: losses,
      answerLossWithEos: lossesWithEos,
      demonstrations: mean(seen, 0),
    };
  }

  const metric = task.metric === 'rougeL' ? 'rougeL' : 'exact';
  const normalize: ExactMatchNormalization =
    (s.exactMatch ?? 'auto') === 'auto'
      ? usesSniExactMatch(task)
        ? 'sni'
        : 'strict'
      : (s.exactMatch as ExactMatchNormalization);
  const promptRows = instances.map((inst) => rowOf(inst.input, '', false));
  const prompts = promptRows.map(promptIds);
  const scores: number[] = [];
  for (let start = 0; start < instances.length; start += batchSize) {
    const chunk = prompts.slice(start, start + batchSize);
    const outputs = await condition.generate(chunk, s.maxNewTokens ?? 64);
    outputs.forEach((tokens, i) => {
      const prediction = answerText(s, chunk[i], tokens);
      const refs = referencesOf(instances[start + i]);
      scores.push(metric === 'rougeL' ? rougeLScore(prediction, refs) : exactMatch(prediction, refs, { normalize }));
    });
    const lossRows = instances
      .slice(start, start + batchSize)
      .map((inst) => rowOf(inst.input, referencesOf(inst)[0], true));
    const logProbs = await forward(lossRows);
    lossRows.forEach((row, i) => pushLoss(row, logProbs[i]));
  }
  promptRows.forEach((r) => seen.push(r.numExamples));
  return {
    ...meta,
    metric,
    scores,
    answerLoss: losses,
    answerLossWithEos: lossesWithEos,
    demonstrations: mean(seen, 0),
  };
}

/** The hyper pass over a (fitted) plan's definition and demonstrations, and how many demonstrations it read. */
function encodeTaskPrefix(hl: HyperLlama, plan: TaskPlan, s: EvalSettings): { prefix: Prefix; demonstrations: number } {
  const fitted = fitPlan(plan, fitOptions(s, hl.k));
  const o = { ...collateOptions(s), gistIds: [...hl.gistIds], maxHyperLength: s.maxHyperLength ?? 1024 };
  // Only the hyper half is used; the downstream half needs some target, any one will do.
  const target = fitted.examples[0] ?? fitted.instances[0];
  const { hyper } = collateHyperLlama([{ task: fitted.task, examples: fitted.examples, target }], o);
  return { prefix: hl.encode(hyper), demonstrations: hyper.numExamples[0] };
}

/**
 * The HyperLlama prefix of a task (batch 1): the hyper pass over its definition and demonstrations, once. The plan is
 * fitted first ({@link fitPlan} with the HyperLlama's k), so the prefix reads the demonstrations ICL sees.
 */
export function taskPrefix(hl: HyperLlama, plan: TaskPlan, s: EvalSettings): Prefix {
  return encodeTaskPrefix(hl, plan, s).prefix;
}

/** How many of a plan's demonstrations a hyper input of `gists` gists holds. */
function hyperDemonstrations(plan: TaskPlan, s: EvalSettings, gists: number): number {
  if (plan.examples.length === 0) return 0;
  const o = {
    ...collateOptions(s),
    gistIds: Array.from({ length: gists }, () => s.tokenizer.padId),
    maxHyperLength: s.maxHyperLength ?? 1024,
  };
  return hyperRow(o, plan.task.definition, plan.examples).numExamples;
}

/** A task's HyperLlama prefix with the demonstrations it read; `owned` when computed here (the caller disposes it). */
export interface TaskPrefix {
  prefix: Prefix;
  demonstrations: number;
  owned: boolean;
}

/** Each plan's HyperLlama prefix, once: the stored one when given, else the hyper pass. */
export function taskPrefixes(
  plans: readonly TaskPlan[],
  s: EvalSettings & { hyperllama?: HyperLlama; prefixes?: ReadonlyMap<string, Prefix> },
): Map<string, TaskPrefix> {
  const out = new Map<string, TaskPrefix>();
  try {
    for (const plan of plans) {
      const stored = s.prefixes?.get(plan.task.name);
      if (stored) {
        out.set(plan.task.name, {
          prefix: stored,
          demonstrations: hyperDemonstrations(plan, s, s.hyperllama?.k ?? stored.length),
          owned: false,
        });
        continue;
      }
      if (!s.hyperllama)
        throw new EvalError(
          'NO_HYPERNET',
          `task "${plan.task.name}": no stored prefix and no HyperLlama checkpoint to compute one`,
          { field: 'hyperllama' },
        );
      const { prefix, demonstrations } = encodeTaskPrefix(s.hyperllama, plan, s);
      out.set(plan.task.name, { prefix, demonstrations, owned: true });
    }
  } catch (e) {
    disposeTaskPrefixes(out);
    throw e;
  }
  return out;
}

/** Frees the prefixes {@link taskPrefixes} computed (stored ones stay with their owner). */
export function disposeTaskPrefixes(prefixes: ReadonlyMap<string, TaskPrefix>): void {
  for (const p of prefixes.values()) if (p.owned) p.prefix.dispose();
}

/**
 * The prefix-swap partner of every task: a derangement (no task keeps its own) that prefers a partner of another
 * group (its `category`, else the task itself): tasks sorted by (group, name), each paired with the one m places
 * later, cyclically, m being the largest group's size (1 when every task is in one group). When no group holds more
 * than half the tasks, every partner is of another group.
 */
export function swapPartners(tasks: ReadonlyArray<Pick<Task, 'name' | 'category'>>): Map<string, string> {
  if (tasks.length < 2)
    throw new EvalError('NO_SWAP_PARTNER', `the prefix swap needs at least 2 tasks, got ${tasks.length}`, {
      field: 'tasks',
      actual: tasks.length,
    });
  if (new Set(tasks.map((t) => t.name)).size !== tasks.length)
    throw new EvalError('DUPLICATE_TASK', 'swapPartners: task names must be unique', { field: 'tasks' });
  const group = (t: Pick<Task, 'name' | 'category'>) => (t.category ? `c:${categoryKey(t.category)}` : `t:${t.name}`);
  const sorted = [...tasks].sort((a, b) =>
    group(a) < group(b) ? -1 : group(a) > group(b) ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  const sizes = new Map<string, number>();
  for (const t of sorted) sizes.set(group(t), (sizes.get(group(t)) ?? 0) + 1);
  const m = Math.max(...sizes.values());
  const shift = m < sorted.length ? m : 1;
  return new Map(sorted.map((t, i) => [t.name, sorted[(i + shift) % sorted.length].name]));
}

export type BaseMethod = 'zero-shot' | 'icl' | 'hyperllama';

export interface ProgressEvent {
  method: string;
  task: string;
  done: number;
  total: number;
}

export interface MethodRunOptions {
  /**
   * The prefix-swap control: task → partner task whose context replaces the task's own (HyperLlama: the partner's
   * prefix; ICL: the partner's definition and demonstrations). A method without a task context (zero-shot) scores
   * exactly as without it. The instances stay the task's own.
   */
  swap?: ReadonlyMap<string, string>;
  /** Plans to find swap partners among, when they are not all in `plans` (a shard's; default `plans`). */
  contexts?: readonly TaskPlan[];
}

/**
 * Scores each planned task with `zero-shot`, `icl` (full attention over the plan's demonstrations) or `hyperllama`
 * (behind the task's prefix: `s.prefixes`' when given, else computed and freed here). Plans are used as given: fit
 * them first ({@link fitPlans}) so ICL and HyperLlama see the same demonstrations.
 */
export async function evaluateMethod(
  method: BaseMethod,
  plans: readonly TaskPlan[],
  s: EvalSettings & { hyperllama?: HyperLlama; prefixes?: ReadonlyMap<string, Prefix> },
  onProgress?: (e: ProgressEvent) => void,
  o: MethodRunOptions = {},
): Promise<TaskScores[]> {
  const hl = s.hyperllama;
  if (method === 'hyperllama' && !hl && !s.prefixes)
    throw new EvalError('NO_HYPERNET', 'method hyperllama needs a HyperLlama checkpoint or stored prefixes', {
      field: 'method',
    });
  const byName = new Map((o.contexts ?? plans).map((p) => [p.task.name, p]));
  const contextOf = (plan: TaskPlan): TaskPlan => {
    if (!o.swap) return plan;
    const partner = o.swap.get(plan.task.name);
    const found = partner === undefined ? undefined : byName.get(partner);
    if (!found)
      throw new EvalError('NO_SWAP_PARTNER', `swap: task "${plan.task.name}" has no partner among the plans`, {
        field: plan.task.name,
        actual: partner,
      });
    return found;
  };
  const name = o.swap ? `${method}-swap` : method;
  const out: TaskScores[] = [];
  for (const [i, plan] of plans.entries()) {
    const context = contextOf(plan);
    if (method === 'hyperllama') {
      const stored = s.prefixes?.get(context.task.name);
      const computed = stored ? undefined : encodeTaskPrefix(hl!, context, s);
      const prefix = stored ?? computed!.prefix;
      const demonstrations = computed?.demonstrations ?? hyperDemonstrations(context, s, hl?.k ?? prefix.length);
      try {
        out.push(await scoreTask(plan, prefixCondition(s, prefix, downstreamAdapters(s), demonstrations), s));
      } finally {
        computed?.prefix.dispose();
      }
    } else if (method === 'icl') {
      out.push(
        await scoreTask(
          plan,
          plainCondition(s, 'fewshot', s.adapters?.icl ?? [], {
            examples: context.examples,
            definition: context.task.definition,
          }),
          s,
        ),
      );
    } else {
      out.push(
        await scoreTask(
          plan,
          plainCondition(s, 'zeroshot', s.adapters?.['zero-shot'] ?? [], {
            examples: [],
            definition: plan.task.definition,
          }),
          s,
        ),
      );
    }
    onProgress?.({ method: name, task: plan.task.name, done: i + 1, total: plans.length });
  }
  return out;
}

/** A prefix-tuning initialisation: random, the trained shared prefix, the task's own HyperLlama prefix, or another task's. */
export type PrefixTuningInit = PrefixInit | 'hyper-other';

export const PREFIX_TUNING_INITS: readonly PrefixTuningInit[] = ['random', 'shared', 'hyper', 'hyper-other'];

/** Curve points when neither `evalSteps` nor `steps` is given. */
export const DEFAULT_EVAL_STEPS: readonly number[] = [0, 10, 25, 50];

export interface PrefixTuningOptions {
  /** Initialisations to tune from (default: random, plus shared when `sharedPrefix` is given, plus hyper and hyper-other when a HyperLlama or prefixes are). */
  inits?: readonly PrefixTuningInit[];
  /** One initialisation (older form of `inits`). */
  init?: PrefixTuningInit;
  /** Steps at which the curve is evaluated; the last is the number of optimisation steps (default [0, 10, 25, 50]). */
  evalSteps?: readonly number[];
  /** Older schedule: `steps` optimisation steps, evaluated at 0, every `evalEvery` steps and at `steps`. */
  steps?: number;
  evalEvery?: number;
  /** AdamW learning rate (default 1e-2, no weight decay). */
  lr?: number;
  /** Examples per minibatch, drawn seeded from the task's tuning pool (default 8). */
  batchSize?: number;
  /** Prefix length for `random` (default: the HyperLlama's k, else 8). */
  length?: number;
  /** `shared`: the trained shared prefix (batch 1). */
  sharedPrefix?: Prefix;
  /** Seed of the random initialisation and of the minibatch draws (default 0). */
  seed?: number;
  /** `hyper-other`: task → the task whose HyperLlama prefix to start from (default {@link swapPartners}). */
  partners?: ReadonlyMap<string, string>;
}

/** The adapters of a downstream pass: a HyperLlama checkpoint's downstream LoRA when it has one, else none. */
function downstreamAdapters(s: { hyperllama?: HyperLlama }): string[] {
  return s.hyperllama?.hasDownstreamAdapter ? ['downstream'] : [];
}

/** The evaluation steps of a prefix-tuning run (sorted, distinct, non-negative integers). */
export function prefixTuningSchedule(p: Pick<PrefixTuningOptions, 'evalSteps' | 'steps' | 'evalEvery'>): number[] {
  if (p.evalSteps) {
    const steps = [...new Set(p.evalSteps)].sort((a, b) => a - b);
    if (steps.length === 0 || steps.some((x) => !Number.isInteger(x) || x < 0))
      throw new EvalError(
        'BAD_OPTION',
        `prefix tuning evalSteps: expected integers >= 0, got [${p.evalSteps.join(', ')}]`,
        { field: 'evalSteps' },
      );
    return steps;
  }
  if (p.steps === undefined) return [...DEFAULT_EVAL_STEPS];
  if (!(Number.isInteger(p.steps) && p.steps >= 0))
    throw new EvalError('BAD_OPTION', `prefix tuning steps: expected an integer >= 0, got ${p.steps}`, {
      field: 'steps',
    });
  const every = p.evalEvery ?? p.steps;
  if (!(Number.isInteger(every) && every >= 1) && p.steps > 0)
    throw new EvalError('BAD_OPTION', `prefix tuning evalEvery: expected an integer >= 1, got ${p.evalEvery}`, {
      field: 'evalEvery',
    });
  return [
    ...new Set([
      0,
      ...(p.steps > 0 ? Array.from({ length: Math.floor(p.steps / every) }, (_, i) => (i + 1) * every) : []),
      p.steps,
    ]),
  ];
}

/** The initialisations a prefix-tuning run uses (see {@link PrefixTuningOptions.inits}). */
function resolveInits(
  p: PrefixTuningOptions,
  s: { hyperllama?: HyperLlama; prefixes?: ReadonlyMap<string, unknown> },
): PrefixTuningInit[] {
  const inits =
    p.inits ??
    (p.init
      ? [p.init]
      : [...PREFIX_TUNING_INITS].filter((i) =>
          i === 'shared'
            ? p.sharedPrefix !== undefined
            : i.startsWith('hyper')
              ? Boolean(s.hyperllama || s.prefixes)
              : true,
        ));
  for (const i of inits)
    if (!PREFIX_TUNING_INITS.includes(i))
      throw new EvalError(
        'BAD_OPTION',
        `unknown prefix-tuning initialisation "${i}"; expected ${PREFIX_TUNING_INITS.join(', ')}`,
        { field: 'inits', actual: i },
      );
  return [...new Set(inits)];
}

/**
 * Per-task prefix tuning from each initialisation, evaluated along the way. Each task trains on its tuning pool
 * (`plan.pool`: never an evaluated instance), `batchSize` examples per step drawn seeded from the pool — the same
 * minibatches for every initialisation — and is scored (scores and answer losses, the plan's instances) at every
 * step of the schedule. Initialisations: `random`, `shared` (the trained shared prefix), `hyper` (the task's own
 * HyperLlama prefix from its planned demonstrations) and `hyper-other` (another task's HyperLlama prefix, the
 * prefix-swap partner). `demonstrations` in the scores is what the initial prefix was computed from (0 for random and
 * shared). The downstream model is the HyperLlama's (its downstream adapter on, when it has one) for
 * every initialisation, so they are comparable. HyperLlama prefixes come from `s.prefixes`, else are computed once
 * per task and freed. Returns one result per initialisation (`prefix-tuning-<init>`) with its curve; `scores` is the
 * last point.
 */
export async function evaluatePrefixTuning(
  plans: readonly TaskPlan[],
  s: EvalSettings & { hyperllama?: HyperLlama; prefixes?: ReadonlyMap<string, Prefix> },
  p: PrefixTuningOptions,
  onProgress?: (e: ProgressEvent) => void,
  hyperPrefixes?: ReadonlyMap<string, TaskPrefix>,
): Promise<MethodResult[]> {
  const schedule = prefixTuningSchedule(p);
  const total = schedule[schedule.length - 1];
  const inits = resolveInits(p, s);
  const lr = p.lr ?? 1e-2;
  const batchSize = p.batchSize ?? 8;
  if (!(Number.isInteger(batchSize) && batchSize >= 1))
    throw new EvalError('BAD_OPTION', `prefix tuning batchSize: expected an integer >= 1, got ${batchSize}`, {
      field: 'batchSize',
      actual: batchSize,
    });
  if (!(lr > 0))
    throw new EvalError('BAD_OPTION', `prefix tuning lr: expected a positive number, got ${lr}`, {
      field: 'lr',
      actual: lr,
    });
  if (inits.includes('shared') && !p.sharedPrefix)
    throw new EvalError('NO_SHARED_PREFIX', 'prefix tuning from "shared" needs a trained shared prefix', {
      field: 'sharedPrefix',
    });
  const usesHyper = inits.some((i) => i.startsWith('hyper'));
  if (usesHyper && !s.hyperllama && !s.prefixes && !hyperPrefixes)
    throw new EvalError('NO_HYPERNET', 'prefix tuning from "hyper" needs a HyperLlama checkpoint or stored prefixes', {
      field: 'hyperllama',
    });
  const partners = inits.includes('hyper-other') ? (p.partners ?? swapPartners(plans.map((x) => x.task))) : undefined;
  for (const plan of plans)
    if ((plan.pool ?? plan.examples).length === 0)
      throw new EvalError('NO_EXAMPLES', `prefix tuning task "${plan.task.name}" has an empty tuning pool`, {
        field: 'pool',
      });

  const own = usesHyper ? (hyperPrefixes ?? taskPrefixes(plans, s)) : new Map<string, TaskPrefix>();
  const curves = new Map<PrefixTuningInit, Map<number, TaskScores[]>>(
    inits.map((i) => [i, new Map(schedule.map((st) => [st, []]))]),
  );
  const o = collateOptions(s, { useDefinition: false });
  const downstream = downstreamAdapters(s);
  try {
    for (const [index, plan] of plans.entries()) {
      const pool = plan.pool ?? plan.examples;
      const asRows = (xs: readonly Example[]) =>
        collateZeroShot(
          xs.map((target) => ({ task: { definition: undefined }, target })),
          o,
        );
      // The same minibatches for every initialisation.
      const rng = new Rng(p.seed ?? 0).fork(`prefix-tuning/${plan.task.name}`);
      const batches = Array.from({ length: total }, () => asRows(rng.sample(pool, Math.min(batchSize, pool.length))));
      for (const init of inits) {
        const { tuned, demonstrations } = startPrefix(init, plan, s, p, own, partners, asRows(pool));
        const optimizer = new AdamW(tuned.trainableVariables(), { lr, weightDecay: 0 });
        const points = curves.get(init)!;
        try {
          await fit({
            params: tuned.trainableVariables(),
            optimizer,
            steps: total,
            objective: (step) => () =>
              withActiveAdapters(s.model, downstream, () => tuned.loss(s.model, batches[step], { training: true })),
            evaluate: {
              at: (step) => points.has(step),
              run: async (step) =>
                void points
                  .get(step)!
                  .push(await scoreTask(plan, prefixCondition(s, tuned.prefix(), downstream, demonstrations), s)),
            },
          });
        } finally {
          optimizer.dispose();
          tuned.dispose();
        }
        onProgress?.({ method: `prefix-tuning-${init}`, task: plan.task.name, done: index + 1, total: plans.length });
      }
    }
  } finally {
    if (!hyperPrefixes) disposeTaskPrefixes(own);
  }
  const configuration = {
    lr,
    steps: total,
    evalSteps: schedule,
    batchSize,
    ...poolConfiguration(plans),
    seed: p.seed ?? 0,
  };
  return inits.map((init) => {
    const curve: CurvePoint[] = schedule.map((step) => ({ step, scores: curves.get(init)!.get(step)! }));
    return {
      method: `prefix-tuning-${init}`,
      configuration: {
        init,
        ...configuration,
        ...(init === 'random' ? { length: p.length ?? s.hyperllama?.k ?? 8 } : {}),
        ...(init === 'hyper-other' && partners ? { partners: Object.fromEntries(partners) } : {}),
      },
      scores: curve[curve.length - 1].scores,
      curve,
    };
  });
}

/** The tuning pools of the plans, as prefix tuning's configuration records them. */
function poolConfiguration(plans: readonly TaskPlan[]) {
  const poolSizes = plans.map((pl) => (pl.pool ?? pl.examples).length);
  return {
    poolSize: { min: Math.min(...poolSizes), max: Math.max(...poolSizes), mean: mean(poolSizes, 0) },
    poolSplitFromInstances: plans.filter((pl) => pl.poolFrom === 'instances').map((pl) => pl.task.name),
    pools: Object.fromEntries(
      plans.map((pl) => [pl.task.name, { size: (pl.pool ?? pl.examples).length, from: pl.poolFrom ?? 'examples' }]),
    ),
  };
}

function startPrefix(
  init: PrefixTuningInit,
  plan: TaskPlan,
  s: EvalSettings & { hyperllama?: HyperLlama },
  p: PrefixTuningOptions,
  prefixes: ReadonlyMap<string, TaskPrefix>,
  partners: ReadonlyMap<string, string> | undefined,
  poolRows: LmBatch,
): { tuned: PrefixTuning; demonstrations: number } {
  if (init === 'random' || init === 'shared') {
    const tuned = initPrefixTuning(s.model, init, {
      length: p.length ?? s.hyperllama?.k ?? 8,
      sampleIds: poolRows.inputIds,
      seed: p.seed ?? 0,
      adapters: downstreamAdapters(s),
      shared: p.sharedPrefix,
    });
    return { tuned, demonstrations: 0 };
  }
  const source = init === 'hyper' ? plan.task.name : partners!.get(plan.task.name);
  const prefix = source === undefined ? undefined : prefixes.get(source);
  if (!prefix)
    throw new EvalError(
      'NO_SWAP_PARTNER',
      `prefix tuning from "${init}": no HyperLlama prefix for task "${source ?? plan.task.name}"`,
      { field: plan.task.name },
    );
  return { tuned: initPrefixTuning(s.model, 'hyper', { hyper: prefix.prefix }), demonstrations: prefix.demonstrations };
}

/** A requested method: a base one or `prefix-tuning-<init>`. */
export type MethodName = BaseMethod | `prefix-tuning-${PrefixTuningInit}`;

export const ALL_METHODS: readonly MethodName[] = [
  'zero-shot',
  'icl',
  'hyperllama',
  'prefix-tuning-random',
  'prefix-tuning-shared',
  'prefix-tuning-hyper',
  'prefix-tuning-hyper-other',
];

/** Parses `zero-shot,icl,hyperllama,prefix-tuning` (`prefix-tuning` alone means every initialisation available). */
export function parseMethods(text: string, available: { shared: boolean; hyper: boolean }): MethodName[] {
  const out: MethodName[] = [];
  for (const raw of text
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean)) {
    if (raw === 'prefix-tuning') {
      out.push('prefix-tuning-random');
      if (available.shared) out.push('prefix-tuning-shared');
      if (available.hyper) out.push('prefix-tuning-hyper', 'prefix-tuning-hyper-other');
    } else if ((ALL_METHODS as readonly string[]).includes(raw)) out.push(raw as MethodName);
    else
      throw new EvalError(
        'UNKNOWN_METHOD',
        `unknown method "${raw}"; expected ${[...ALL_METHODS, 'prefix-tuning'].join(', ')}`,
        { field: 'methods', actual: raw },
      );
  }
  if (out.length === 0) throw new EvalError('UNKNOWN_METHOD', 'no method given', { field: 'methods' });
  return [...new Set(out)];
}

export interface EvaluateOptions extends PlanOptions {
  methods: readonly MethodName[];
  /** Prefix tuning's schedule and settings (the initialisations come from `methods`). */
  prefixTuning?: Omit<PrefixTuningOptions, 'inits' | 'init'>;
  /** Add the prefix-swap control `hyperllama-swap` after `hyperllama` (default true; needs at least 2 tasks). */
  swap?: boolean;
  /** Control tasks (names, or a predicate): marked `control: true`, reported apart and left out of the headline and the claims. */
  control?: readonly string[] | ((task: Task) => boolean);
  /**
   * Score only this shard's tasks ({@link shardItems}: task i of `tasks` is in shard i mod count). Everything else is
   * planned over all tasks as without sharding — swap partners, configurations, averages of demonstrations and pools —
   * so the shards' results joined ({@link mergeShardResults}) equal the unsharded results.
   */
  shard?: Shard;
}

/**
 * Plans the tasks once (seeded; demonstrations fitted to both length budgets) and runs every method on the same
 * demonstrations and instances. Each task's HyperLlama prefix is computed once and serves `hyperllama`, the
 * prefix-swap control `hyperllama-swap` (each task behind its {@link swapPartners} partner's prefix) and the
 * `hyper`/`hyper-other` prefix-tuning starts.
 */
export async function evaluate(
  tasks: readonly Task[],
  s: EvalSettings & { hyperllama?: HyperLlama; prefixes?: ReadonlyMap<string, Prefix> },
  o: EvaluateOptions,
  onProgress?: (e: ProgressEvent) => void,
): Promise<MethodResult[]> {
  const gists = s.hyperllama?.k ?? s.prefixes?.values().next().value?.length;
  const plans = fitPlans(planTasks(tasks, o), fitOptions(s, gists));
  // The plans this run scores (a shard's, else all); `plans` stays the whole evaluation's.
  const mine = o.shard ? shardItems(plans, o.shard) : plans;
  const isControl =
    typeof o.control === 'function'
      ? o.control
      : (
          (names: Set<string>) => (t: Task) =>
            names.has(t.name)
        )(new Set(o.control ?? []));
  const controlNames = new Set(tasks.filter(isControl).map((t) => t.name));
  const mark = (scores: TaskScores[]): TaskScores[] =>
    scores.map((t) => (controlNames.has(t.task) ? { ...t, control: true } : t));
  const ptInits = o.methods
    .filter((m) => m.startsWith('prefix-tuning-'))
    .map((m) => m.slice('prefix-tuning-'.length) as PrefixTuningInit);
  const wantsSwap = (o.swap ?? true) && o.methods.includes('hyperllama') && plans.length >= 2;
  const partners = plans.length >= 2 ? swapPartners(plans.map((p) => p.task)) : undefined;
  if (ptInits.includes('hyper-other') && !partners)
    throw new EvalError('NO_SWAP_PARTNER', 'prefix-tuning-hyper-other needs at least 2 tasks', { field: 'methods' });
  const needsPrefixes = o.methods.includes('hyperllama') || ptInits.some((i) => i.startsWith('hyper'));
  if (needsPrefixes && !s.hyperllama && !s.prefixes)
    throw new EvalError('NO_HYPERNET', 'method hyperllama needs a HyperLlama checkpoint or stored prefixes', {
      field: 'method',
    });
  const demonstrations = plans.map((p) => p.examples.length);
  const shared = {
    shots: o.shots,
    seed: o.seed,
    maxInstances: o.maxInstances ?? null,
    scoring: s.scoring ?? 'mean',
    exactMatch: s.exactMatch ?? 'auto',
    maxLength: s.maxLength ?? 1024,
    maxHyperLength: s.maxHyperLength ?? 1024,
    maxNewTokens: s.maxNewTokens ?? 64,
    demonstrationsPerTask: {
      drawn: mean(
        plans.map((p) => p.drawn ?? p.examples.length),
        0,
      ),
      fitted: mean(demonstrations, 0),
    },
    ...(controlNames.size > 0 ? { controlTasks: [...controlNames] } : {}),
  };
  // Prefixes of the scored tasks and of their swap partners (hyperllama-swap, prefix-tuning-hyper-other).
  const wantsPartners = wantsSwap || ptInits.includes('hyper-other');
  const neededNames = new Set(
    mine.flatMap((p) => [p.task.name, ...(wantsPartners ? [partners!.get(p.task.name)!] : [])]),
  );
  const prefixes = needsPrefixes
    ? taskPrefixes(
        plans.filter((p) => neededNames.has(p.task.name)),
        s,
      )
    : new Map<string, TaskPrefix>();
  const withPrefixes = { ...s, prefixes: new Map([...prefixes].map(([name, p]) => [name, p.prefix])) };
  const results: MethodResult[] = [];
  try {
    let tuned = false;
    for (const method of o.methods) {
      if (method.startsWith('prefix-tuning-')) {
        if (tuned) continue;
        tuned = true;
        const pt = { ...o.prefixTuning, inits: ptInits, partners };
        for (const r of await evaluatePrefixTuning(mine, s, pt, onProgress, prefixes)) {
          results.push({
            ...r,
            configuration: {
              ...shared,
              ...r.configuration,
              ...poolConfiguration(plans),
              ...(r.method === 'prefix-tuning-shared' ? { sharedPrefix: 'given' } : {}),
            },
            scores: mark(r.scores),
            curve: r.curve!.map((c) => ({ ...c, scores: mark(c.scores) })),
          });
        }
        continue;
      }
      const base = method as BaseMethod;
      const adapters = base === 'hyperllama' ? downstreamAdapters(s) : (s.adapters?.[base] ?? []);
      const configuration = {
        ...shared,
        ...(base === 'zero-shot' ? { shots: 0 } : {}),
        adapters,
        ...(base === 'hyperllama' ? { k: s.hyperllama?.k ?? null, storedPrefixes: s.prefixes !== undefined } : {}),
      };
      results.push({
        method,
        configuration,
        scores: mark(await evaluateMethod(base, mine, base === 'hyperllama' ? withPrefixes : s, onProgress)),
      });
      if (base === 'hyperllama' && wantsSwap) {
        const swapped = await evaluateMethod('hyperllama', mine, withPrefixes, onProgress, {
          swap: partners,
          contexts: plans,
        });
        results.push({
          method: 'hyperllama-swap',
          configuration: {
            ...configuration,
            control: "prefix swap: each task behind another task's HyperLlama prefix",
            partners: Object.fromEntries(partners!),
          },
          scores: mark(swapped),
        });
      }
    }
  } finally {
    disposeTaskPrefixes(prefixes);
  }
  return results;
}
