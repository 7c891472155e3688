import * as tf from '@tensorflow/tfjs';
import {
  disposeCache,
  emptyCache,
  sampleToken,
  type KVCache,
  type KVPrefix,
  type LlamaModel,
} from '@hyperllama/llama-model';
import { HyperLlamaError, Rng } from '@hyperllama/runtime';

/** A request the engine cannot take: the waiting queue is full (HTTP 429) or the engine is draining (HTTP 503). */
export class EngineBusyError extends HyperLlamaError {}

export interface SamplingParams {
  maxTokens: number;
  /** 0 = greedy (first maximum), as `generate`. */
  temperature: number;
  topP: number;
  /** Seed of this sequence's Rng; `stream` picks the fork (`row <stream>`), as row `stream` of `generate`'s batch. */
  seed: number;
  stream: number;
  /** Token ids that end the sequence (not part of the output). */
  stopIds: readonly number[];
}

/** One sequence to decode: its prompt ids (BOS included) behind an optional batch-1 prefix. */
export interface SequenceRequest {
  promptIds: number[];
  /** Batch-1 prefix; the caller keeps it alive until `done` settles. */
  prefix?: KVPrefix;
  params: SamplingParams;
  /** Called for each new token with its log-probability under the model (temperature 1); false stops the sequence. */
  onToken?(id: number, logprob: number): boolean | void;
  /** Set when the client went away: the sequence leaves the batch at the next step. */
  signal?: AbortSignal;
}

export interface SequenceResult {
  tokens: number[];
  logprobs: number[];
  finishReason: 'stop' | 'length' | 'aborted';
  /** Seconds from submission to the first token, and to the end. */
  firstTokenSeconds: number;
  seconds: number;
}

interface Running {
  req: SequenceRequest;
  rng: Rng;
  /** Keys/values of everything this sequence attended to (prefix, prompt, tokens so far) [1, nKv, S, hd] per layer. */
  cache: KVCache;
  /** The token to feed next and its position id. */
  next: number;
  position: number;
  tokens: number[];
  logprobs: number[];
  start: number;
  firstToken: number;
  resolve(r: SequenceResult): void;
  reject(e: unknown): void;
}

interface Waiting {
  req: SequenceRequest;
  start: number;
  resolve(r: SequenceResult): void;
  reject(e: unknown): void;
}

export interface EngineOptions {
  /** Sequences decoded together in one step (default 16). */
  maxBatch?: number;
  /** Sequences waiting for a slot; one more is refused with {@link EngineBusyError} (default 64). */
  maxQueue?: number;
}

export interface EngineStats {
  waiting: number;
  running: number;
  steps: number;
  generatedTokens: number;
  promptTokens: number;
  /** Largest batch decoded in one step so far. */
  maxBatchSeen: number;
}

/** log p(id) from a row of logits (log-softmax at temperature 1). */
function logProbOf(logits: Float32Array, id: number): number {
  let max = -Infinity;
  for (const x of logits) if (x > max) max = x;
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  return logits[id] - max - Math.log(sum);
}

/**
 * Continuous batching over one frozen model. Each sequence keeps its own KV cache (its prefix, prompt and tokens);
 * between decode steps finished sequences leave and waiting ones join (their prompt is prefilled alone, exactly as
 * `generate` prefills a batch of one), and one step decodes every running sequence together: the caches are
 * left-padded to the longest with masked zero columns, so each row computes what it computes alone. Sequences behind
 * different prefixes (and none) share a step.
 */
export class Engine {
  private readonly waiting: Waiting[] = [];
  private readonly running: Running[] = [];
  private loop: Promise<void> | null = null;
  private closed = false;
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly stats: EngineStats = {
    waiting: 0,
    running: 0,
    steps: 0,
    generatedTokens: 0,
    promptTokens: 0,
    maxBatchSeen: 0,
  };

  constructor(
    readonly model: LlamaModel,
    opts: EngineOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxQueue = opts.maxQueue ?? 64;
  }

  get queueDepth(): number {
    return this.waiting.length;
  }

  get active(): number {
    return this.running.length;
  }

