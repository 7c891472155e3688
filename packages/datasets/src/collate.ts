import { IGNORE_INDEX } from '@hyperllama/runtime';
import { fail } from './errors.js';
import { optionsOf, type Example, type Task } from './task.js';

/**
 * The part of a tokenizer collation needs. `@hyperllama/tokenizer`'s tokenizers satisfy it; tests use tiny fakes.
 * `encode` is always called with `{ bos: false, eos: false }`: the collators add BOS and EOS themselves.
 */
export interface TokenEncoder {
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  bosId: number;
  eosId: number;
  padId: number;
}

/**
 * How an example becomes text. A demonstration is `prompt(input) + answer(output) + separator`; a target is
 * `prompt(input)` followed by `answer(output)`, with the loss on the answer's tokens only.
 */
export interface PromptTemplate {
  /** Text put before the examples when a task has a definition. */
  definition(text: string): string;
  prompt(input: string): string;
  answer(output: string): string;
  separator: string;
}

export const DEFAULT_TEMPLATE: PromptTemplate = {
  definition: (text) => `${text}\n\n`,
  prompt: (input) => `Input: ${input}\nOutput:`,
  answer: (output) => ` ${output}`,
  separator: '\n\n',
};

export type PadSide = 'left' | 'right';

export interface CollateOptions {
  encoder: TokenEncoder;
  template?: PromptTemplate;
  /** Maximum length of a downstream / LM row, BOS and EOS included (default: no limit). */
  maxLength?: number;
  /** Padding side of downstream / LM rows (default `right`). */
  padSide?: PadSide;
  /** Put the task definition first when the task has one (default true). */
  useDefinition?: boolean;
  /** End each answer with EOS, which is also a label (default true). */
  eos?: boolean;
}

export interface HyperCollateOptions extends CollateOptions {
  /** The k gist token ids appended to every hyper input. */
  gistIds: readonly number[];
  /** Maximum hyper input length, BOS and gists included (default: no limit). Examples are packed greedily. */
  maxHyperLength?: number;
  /** Padding side of hyper rows (default `left`, which puts every row's gists in the same columns). */
  hyperPadSide?: PadSide;
}

/** Rectangular rows for a causal LM: `labels` equal `inputIds` where the loss applies, else {@link IGNORE_INDEX}. */
export interface LmBatch {
  inputIds: number[][]; // [B, T]
  attentionMask: number[][]; // [B, T] 1 = token, 0 = padding
  labels: number[][]; // [B, T] unshifted (Hugging Face convention: position t is predicted from tokens < t)
  lengths: number[]; // [B] unpadded lengths
  /** Number of demonstrations packed into each row (few-shot rows only). */
  numExamples?: number[];
}

/** The hypernetwork's input: `[BOS] definition? examples… <gist ids>` per row. */
export interface HyperInputBatch {
  inputIds: number[][]; // [B, H]
  attentionMask: number[][]; // [B, H]
  gistPositions: number[][]; // [B, k] column of each gist token in the padded row
  lengths: number[]; // [B]
  numExamples: number[]; // [B] demonstrations that fit
}

export interface HyperBatch {
  hyper: HyperInputBatch;
  downstream: LmBatch;
}

/** What the collators read from an episode. */
export interface EpisodeLike {
  task: Pick<Task, 'definition'>;
  examples: readonly Example[];
  target: Example;
}

/** One unpadded row. */
interface Row {
  ids: number[];
  labels: number[];
}

const settings = (o: CollateOptions) => ({
  template: o.template ?? DEFAULT_TEMPLATE,
  maxLength: o.maxLength ?? Number.POSITIVE_INFINITY,
  useDefinition: o.useDefinition ?? true,
  eos: o.eos ?? true,
});

const encode = (o: CollateOptions, text: string): number[] => o.encoder.encode(text, { bos: false, eos: false });

