import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_TEMPLATE,
  answerRow,
  fewShotRow,
  hyperRow,
  type CollateOptions,
  type Example,
} from '@hyperllama/datasets';
import { defaultHyperLlamaDir } from '@hyperllama/default-model';
import { fitOptions, fitPlan, labelLogProbs, rankClassify, taskPrefix, type TaskPlan } from '@hyperllama/eval';
import type { Prefix } from '@hyperllama/gist-attention';
import {
  GIST_EMBEDDINGS_FILE,
  HyperLlama,
  baseModelHash,
  loadPretrained,
  prefixedHidden,
  resolveCheckpointDir,
} from '@hyperllama/hypernet';
import { continuationText, type LlamaModel } from '@hyperllama/llama-model';
import { HyperLlamaError, IGNORE_INDEX } from '@hyperllama/runtime';
import type { Tokenizer } from '@hyperllama/tokenizer';
import { Engine, type EngineOptions } from './engine.js';
import { PrefixStore, normalizeTask, prefixId, type PrefixInfo, type TaskSpec } from './store.js';

/** A request the model cannot serve as asked (HTTP 4xx): `field` names the request field. */
export class RequestError extends HyperLlamaError {
  constructor(
    code: string,
    message: string,
    readonly status: number,
    readonly field: string | null,
  ) {
    super(code, message, { field: field ?? undefined });
  }
}

export interface ServiceOptions extends EngineOptions {
  /** A HyperLlama checkpoint (default: the embedded default's, unless `model` is given). */
  checkpoint?: string;
  /** A plain base model directory (no compression; stored prefixes of this base still serve). */
  model?: string;
  /** Prefix store directory (default `<cwd>/prefix-store`). */
  store?: string;
  /** Bytes of prefixes kept in memory (default 256 MiB). */
  cacheBytes?: number;
  /** Longest hypernetwork input in tokens (default 1024). */
  maxHyperLength?: number;
}

/** The frozen model, its tokenizer, the hypernetwork (with a checkpoint), the prefix store and the batching engine. */
export interface Service {
  modelId: string;
  model: LlamaModel;
  tokenizer: Tokenizer;
  hyperllama?: HyperLlama;
  store: PrefixStore;
  engine: Engine;
  sources: { checkpoint: string | null; model: string };
  /** SHA-256 of the base weights and of the base plus the checkpoint's trained files. */
  baseHash: string;
  checkpointHash: string;
  maxHyperLength: number;
  created: number;
  dispose(): void;
}

/** SHA-256 over the base hash and the checkpoint's trained files (adapter, its config, gist embeddings). */
function hashCheckpoint(baseHash: string, dir: string | null): string {
  const h = createHash('sha256').update(baseHash);
  if (dir)
    for (const f of ['hyper/adapter_config.json', 'hyper/adapter_model.safetensors', GIST_EMBEDDINGS_FILE]) {
      const path = join(dir, f);
      h.update(`\n${f}\n`);
      if (existsSync(path)) h.update(readFileSync(path));
    }
  return h.digest('hex');
}

/** Load what a server serves. */
export function loadService(o: ServiceOptions = {}): Service {
  let checkpoint: string | null = null;
  let loaded;
  if (o.checkpoint || !o.model) {
    const dir = o.checkpoint ?? defaultHyperLlamaDir();
    checkpoint = resolveCheckpointDir(dir) ?? null;
    if (!checkpoint)
      throw new RequestError('MISSING_FILE', `--checkpoint ${dir}: no such directory`, 400, 'checkpoint');
    loaded = HyperLlama.fromPretrained(checkpoint, { model: o.model });
  } else {
    if (!existsSync(o.model))
      throw new RequestError('MISSING_FILE', `--model ${o.model}: no such file or directory`, 400, 'model');
    loaded = loadPretrained(o.model);
  }
  const { model, tokenizer } = loaded;
  const hyperllama = 'hyperllama' in loaded ? (loaded.hyperllama as HyperLlama) : undefined;
  const baseHash = baseModelHash(model);
  const checkpointHash = hashCheckpoint(baseHash, checkpoint);
  const store = new PrefixStore({
    dir: resolve(o.store ?? 'prefix-store'),
    config: model.config,
    baseHash,
    cacheBytes: o.cacheBytes,
  });
  const engine = new Engine(model, o);
  const modelId = checkpoint
    ? o.checkpoint
      ? basename(resolve(checkpoint))
      : 'hyperllama-default'
    : basename(resolve(o.model!));
  return {
    modelId,
    model,
    tokenizer,
    hyperllama,
    store,
    engine,
    sources: { checkpoint, model: loaded.sources.model },
    baseHash,
    checkpointHash,
    // The hyper input cannot be longer than the model's context.
    maxHyperLength: Math.min(o.maxHyperLength ?? 1024, model.config.maxPositionEmbeddings),
    created: Math.floor(Date.now() / 1000),
    dispose() {
      store.dispose();
      loaded.dispose();
    },
  };
}