  /** Whether `count` more sequences fit the queue now. */
  canAccept(count: number): boolean {
    return !this.closed && this.waiting.length + count <= this.maxQueue;
  }

  get draining(): boolean {
    return this.closed;
  }

  /** Queue a sequence; resolves when it ends. Throws {@link EngineBusyError} when the queue is full or draining. */
  submit(req: SequenceRequest): Promise<SequenceResult> {
    if (this.closed) throw new EngineBusyError('DRAINING', 'the server is shutting down', {});
    if (this.waiting.length >= this.maxQueue)
      throw new EngineBusyError('QUEUE_FULL', `the queue is full (${this.maxQueue} requests waiting)`, {
        expected: this.maxQueue,
      });
    const done = new Promise<SequenceResult>((resolve, reject) =>
      this.waiting.push({ req, start: performance.now(), resolve, reject }),
    );
    // Work starts on a later tick, so every request submitted in one tick is queued (and counted) first.
    this.loop ??= new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.run())
      .finally(() => (this.loop = null));
    return done;
  }

  /** Refuse new sequences and wait until every queued and running one has ended. */
  async drain(): Promise<void> {
    this.closed = true;
    while (this.loop) await this.loop;
  }

  private async run(): Promise<void> {
    while (this.waiting.length > 0 || this.running.length > 0) {
      // Join: prefill waiting sequences into free slots.
      while (this.running.length < this.maxBatch && this.waiting.length > 0) {
        const w = this.waiting.shift()!;
        try {
          await this.prefill(w);
        } catch (e) {
          w.reject(e);
        }
      }
      this.sync();
      if (this.running.length > 0) {
        try {
          await this.step();
        } catch (e) {
          for (const r of this.running.splice(0)) {
            disposeCache(r.cache);
            r.reject(e);
          }
        }
      }
      this.sync();
      // Let the HTTP side run (new requests, disconnects) between steps.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private sync(): void {
    this.stats.waiting = this.waiting.length;
    this.stats.running = this.running.length;
  }

  /** Run one sequence's prompt behind its prefix (as `generate` does for a batch of one) and take its first token. */
  private async prefill(w: Waiting): Promise<void> {
    const { req } = w;
    if (req.signal?.aborted) {
      w.resolve({ tokens: [], logprobs: [], finishReason: 'aborted', firstTokenSeconds: 0, seconds: 0 });
      return;
    }
    const L = req.promptIds.length;
    const P = req.prefix?.length ?? 0;
    const offset = req.prefix?.positionOffsets?.[0] ?? P;
    const out = tf.tidy(() => {
      const r = this.model.forward({
        inputIds: tf.tensor2d(req.promptIds, [1, L], 'int32'),
        positionIds: tf.tensor2d(
          req.promptIds.map((_, t) => offset + t),
          [1, L],
          'int32',
        ),
        attentionMask: tf.ones([1, P + L], 'int32'),
        cache: emptyCache(),
        prefix: req.prefix,
        lastLogitsOnly: true,
      });
      return { logits: r.logits!, keys: r.cache!.keys, values: r.cache!.values };
    });
    const cache: KVCache = { keys: out.keys, values: out.values, length: P + L };
    let logits: Float32Array;
    try {
      logits = (await out.logits.data()) as Float32Array;
    } catch (e) {
      disposeCache(cache);
      throw e;
    } finally {
      out.logits.dispose();
    }
    this.stats.promptTokens += L;
    const seq: Running = {
      req,
      rng: new Rng(req.params.seed).fork(`row ${req.params.stream}`),
      cache,
      next: 0,
      position: offset + L,
      tokens: [],
      logprobs: [],
      start: w.start,
      firstToken: 0,
      resolve: w.resolve,
      reject: w.reject,
    };
    if (req.params.maxTokens === 0) {
      this.finish(seq, 'length');
      return;
    }
    this.running.push(seq);
    this.accept(seq, logits);
  }

  /** Sample the next token of a sequence from its logits row; ends the sequence when it stops. */
  private accept(seq: Running, logits: Float32Array): void {
    const p = seq.req.params;
    const id = sampleToken(logits, { temperature: p.temperature, topP: p.topP }, seq.rng);
    if (seq.tokens.length === 0) seq.firstToken = performance.now();
    if (p.stopIds.includes(id)) return this.finish(seq, 'stop');
    const lp = logProbOf(logits, id);
    seq.tokens.push(id);
    seq.logprobs.push(lp);
    this.stats.generatedTokens++;
    const more = seq.req.onToken?.(id, lp);
    if (more === false) return this.finish(seq, 'stop');
    if (seq.tokens.length >= p.maxTokens) return this.finish(seq, 'length');
    seq.next = id;
  }

  private finish(seq: Running, reason: SequenceResult['finishReason']): void {
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    disposeCache(seq.cache);
    const end = performance.now();
    seq.resolve({
      tokens: seq.tokens,
      logprobs: seq.logprobs,
      finishReason: reason,
      firstTokenSeconds: ((seq.firstToken || end) - seq.start) / 1000,
      seconds: (end - seq.start) / 1000,
    });
  }

  /** One decode step of every running sequence together. */
  private async step(): Promise<void> {
    for (const seq of this.running.filter((r) => r.req.signal?.aborted)) this.finish(seq, 'aborted');
    const rows = [...this.running];
    if (rows.length === 0) return;
    const B = rows.length;
    const S = Math.max(...rows.map((r) => r.cache.length));
    const layers = this.model.config.numHiddenLayers;
    this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, B);
    // Past of each row left-padded to S with zero columns that the mask hides: [B, nKv, S, hd] per layer.
    const batchPast = (pick: (c: KVCache) => tf.Tensor4D[], l: number): tf.Tensor4D => {
      if (B === 1) return pick(rows[0].cache)[l];
      return tf.concat(
        rows.map((r) => {
          const t = pick(r.cache)[l];
          const pad = S - r.cache.length;
          if (pad === 0) return t;
          const [, h, , hd] = t.shape;
          return tf.concat([tf.zeros([1, h, pad, hd]), t], 2);
        }),
        0,
      ) as tf.Tensor4D;
    };
    const out = tf.tidy(() => {
      const cache: KVCache = {
        keys: Array.from({ length: layers }, (_, l) => batchPast((c) => c.keys, l)),
        values: Array.from({ length: layers }, (_, l) => batchPast((c) => c.values, l)),
        length: S,
      };
      const mask = rows.flatMap((r) => [
        ...Array<number>(S - r.cache.length).fill(0),
        ...Array<number>(r.cache.length + 1).fill(1),
      ]);
      const res = this.model.forward({
        inputIds: tf.tensor2d(
          rows.map((r) => r.next),
          [B, 1],
          'int32',
        ),
        positionIds: tf.tensor2d(
          rows.map((r) => r.position),
          [B, 1],
          'int32',
        ),
        attentionMask: tf.tensor2d(mask, [B, S + 1], 'int32'),
        cache,
        lastLogitsOnly: true,
      });
      // Each row's own past again (the padding columns cut off) [1, nKv, S_i + 1, hd].
      const unpad = (t: tf.Tensor4D, b: number): tf.Tensor4D => {
        if (B === 1) return t;
        const pad = S - rows[b].cache.length;
        const [, h, s, hd] = t.shape;
        return tf.slice(t, [b, 0, pad, 0], [1, h, s - pad, hd]);
      };
      return {
        logits: res.logits!,
        keys: rows.map((_, b) => res.cache!.keys.map((t) => unpad(t, b))),
        values: rows.map((_, b) => res.cache!.values.map((t) => unpad(t, b))),
      };
    });
    rows.forEach((r, b) => {
      disposeCache(r.cache);
      r.cache = { keys: out.keys[b], values: out.values[b], length: r.cache.length + 1 };
      r.position++;
    });
    let logits: Float32Array;
    try {
      logits = (await out.logits.data()) as Float32Array; // [B, 1, V]
    } finally {
      out.logits.dispose();
    }
    this.stats.steps++;
    const V = this.model.config.vocabSize;
    rows.forEach((r, b) => {
      if (this.running.includes(r)) this.accept(r, logits.subarray(b * V, (b + 1) * V));
    });
  }
}