function header(o: CollateOptions, definition: string | undefined): string {
  const { template, useDefinition } = settings(o);
  return useDefinition && definition ? template.definition(definition) : '';
}

function demonstration(template: PromptTemplate, e: Example): string {
  return template.prompt(e.input) + template.answer(e.output) + template.separator;
}

/**
 * Encodes `prompt + answer` and `prompt` and puts the boundary at their longest common prefix, so the row holds
 * exactly the tokenisation of the whole text (the same as inside a demonstration) and no label falls on a prompt
 * token. Returns the row `[BOS] prompt answer [EOS]` with labels on `answer [EOS]` only, cut to `maxLength` by
 * dropping prompt tokens from the left (then answer tokens from the right).
 */
function targetRow(o: CollateOptions, promptText: string, answerText: string): Row {
  const { maxLength, eos } = settings(o);
  const full = encode(o, promptText + answerText);
  const prompt = encode(o, promptText);
  let boundary = 0;
  while (boundary < prompt.length && boundary < full.length && prompt[boundary] === full[boundary]) boundary++;
  let promptIds = full.slice(0, boundary);
  let answerIds = eos ? [...full.slice(boundary), o.encoder.eosId] : full.slice(boundary);
  const room = maxLength - 1; // after BOS
  if (room < 1) fail('BAD_OPTION', { file: 'collate', field: 'maxLength' }, `expected at least 2, got ${maxLength}`);
  if (answerIds.length >= room) {
    promptIds = [];
    answerIds = answerIds.slice(0, room);
  } else if (promptIds.length + answerIds.length > room) {
    promptIds = promptIds.slice(promptIds.length - (room - answerIds.length));
  }
  return {
    ids: [o.encoder.bosId, ...promptIds, ...answerIds],
    labels: [IGNORE_INDEX, ...promptIds.map(() => IGNORE_INDEX), ...answerIds],
  };
}

/**
 * The largest j such that `measure(textOf(j))` fits `budget`, for j = 0..n, found from per-piece estimates and
 * corrected by encoding the actual text (tokenisation at piece boundaries may differ). Returns j and its ids.
 */
function packGreedy(
  o: CollateOptions,
  pieces: string[],
  textOf: (j: number) => string,
  budget: number,
): { count: number; ids: number[] } {
  const fits = (ids: number[]) => ids.length <= budget;
  const base = encode(o, textOf(0)).length;
  let j = 0;
  for (let used = base; j < pieces.length; j++) {
    used += encode(o, pieces[j]).length;
    if (used > budget) break;
  }
  let ids = encode(o, textOf(j));
  while (j > 0 && !fits(ids)) ids = encode(o, textOf(--j));
  while (j < pieces.length) {
    const next = encode(o, textOf(j + 1));
    if (!fits(next)) break;
    ids = next;
    j++;
  }
  return { count: j, ids };
}

/** `[BOS] definition? examples… <gists>` with as many examples as fit `maxHyperLength`, in their given order. */
export function hyperRow(
  o: HyperCollateOptions,
  definition: string | undefined,
  examples: readonly Example[],
): Row & { numExamples: number } {
  const { template } = settings(o);
  const head = header(o, definition);
  const pieces = examples.map((e) => demonstration(template, e));
  const budget = (o.maxHyperLength ?? Number.POSITIVE_INFINITY) - 1 - o.gistIds.length;
  if (budget < 0)
    fail(
      'BAD_OPTION',
      { file: 'collate', field: 'maxHyperLength' },
      `must leave room for BOS and ${o.gistIds.length} gists, got ${o.maxHyperLength}`,
    );
  const { count, ids } = packGreedy(o, pieces, (j) => head + pieces.slice(0, j).join(''), budget);
  const body = ids.slice(0, budget); // only a definition longer than the budget needs this cut
  const row = [o.encoder.bosId, ...body, ...o.gistIds];
  return { ids: row, labels: row.map(() => IGNORE_INDEX), numExamples: count };
}