const collate = (s: Service, extra: Partial<CollateOptions> = {}): CollateOptions => ({
  encoder: s.tokenizer,
  template: DEFAULT_TEMPLATE,
  maxLength: s.model.config.maxPositionEmbeddings,
  useDefinition: true,
  ...extra,
});

/** Prompt ids of a row: everything before its first labelled token. */
function promptIds(row: { ids: number[]; labels: number[] }): number[] {
  const first = row.labels.findIndex((l) => l !== IGNORE_INDEX);
  return first < 0 ? row.ids : row.ids.slice(0, first);
}

/** Compress a task into its prefix (or find it stored): the hyper pass over the definition and demonstrations. */
export function compressTask(s: Service, task: TaskSpec): { info: PrefixInfo; cached: boolean } {
  if (!s.hyperllama)
    throw new RequestError(
      'NO_HYPERNETWORK',
      'this server runs a plain base model (--model): start it with --checkpoint to compress tasks',
      400,
      null,
    );
  const n = normalizeTask(task);
  // The hyper input's length budget changes which demonstrations are read, so it is part of the address.
  const id = prefixId(`${s.checkpointHash}:${s.maxHyperLength}`, n);
  if (s.store.has(id)) {
    try {
      const held = s.store.acquire(id);
      held.release();
      return { info: held.info, cached: true };
    } catch {
      // Unreadable or another base's file under our id: compute it again, which replaces it.
    }
  }
  const hl = s.hyperllama;
  const examples: Example[] = n.examples.map((e) => ({ input: e.input, output: e.output }));
  const plan: TaskPlan = {
    task: {
      name: id,
      source: 'server',
      definition: n.definition,
      examples,
      instances: [examples[0]],
      metric: 'exact',
    },
    examples,
    instances: [examples[0]],
  };
  const settings = {
    model: s.model,
    tokenizer: s.tokenizer,
    maxHyperLength: s.maxHyperLength,
    maxLength: s.model.config.maxPositionEmbeddings,
  };
  // The demonstrations the hyper pass reads (fitted as evaluation fits them), and the tokens of definition and
  // demonstrations in its input.
  const fitted = fitPlan(plan, fitOptions(settings, hl.k));
  const row = hyperRow(
    { ...collate(s), gistIds: [...hl.gistIds], maxHyperLength: s.maxHyperLength },
    n.definition,
    fitted.examples,
  );
  const prefix = taskPrefix(hl, plan, settings);
  const read = row.ids.length - 1 - hl.k;
  return {
    info: s.store.put(prefix, {
      id,
      k: prefix.length,
      demonstrations: row.numExamples,
      promptTokensSaved: Math.max(0, read - prefix.length),
    }),
    cached: false,
  };
}

/** How a request sees its task: behind a stored prefix, with demonstrations in context (ICL), or neither. */
export interface Context {
  prefix?: { prefix: Prefix; info: PrefixInfo; release(): void };
  examples?: Example[];
  definition?: string;
}

