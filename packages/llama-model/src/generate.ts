import * as tf from '@tensorflow/tfjs';
import { Rng, supportsSyncRead } from '@hyperllama/runtime';
import { ModelError } from './errors.js';
import { disposeCache, emptyCache, type KVCache, type KVPrefix, type LlamaModel } from './model.js';

/** What generation needs from a tokenizer (structurally; `@hyperllama/tokenizer` provides it). */
export interface TextCodec {
  encode(text: string, opts?: { bos?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
}

/**
 * The text that `continuation` adds after `prompt`: decoded in context, so a leading space the tokenizer's decoder
 * would strip from a standalone piece (SentencePiece's `▁`) is kept. Special tokens are left out.
 */
export function continuationText(tokenizer: TextCodec, prompt: number[], continuation: number[]): string {
  const head = tokenizer.decode(prompt, { skipSpecial: true });
  const full = tokenizer.decode([...prompt, ...continuation], { skipSpecial: true });
  return full.startsWith(head) ? full.slice(head.length) : tokenizer.decode(continuation, { skipSpecial: true });
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 (default) = greedy; otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or absent = all). */
  topP?: number;
  /** Seed of the sampling Rng (default 0). Row r samples from its own stream (seed, r): other rows do not change it. */
  seed?: number;
  /** Token ids that end a row (not included in its output). Default: the config's eos ids (`eosTokenIds`, else `eosTokenId`). */
  stopIds?: number[];
  /** Soft prefix every row attends to (batch 1 or B). */
  prefix?: KVPrefix;
  /** Position of the first prompt token (default: the prefix's first `positionOffsets` entry, else its length, or 0). */
  positionOffset?: number;
  /** Needed for string prompts and to return text. */
  tokenizer?: TextCodec;
  /** Prepend BOS when encoding string prompts (default true). */
  addBos?: boolean;
  /** Id fed for left padding and after a row stopped (default config.padTokenId ?? 0; never attended to). */
  padId?: number;
}

export interface GenerateResult {
  /** New tokens per row (the stop token excluded). */
  tokens: number[][];
  /** Why each row ended: a stop id, or maxNewTokens. */
  finishReasons: Array<'stop' | 'length'>;
  /** The text the new tokens add to each prompt (see {@link continuationText}), when a tokenizer was given. */
  texts?: string[];
  stats: {
    promptTokens: number;
    newTokens: number;
    prefillSeconds: number;
    decodeSeconds: number;
    tokensPerSecond: number;
  };
}

/** Pick one token from a row of logits: greedy (first maximum) at temperature 0, else top-k / top-p sampling. */
export function sampleToken(
  logits: Float32Array,
  opts: { temperature?: number; topK?: number; topP?: number },
  rng: Rng,
): number {
  const temperature = opts.temperature ?? 0;
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  const k = opts.topK && opts.topK > 0 ? Math.min(opts.topK, order.length) : order.length;
  const kept = order.slice(0, k);
  const max = logits[kept[0]];
  const weights = kept.map((i) => Math.exp((logits[i] - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let n = kept.length;
  if (opts.topP !== undefined && opts.topP < 1) {
    let cumulative = 0;
    n = 0;
    while (n < kept.length && cumulative < opts.topP * total) cumulative += weights[n++];
    n = Math.max(n, 1);
  }
  return kept[rng.categorical(weights.slice(0, n))];
}

const filled = (n: number, value: number): number[] => Array.from({ length: n }, () => value);

function checkOptions(o: GenerateOptions): void {
  const bad = (field: string, expected: string, actual: unknown): never => {
    throw new ModelError('BAD_OPTION', `generate: ${field}: expected ${expected}, got ${JSON.stringify(actual)}`, {
      field,
      expected,
      actual,
    });
  };
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0)
    bad('maxNewTokens', 'a non-negative integer', o.maxNewTokens);
  if (o.temperature !== undefined && !(o.temperature >= 0)) bad('temperature', 'a number ≥ 0', o.temperature);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad('topK', 'an integer ≥ 0', o.topK);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad('topP', 'a number in (0, 1]', o.topP);
}

/**
 * Continue each prompt (token ids, or strings with `tokenizer`) with a KV cache. Prompts of different lengths are
 * left-padded into one batch; positions count real tokens only, so every row matches an unpadded run. Logits are
 * read asynchronously, so it runs on backends that cannot read synchronously (webgpu).
 */
export async function generate(
  model: LlamaModel,
  prompts: number[][] | string[],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  checkOptions(opts);
  const c = model.config;
  const ids = prompts.map((p, row) => {
    if (typeof p !== 'string') return p;
    if (!opts.tokenizer)
      throw new ModelError('NO_TOKENIZER', `generate: prompt ${row} is text but no tokenizer was given`, {
        field: 'tokenizer',
      });
    return opts.tokenizer.encode(p, { bos: opts.addBos ?? true });
  });
  if (ids.length === 0 || ids.some((p) => p.length === 0)) {
    throw new ModelError('BAD_PROMPT', 'generate: give at least one prompt, each with at least one token', {
      field: 'prompts',
    });
  }
  const B = ids.length;
  const L = Math.max(...ids.map((p) => p.length));
  const padId = opts.padId ?? c.padTokenId ?? 0;
  const stopIds = new Set(opts.stopIds ?? c.eosTokenIds ?? [c.eosTokenId]);
  const P = opts.prefix?.length ?? 0;
  const offset = opts.positionOffset ?? opts.prefix?.positionOffsets?.[0] ?? P;

  // Left-padded prompt batch: ids, 1/0 mask over [prefix, prompt], positions counting real tokens from `offset`.
  const flatIds: number[] = [];
  const flatPositions: number[] = [];
  const maskRows: number[][] = [];
  for (const p of ids) {
    const pad = L - p.length;
    for (let t = 0; t < L; t++) {
      flatIds.push(t < pad ? padId : p[t - pad]);
      flatPositions.push(offset + Math.max(0, t - pad));
    }
    maskRows.push([...filled(P, 1), ...filled(pad, 0), ...filled(p.length, 1)]);
  }

  const start = performance.now();
  const decode = supportsSyncRead() ? decodeOnHost : decodeOnDevice;
  const { tokens, finishReasons, prefillEnd } = await decode(model, {
    ids,
    B,
    L,
    flatIds,
    flatPositions,
    maskRows,
    offset,
    padId,
    stopIds,
    rngs: ids.map((_, row) => new Rng(opts.seed ?? 0).fork(`row ${row}`)),
    opts,
  });
  const end = performance.now();
  const newTokens = tokens.reduce((n, t) => n + t.length, 0);
  const decodeSeconds = (end - prefillEnd) / 1000;
  return {
    tokens,
    finishReasons,
    texts: opts.tokenizer ? tokens.map((t, row) => continuationText(opts.tokenizer!, ids[row], t)) : undefined,
    stats: {
      promptTokens: ids.reduce((n, p) => n + p.length, 0),
      newTokens,
      prefillSeconds: (prefillEnd - start) / 1000,
      decodeSeconds,
      tokensPerSecond: newTokens / Math.max((end - start) / 1000, 1e-9),
    },
  };
}

/** The left-padded prompt batch and the options `generate` decodes it with. */
interface DecodeInput {
  ids: number[][];
  B: number;
  L: number;
  flatIds: number[];
  flatPositions: number[];
  /** 1/0 mask over [prefix, prompt] per row; decoding appends one column per step. */
  maskRows: number[][];
  offset: number;
  padId: number;
  stopIds: Set<number>;
  /** Each row's sampling stream (seed, row): the host and the device draw one number per row and step from it. */
  rngs: Rng[];
  opts: GenerateOptions;
}

interface Decoded {
  tokens: number[][];
  finishReasons: Array<'stop' | 'length'>;
  /** performance.now() when the prompt's pass ended. */
  prefillEnd: number;
}

/**
 * The forward passes of a decoding loop: the prompt batch first (behind the prefix), then one token per row at the
 * next position, against the growing KV cache. `next(fed)` takes over the fed tokens [B, 1] (none on the first call)
 * and returns the last position's logits [B, 1, V] (the caller disposes them); `dispose()` frees the cache.
 */
function forwardSteps(model: LlamaModel, d: DecodeInput) {
  const { ids, B, L, maskRows, offset, opts } = d;
  let cache: KVCache = emptyCache();
  let step = 0;
  return {
    next(fed?: tf.Tensor2D): tf.Tensor {
      const first = step === 0;
      if (!first) for (const row of maskRows) row.push(1);
      const inputIds = first ? tf.tensor2d(d.flatIds, [B, L], 'int32') : fed!;
      const positionIds = first
        ? tf.tensor2d(d.flatPositions, [B, L], 'int32')
        : tf.tensor2d(
            ids.map((p) => offset + p.length + step - 1),
            [B, 1],
            'int32',
          );
      const attentionMask = tf.tensor2d(maskRows.flat(), [B, maskRows[0].length], 'int32');
      try {
        const out = model.forward({
          inputIds,
          positionIds,
          attentionMask,
          cache,
          prefix: first ? opts.prefix : undefined,
          lastLogitsOnly: true,
        });
        disposeCache(cache);
        cache = out.cache!;
        step++;
        return out.logits!;
      } finally {
        tf.dispose([inputIds, positionIds, attentionMask]);
      }
    },
    dispose: () => disposeCache(cache),
  };
}

/** Reads each step's logits to the host and samples there (any temperature, top-k, top-p). */
async function decodeOnHost(model: LlamaModel, d: DecodeInput): Promise<Decoded> {
  const { ids, B, padId, stopIds, rngs, opts } = d;
  const V = model.config.vocabSize;
  const tokens: number[][] = ids.map(() => []);
  const finishReasons: Array<'stop' | 'length'> = ids.map(() => 'length');
  const active = ids.map(() => opts.maxNewTokens > 0);
  let prefillEnd = performance.now();
  const steps = forwardSteps(model, d);
  let fed: tf.Tensor2D | undefined;
  try {
    for (let step = 0; active.some(Boolean); step++) {
      const out = steps.next(fed);
      fed = undefined;
      const logits = (await out.data()) as Float32Array; // [B, 1, V]
      out.dispose();
      if (step === 0) prefillEnd = performance.now();

      const next: number[] = [];
      for (let row = 0; row < B; row++) {
        let id = padId;
        if (active[row]) {
          id = sampleToken(logits.subarray(row * V, (row + 1) * V), opts, rngs[row]);
          if (stopIds.has(id)) {
            active[row] = false;
            finishReasons[row] = 'stop';
            id = padId;
          } else {
            tokens[row].push(id);
            if (tokens[row].length >= opts.maxNewTokens) active[row] = false;
          }
        }
        next.push(id);
      }
      fed = tf.tensor2d(next, [B, 1], 'int32');
    }
  } finally {
    fed?.dispose();
    steps.dispose();
  }
  return { tokens, finishReasons, prefillEnd };
}

/** Decoding on a backend without synchronous reads reads the chosen tokens this often (in steps). */
const DEVICE_READ_EVERY = 8;

/**
 * The next token of each row, on the device: the largest logit at temperature 0; otherwise {@link sampleToken}'s
 * top-k / top-p draw, with the row's uniform number `u` [B, 1] (from the same Rng streams as on the host) picking
 * within the kept weights. logits [B, V] → [B] int32.
 */
function chooseOnDevice(logits: tf.Tensor2D, opts: GenerateOptions, u: tf.Tensor2D | undefined): tf.Tensor1D {
  const temperature = opts.temperature ?? 0;
  if (temperature <= 0 || !u) return tf.argMax(logits, -1).toInt() as tf.Tensor1D;
  const V = logits.shape[1];
  const k = opts.topK && opts.topK > 0 ? Math.min(opts.topK, V) : V;
  const { values, indices } = tf.topk(logits, k); // [B, k], descending
  const w = tf.exp(tf.div(tf.sub(values, tf.slice(values, [0, 0], [-1, 1])), temperature));
  const total = tf.sum(w, 1, true); // [B, 1]
  let kept = w;
  if (opts.topP !== undefined && opts.topP < 1) {
    // The smallest prefix whose weight reaches topP of the total: entries whose preceding weight is still below it.
    const before = tf.sub(tf.cumsum(w, 1), w);
    kept = tf.mul(w, tf.cast(tf.less(before, tf.mul(total, opts.topP)), 'float32'));
  }
  const cumulative = tf.cumsum(kept, 1);
  const r = tf.mul(u, tf.sum(kept, 1, true)); // [B, 1]
  // The first entry whose cumulative weight passes r: the count of those that do not (the sum is non-decreasing).
  // Not argMax over the mask: webgpu's argMax does not return the first of equal maxima.
  const pick = tf.minimum(tf.sum(tf.cast(tf.lessEqual(cumulative, r), 'int32'), 1), tf.scalar(k - 1, 'int32'));
  return tf.sum(tf.mul(indices, tf.oneHot(pick, k, 1, 0, 'int32')), 1) as tf.Tensor1D;
}

/**
 * Decoding that keeps the tokens on the device (webgpu): each step's choice feeds the next step directly, and the
 * host reads the tokens and the stopped rows every {@link DEVICE_READ_EVERY} steps instead of every step's logits
 * (up to that many steps past the last stop are computed and dropped). At temperature 0 the same tokens as
 * {@link decodeOnHost} (but for exact ties between the largest logits, which webgpu's argMax may break
 * otherwise); sampling draws its numbers from the same seeded streams and keeps the same top-k / top-p sets, so it differs only where float rounding moves a boundary.
 */
async function decodeOnDevice(model: LlamaModel, d: DecodeInput): Promise<Decoded> {
  const { ids, B, padId, stopIds, rngs, opts } = d;
  const V = model.config.vocabSize;
  let prefillEnd = performance.now();
  const steps = forwardSteps(model, d);
  let fed: tf.Tensor2D | undefined;
  const stops = tf.tensor1d([...stopIds], 'int32');
  let done: tf.Tensor = tf.zeros([B], 'bool');
  const emitted: tf.Tensor[] = []; // per step [B] int32: the chosen id, or -1 once the row had stopped before
  const sampling = (opts.temperature ?? 0) > 0;
  try {
    for (let step = 0; step < opts.maxNewTokens; step++) {
      const logits = steps.next(fed);
      fed = undefined;
      // One number per row per step, active or not: a row's stream then advances as on the host while it runs.
      const u = sampling
        ? tf.tensor2d(
            rngs.map((rng) => rng.next()),
            [B, 1],
          )
        : undefined;
      const [chosen, toFeed, nowDone] = tf.tidy((): [tf.Tensor, tf.Tensor2D, tf.Tensor] => {
        const next = chooseOnDevice(tf.reshape(logits, [B, V]), opts, u); // [B]
        const stopped = stopIds.size
          ? tf.any(tf.equal(tf.expandDims(next, 1), tf.expandDims(stops, 0)), 1)
          : tf.zeros([B], 'bool');
        const after = tf.logicalOr(done, stopped);
        return [
          tf.where(done, tf.fill([B], -1, 'int32'), next),
          tf.reshape(tf.where(after, tf.fill([B], padId, 'int32'), next), [B, 1]) as tf.Tensor2D,
          after,
        ];
      });
      logits.dispose();
      u?.dispose();
      done.dispose();
      done = nowDone;
      emitted.push(chosen);
      fed = toFeed;
      if (step === 0) {
        await chosen.data(); // the prompt's pass, timed
        prefillEnd = performance.now();
      }
      if ((step + 1) % DEVICE_READ_EVERY === 0 && (await done.data()).every(Boolean)) break;
    }
    const n = emitted.length;
    let all: Int32Array = new Int32Array(0);
    if (n > 0) {
      const stacked = tf.stack(emitted, 1); // [B, n]
      all = (await stacked.data()) as Int32Array;
      stacked.dispose();
    }
    const tokens: number[][] = ids.map(() => []);
    const finishReasons: Array<'stop' | 'length'> = ids.map(() => 'length');
    for (let row = 0; row < B; row++) {
      for (let t = 0; t < n; t++) {
        const id = all[row * n + t];
        if (id < 0) break;
        if (stopIds.has(id)) {
          finishReasons[row] = 'stop';
          break;
        }
        tokens[row].push(id);
      }
    }
    return { tokens, finishReasons, prefillEnd };
  } finally {
    tf.dispose([stops, done, ...emitted]);
    fed?.dispose();
    steps.dispose();
  }
}