/** `[BOS] prompt(input) answer(output) [EOS]`, loss on the answer and EOS (the downstream row of an episode). */
export function answerRow(o: CollateOptions, input: string, output: string, definition?: string): Row {
  const { template } = settings(o);
  return targetRow(o, header(o, definition) + template.prompt(input), template.answer(output));
}

/** `[BOS] definition? demonstrations… prompt answer [EOS]` with as many demonstrations as fit `maxLength`. */
export function fewShotRow(
  o: CollateOptions,
  definition: string | undefined,
  examples: readonly Example[],
  input: string,
  output: string,
): Row & { numExamples: number } {
  const { template, maxLength, eos } = settings(o);
  const head = header(o, definition);
  const pieces = examples.map((e) => demonstration(template, e));
  const tail = template.prompt(input) + template.answer(output);
  const budget = maxLength - 1 - (eos ? 1 : 0);
  const { count } = packGreedy(o, pieces, (j) => head + pieces.slice(0, j).join('') + tail, budget);
  const row = targetRow(o, head + pieces.slice(0, count).join('') + template.prompt(input), template.answer(output));
  return { ...row, numExamples: count };
}

/** Pads rows to the longest one; padding gets `padId`, label {@link IGNORE_INDEX} and mask 0. */
function pad(rows: Row[], side: PadSide, padId: number): LmBatch & { offsets: number[] } {
  const width = Math.max(0, ...rows.map((r) => r.ids.length));
  const place = <T>(values: T[], fill: T): T[] => {
    const padding = Array<T>(width - values.length).fill(fill);
    return side === 'left' ? [...padding, ...values] : [...values, ...padding];
  };
  return {
    inputIds: rows.map((r) => place(r.ids, padId)),
    attentionMask: rows.map((r) =>
      place(
        r.ids.map(() => 1),
        0,
      ),
    ),
    labels: rows.map((r) => place(r.labels, IGNORE_INDEX)),
    lengths: rows.map((r) => r.ids.length),
    offsets: rows.map((r) => (side === 'left' ? width - r.ids.length : 0)),
  };
}

function lmBatch(o: CollateOptions, rows: Row[], numExamples?: number[]): LmBatch {
  const { offsets: _offsets, ...batch } = pad(rows, o.padSide ?? 'right', o.encoder.padId);
  return numExamples ? { ...batch, numExamples } : batch;
}

function hyperBatch(o: HyperCollateOptions, rows: Array<Row & { numExamples: number }>): HyperInputBatch {
  const { inputIds, attentionMask, lengths, offsets } = pad(rows, o.hyperPadSide ?? 'left', o.encoder.padId);
  const k = o.gistIds.length;
  return {
    inputIds,
    attentionMask,
    gistPositions: rows.map((r, b) => Array.from({ length: k }, (_, g) => offsets[b] + r.ids.length - k + g)),
    lengths,
    numExamples: rows.map((r) => r.numExamples),
  };
}

/** HyperLlama episodes: the hypernetwork reads the definition and examples, the downstream model only the target. */
export function collateHyperLlama(episodes: readonly EpisodeLike[], o: HyperCollateOptions): HyperBatch {
  return {
    hyper: hyperBatch(
      o,
      episodes.map((e) => hyperRow(o, e.task.definition, e.examples)),
    ),
    downstream: lmBatch(
      o,
      episodes.map((e) => answerRow(o, e.target.input, e.target.output)),
    ),
  };
}

/** Full-attention in-context learning: definition, demonstrations and target in one sequence. */
export function collateFewShot(episodes: readonly EpisodeLike[], o: CollateOptions): LmBatch {
  const rows = episodes.map((e) => fewShotRow(o, e.task.definition, e.examples, e.target.input, e.target.output));
  return lmBatch(
    o,
    rows,
    rows.map((r) => r.numExamples),
  );
}