/** Token ids of a completion prompt (BOS first) under its context, checked against the model's context. */
export function completionPrompt(s: Service, prompt: string, ctx: Context, maxTokens: number): number[] {
  let ids: number[];
  if (ctx.prefix) {
    // As `hyperllama-eval generate --prefix`: the prompt is the task input, in the training template.
    ids = s.tokenizer.encode(DEFAULT_TEMPLATE.prompt(prompt), { bos: true });
  } else if (ctx.examples) {
    // Full-attention ICL: definition and demonstrations in front, as evaluation's few-shot rows.
    // As many demonstrations as leave room for max_tokens.
    const room = Math.max(2, s.model.config.maxPositionEmbeddings - maxTokens);
    const row = fewShotRow(collate(s, { eos: false, maxLength: room }), ctx.definition, ctx.examples, prompt, '');
    ids = promptIds(row);
  } else {
    ids = s.tokenizer.encode(prompt, { bos: true });
  }
  const P = ctx.prefix?.prefix.length ?? 0;
  const offset = ctx.prefix?.prefix.positionOffsets[0] ?? P;
  const context = s.model.config.maxPositionEmbeddings;
  if (offset + ids.length > context)
    throw new RequestError(
      'context_length_exceeded',
      `the prompt takes ${offset + ids.length} positions (${ids.length} tokens${P ? ` after a prefix of ${P}` : ''}); the model's context is ${context}`,
      400,
      'prompt',
    );
  if (offset + ids.length + maxTokens > context)
    throw new RequestError(
      'context_length_exceeded',
      `max_tokens ${maxTokens}: the prompt takes ${offset + ids.length} of the model's ${context} positions, which leaves ${context - offset - ids.length}`,
      400,
      'max_tokens',
    );
  return ids;
}

/** The text tokens add after a prompt. */
export function decodeAfter(s: Service, prompt: number[], tokens: number[]): string {
  return continuationText(s.tokenizer, prompt, tokens);
}

/**
 * Rank classification over `options`: each option scored as the answer (mean log-probability of its tokens, EOS
 * excluded), as evaluation scores classification tasks.
 */
export async function classify(
  s: Service,
  input: string,
  options: string[],
  ctx: Context,
): Promise<{ index: number; scores: number[] }> {
  const o = collate(s, { eos: true, useDefinition: !ctx.prefix });
  const rows = options.map((option) =>
    ctx.examples
      ? fewShotRow(o, ctx.definition, ctx.examples, input, option)
      : answerRow(o, input, option, ctx.prefix ? undefined : ctx.definition),
  );
  const width = Math.max(...rows.map((r) => r.ids.length));
  const P = ctx.prefix?.prefix.positionOffsets[0] ?? 0;
  if (width + P > s.model.config.maxPositionEmbeddings)
    throw new RequestError(
      'context_length_exceeded',
      `the longest option row takes ${width + P} positions; the model's context is ${s.model.config.maxPositionEmbeddings}`,
      400,
      'input',
    );
  const fill = <T>(xs: T[], v: T): T[] => [...xs, ...Array<T>(width - xs.length).fill(v)];
  const batch = {
    inputIds: rows.map((r) => fill(r.ids, s.tokenizer.padId)),
    attentionMask: rows.map((r) =>
      fill(
        r.ids.map(() => 1),
        0,
      ),
    ),
    labels: rows.map((r) => fill(r.labels, IGNORE_INDEX)),
  };
  const hidden = ctx.prefix
    ? prefixedHidden(s.model, batch, ctx.prefix.prefix)
    : tf.tidy(
        () =>
          s.model.forward({
            inputIds: tf.tensor2d(batch.inputIds, undefined, 'int32'),
            attentionMask: tf.tensor2d(batch.attentionMask, undefined, 'int32'),
            returnHidden: true,
          }).hidden!,
      );
  let logProbs: number[][];
  try {
    logProbs = await labelLogProbs(s.model, hidden, batch.labels);
  } finally {
    hidden.dispose();
  }
  // Drop each row's EOS log-probability: options are scored on their own tokens.
  const eos = s.tokenizer.eosId;
  const perOption = logProbs.map((lp, r) => {
    const labelled = rows[r].labels.filter((l) => l !== IGNORE_INDEX);
    return labelled[labelled.length - 1] === eos ? lp.slice(0, -1) : lp;
  });
  return {
    index: rankClassify(perOption, 'mean'),
    scores: perOption.map((lp) => lp.reduce((a, b) => a + b, 0) / lp.length),
  };
}