/** Zero-shot: the definition (when used) and the target only. */
export function collateZeroShot(episodes: readonly Pick<EpisodeLike, 'task' | 'target'>[], o: CollateOptions): LmBatch {
  return lmBatch(
    o,
    episodes.map((e) => answerRow(o, e.target.input, e.target.output, e.task.definition)),
  );
}

/** Four consecutive token segments of one document (compression hyperpretraining). */
export interface SegmentSample {
  a: number[];
  b: number[];
  c: number[];
  d: number[];
}

/**
 * Compression hyperpretraining: the hypernetwork reads `[BOS] A D <gists>`, the downstream model reads
 * `[BOS] B C` with the loss on C only.
 */
export function collateCompression(
  samples: readonly SegmentSample[],
  o: Pick<HyperCollateOptions, 'encoder' | 'gistIds' | 'padSide' | 'hyperPadSide'>,
): HyperBatch {
  const { bosId } = o.encoder;
  const hyper = samples.map((s) => {
    const ids = [bosId, ...s.a, ...s.d, ...o.gistIds];
    return { ids, labels: ids.map(() => IGNORE_INDEX), numExamples: 0 };
  });
  const downstream = samples.map((s) => ({
    ids: [bosId, ...s.b, ...s.c],
    labels: [IGNORE_INDEX, ...s.b.map(() => IGNORE_INDEX), ...s.c],
  }));
  const opts = o as HyperCollateOptions;
  return { hyper: hyperBatch(opts, hyper), downstream: lmBatch(opts, downstream) };
}

/** How the rows of a rank-classification batch see the task. */
export type RankMode = 'hyper' | 'fewshot' | 'zeroshot';

export interface RankBatch {
  /** One row per (instance, option): the option is the answer and carries the labels. */
  rows: LmBatch;
  rowInstance: number[]; // [R] index into the instances given
  rowOption: number[]; // [R] index into that instance's options
  /** Per instance, the index of its (first) reference among its options, or -1. */
  gold: number[];
  /** Mode `hyper`: one hyper row holding the task's examples, to run once and share across the rows. */
  hyper?: HyperInputBatch;
}

/**
 * Rank classification: every option of every instance scored as the answer. In `hyper` mode the rows hold only the
 * target and `hyper` holds the task's examples; in `fewshot` mode each row starts with the examples; in
 * `zeroshot` mode with the definition only.
 */
export function collateRankClassification(
  task: Task,
  instances: readonly Example[],
  examples: readonly Example[],
  mode: RankMode,
  o: CollateOptions & Partial<Pick<HyperCollateOptions, 'gistIds' | 'maxHyperLength' | 'hyperPadSide'>>,
): RankBatch {
  const rows: Row[] = [];
  const rowInstance: number[] = [];
  const rowOption: number[] = [];
  const gold = instances.map((inst, i) => {
    const options = optionsOf(task, inst);
    if (!options || options.length === 0)
      fail(
        'NO_OPTIONS',
        { file: task.name, field: `instances[${i}].options` },
        'rank classification needs answer options',
      );
    options.forEach((option, j) => {
      rows.push(
        mode === 'fewshot'
          ? fewShotRow(o, task.definition, examples, inst.input, option)
          : answerRow(o, inst.input, option, mode === 'zeroshot' ? task.definition : undefined),
      );
      rowInstance.push(i);
      rowOption.push(j);
    });
    return options.findIndex((opt) => (inst.outputs ?? [inst.output]).includes(opt));
  });
  const batch: RankBatch = { rows: lmBatch(o, rows), rowInstance, rowOption, gold };
  if (mode === 'hyper') {
    if (!o.gistIds) fail('BAD_OPTION', { file: 'collate', field: 'gistIds' }, 'hyper mode needs gistIds');
    const ho = o as HyperCollateOptions;
    batch.hyper = hyperBatch(ho, [hyperRow(ho, task.definition, examples)]);
  }
  return batch;
}
