import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { HyperLlamaError } from '@hyperllama/runtime';
import { EngineBusyError, type SequenceResult } from './engine.js';
import {
  RequestError,
  classify,
  compressTask,
  completionPrompt,
  decodeAfter,
  type Context,
  type Service,
} from './service.js';
import { PrefixStoreError } from './store.js';

export interface AppOptions {
  /** Compared in constant time with `Authorization: Bearer <key>` on every route but /healthz. */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB); larger ones get 413. */
  bodyLimit?: number;
  /** fastify's logger (default off). */
  logger?: boolean;
}

/** OpenAI's error body. */
export interface ApiError {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const apiError = (message: string, type: string, param: string | null, code: string | null): ApiError => ({
  error: { message, type, param, code },
});

// ---- JSON schemas (fastify validates bodies with ajv; no coercion, unknown fields refused by name) ----

const example = {
  type: 'object',
  required: ['input', 'output'],
  additionalProperties: false,
  properties: { input: { type: 'string' }, output: { type: 'string' } },
} as const;

const taskFields = {
  prefix: { type: 'string', minLength: 1 },
  examples: { type: 'array', minItems: 1, maxItems: 256, items: example },
  definition: { type: 'string' },
} as const;

const completionSchema = {
  type: 'object',
  required: ['prompt'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    prompt: {
      anyOf: [{ type: 'string' }, { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string' } }],
    },
    max_tokens: { type: ['integer', 'null'], minimum: 0 },
    temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
    top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
    seed: { type: ['integer', 'null'] },
    n: { type: ['integer', 'null'], minimum: 1, maximum: 16 },
    stop: {
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', maxItems: 4, items: { type: 'string', minLength: 1 } },
        { type: 'null' },
      ],
    },
    stream: { type: ['boolean', 'null'] },
    stream_options: { type: ['object', 'null'] },
    logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 5 },
    echo: { enum: [false, null] },
    user: { type: 'string' },
    ignore_eos: { type: ['boolean', 'null'] },
    ...taskFields,
  },
} as const;

const prefixSchema = {
  type: 'object',
  required: ['examples'],
  additionalProperties: false,
  properties: { definition: { type: 'string' }, examples: taskFields.examples, model: { type: 'string' } },
} as const;

const classifySchema = {
  type: 'object',
  required: ['input', 'options'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    input: { type: 'string' },
    options: { type: 'array', minItems: 1, maxItems: 64, items: { type: 'string', minLength: 1 } },
    ...taskFields,
  },
} as const;

interface CompletionBody {
  model?: string;
  prompt: string | string[];
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  stream?: boolean | null;
  logprobs?: number | null;
  /** vLLM's extension: keep generating past EOS (until max_tokens or a stop string). */
  ignore_eos?: boolean | null;
  prefix?: string;
  examples?: Array<{ input: string; output: string }>;
  definition?: string;
}

interface ClassifyBody {
  model?: string;
  input: string;
  options: string[];
  prefix?: string;
  examples?: Array<{ input: string; output: string }>;
  definition?: string;
}

/** Prometheus counters and gauges. */
class Metrics {
  readonly requests = new Map<string, number>();
  tokensWindow: Array<[number, number]> = [];

  count(route: string, status: number): void {
    const key = `route="${route}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  /** Generated tokens per second over the last 10 s. */
  tokensPerSecond(total: number): number {
    const now = performance.now();
    this.tokensWindow.push([now, total]);
    while (this.tokensWindow.length > 1 && now - this.tokensWindow[0][0] > 10_000) this.tokensWindow.shift();
    const [t0, n0] = this.tokensWindow[0];
    return now - t0 > 0 ? ((total - n0) * 1000) / (now - t0) : 0;
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time key check: both sides hashed to 32 bytes, compared with `timingSafeEqual`. */
export function keyMatches(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

/** Map any error to an HTTP status and OpenAI's error body. */
function toApiError(e: unknown): { status: number; body: ApiError } {
  const fe = e as FastifyError & { validation?: Array<{ instancePath: string; params: Record<string, unknown> }> };
  if (fe && fe.validation) {
    const v = fe.validation[0];
    const path = v?.instancePath?.replace(/^\//, '').replace(/\//g, '.') ?? '';
    const missing = v?.params?.missingProperty as string | undefined;
    const extra = v?.params?.additionalProperty as string | undefined;
    const param = [path, missing ?? extra].filter(Boolean).join('.') || null;
    const what = extra ? `unknown field` : (fe.message ?? 'invalid request');
    return {
      status: 400,
      body: apiError(
        `${param ?? 'body'}: ${extra ? what : ((fe.validation[0] as { message?: string })?.message ?? what)}`,
        'invalid_request_error',
        param,
        'invalid_value',
      ),
    };
  }
  if (e instanceof RequestError)
    return { status: e.status, body: apiError(e.message, 'invalid_request_error', e.field, e.code) };
  if (e instanceof PrefixStoreError) {
    const status = e.code === 'PREFIX_NOT_FOUND' ? 404 : 409;
    const code = e.code === 'PREFIX_NOT_FOUND' ? 'prefix_not_found' : 'prefix_other_base';
    return { status, body: apiError(e.message, 'invalid_request_error', 'prefix', code) };
  }
  if (e instanceof EngineBusyError) {
    return e.code === 'QUEUE_FULL'
      ? { status: 429, body: apiError(e.message, 'rate_limit_error', null, 'queue_full') }
      : { status: 503, body: apiError(e.message, 'server_error', null, 'shutting_down') };
  }
  if (fe && fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return {
      status: 413,
      body: apiError('the request body is larger than the limit', 'invalid_request_error', null, 'body_too_large'),
    };
  if (fe && fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return {
      status: 415,
      body: apiError(fe.message, 'invalid_request_error', null, 'unsupported_media_type'),
    };
  if (fe && (fe.statusCode === 400 || fe instanceof SyntaxError))
    return {
      status: 400,
      body: apiError(`malformed JSON body: ${fe.message}`, 'invalid_request_error', null, 'invalid_json'),
    };
  if (e instanceof HyperLlamaError) {
    const field = typeof e.details?.field === 'string' ? e.details.field : null;
    return { status: 400, body: apiError(e.message, 'invalid_request_error', field, e.code) };
  }
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500)
    return { status: fe.statusCode, body: apiError(fe.message, 'invalid_request_error', null, fe.code ?? null) };
  return { status: 500, body: apiError(`internal error: ${(e as Error)?.message ?? e}`, 'server_error', null, null) };
}

/** The HTTP API over a loaded {@link Service}. */
export function buildApp(s: Service, o: AppOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.bodyLimit ?? 2 ** 20,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    return503OnClosing: true,
  });
  const metrics = new Metrics();
  const expectedKey = o.apiKey;

  app.setErrorHandler((e, _req, reply) => {
    const { status, body } = toApiError(e);
    if (status >= 500) app.log.error(e);
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send(apiError(`no route ${req.method} ${req.url}`, 'invalid_request_error', null, 'unknown_url'));
  });
  app.addHook('onRequest', async (req, reply) => {
    if (!expectedKey || req.url === '/healthz') return;
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!keyMatches(given, expectedKey))
      return reply
        .code(401)
        .send(apiError('invalid or missing API key', 'invalid_request_error', null, 'invalid_api_key'));
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.count(req.routeOptions.url ?? 'unknown', reply.statusCode);
  });

  const checkModel = (model: string | undefined) => {
    if (model !== undefined && model !== s.modelId)
      throw new RequestError(
        'model_not_found',
        `model "${model}" is not served here; this server serves "${s.modelId}"`,
        404,
        'model',
      );
  };

  /** The request's context: a stored prefix (acquired: release it), inline demonstrations, or none. */
  const contextOf = (b: {
    prefix?: string;
    examples?: Array<{ input: string; output: string }>;
    definition?: string;
  }): Context => {
    if (b.prefix !== undefined && b.examples !== undefined)
      throw new RequestError('invalid_value', 'give either prefix or examples, not both', 400, 'examples');
    if (b.prefix !== undefined) {
      if (b.definition !== undefined)
        throw new RequestError(
          'invalid_value',
          'definition goes with examples (a prefix already holds its task)',
          400,
          'definition',
        );
      return { prefix: s.store.acquire(b.prefix) };
    }
    if (b.examples !== undefined) return { examples: b.examples, definition: b.definition };
    if (b.definition !== undefined) return { examples: [], definition: b.definition };
    return {};
  };

  app.get('/healthz', async () => ({
    status: s.engine.draining ? 'draining' : 'ok',
    model: s.modelId,
    queue: s.engine.queueDepth,
    running: s.engine.active,
  }));

  app.get('/metrics', async (_req, reply) => {
    const st = s.engine.stats;
    const lines = [
      '# HELP hyperllama_requests_total HTTP requests by route and status.',
      '# TYPE hyperllama_requests_total counter',
      ...[...metrics.requests].map(([k, v]) => `hyperllama_requests_total{${k}} ${v}`),
      '# HELP hyperllama_queue_depth Sequences waiting for a decode slot.',
      '# TYPE hyperllama_queue_depth gauge',
      `hyperllama_queue_depth ${s.engine.queueDepth}`,
      '# HELP hyperllama_running_sequences Sequences in the decode batch.',
      '# TYPE hyperllama_running_sequences gauge',
      `hyperllama_running_sequences ${s.engine.active}`,
      '# HELP hyperllama_generated_tokens_total Tokens generated.',
      '# TYPE hyperllama_generated_tokens_total counter',
      `hyperllama_generated_tokens_total ${st.generatedTokens}`,
      '# HELP hyperllama_prompt_tokens_total Prompt tokens prefilled.',
      '# TYPE hyperllama_prompt_tokens_total counter',
      `hyperllama_prompt_tokens_total ${st.promptTokens}`,
      '# HELP hyperllama_tokens_per_second Generated tokens per second over the last 10 s.',
      '# TYPE hyperllama_tokens_per_second gauge',
      `hyperllama_tokens_per_second ${metrics.tokensPerSecond(st.generatedTokens).toFixed(3)}`,
      '# HELP hyperllama_decode_steps_total Batched decode steps.',
      '# TYPE hyperllama_decode_steps_total counter',
      `hyperllama_decode_steps_total ${st.steps}`,
      '# HELP hyperllama_prefix_cache_hits_total Prefix lookups served from memory.',
      '# TYPE hyperllama_prefix_cache_hits_total counter',
      `hyperllama_prefix_cache_hits_total ${s.store.counters.hits}`,
      '# HELP hyperllama_prefix_cache_misses_total Prefix lookups read from the store directory.',
      '# TYPE hyperllama_prefix_cache_misses_total counter',
      `hyperllama_prefix_cache_misses_total ${s.store.counters.misses}`,
      '# HELP hyperllama_prefix_cache_bytes Bytes of prefixes held in memory.',
      '# TYPE hyperllama_prefix_cache_bytes gauge',
      `hyperllama_prefix_cache_bytes ${s.store.bytesInMemory}`,
      '',
    ];
    return reply.type('text/plain; version=0.0.4').send(lines.join('\n'));
  });

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: s.modelId, object: 'model', created: s.created, owned_by: 'hyperllama' }],
  }));

  app.get<{ Params: { id: string } }>('/v1/models/:id', async (req) => {
    checkModel(req.params.id);
    return { id: s.modelId, object: 'model', created: s.created, owned_by: 'hyperllama' };
  });

  const prefixBody = (info: { id: string; k: number; bytes: number; promptTokensSaved: number }, extra = {}) => ({
    id: info.id,
    object: 'prefix',
    k: info.k,
    bytes: info.bytes,
    prompt_tokens_saved: info.promptTokensSaved,
    ...extra,
  });

  app.post<{ Body: { definition?: string; examples: Array<{ input: string; output: string }>; model?: string } }>(
    '/v1/prefixes',
    { schema: { body: prefixSchema } },
    async (req, reply) => {
      checkModel(req.body.model);
      const { info, cached } = compressTask(s, { definition: req.body.definition, examples: req.body.examples });
      return reply
        .code(cached ? 200 : 201)
        .send(prefixBody(info, { demonstrations: info.demonstrations, created: info.created }));
    },
  );

  app.get<{ Params: { id: string } }>('/v1/prefixes/:id', async (req) => {
    const held = s.store.acquire(req.params.id);
    held.release();
    return prefixBody(held.info, { demonstrations: held.info.demonstrations, created: held.info.created });
  });

  app.delete<{ Params: { id: string } }>('/v1/prefixes/:id', async (req) => {
    if (!s.store.delete(req.params.id))
      throw new PrefixStoreError('PREFIX_NOT_FOUND', `no prefix "${req.params.id}"`, { field: 'prefix' });
    return { id: req.params.id, object: 'prefix', deleted: true };
  });

  app.post<{ Body: ClassifyBody }>('/v1/classify', { schema: { body: classifySchema } }, async (req) => {
    checkModel(req.body.model);
    const ctx = contextOf(req.body);
    try {
      const r = await classify(s, req.body.input, req.body.options, ctx);
      return {
        object: 'classification',
        model: s.modelId,
        label: req.body.options[r.index],
        index: r.index,
        scores: req.body.options.map((option, i) => ({ option, mean_logprob: r.scores[i] })),
      };
    } finally {
      ctx.prefix?.release();
    }
  });

  app.post<{ Body: CompletionBody }>('/v1/completions', { schema: { body: completionSchema } }, async (req, reply) => {
    const b = req.body;
    checkModel(b.model);
    const maxTokens = b.max_tokens ?? 16;
    const n = b.n ?? 1;
    const prompts = typeof b.prompt === 'string' ? [b.prompt] : b.prompt;
    const stops = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
    const temperature = b.temperature ?? 1;
    const seed = b.seed ?? (temperature > 0 ? randomInt(2 ** 31) : 0);
    if (!s.engine.canAccept(prompts.length * n)) {
      if (s.engine.draining) throw new EngineBusyError('DRAINING', 'the server is shutting down', {});
      throw new EngineBusyError('QUEUE_FULL', `the queue is full (${s.engine.maxQueue} sequences waiting)`, {});
    }
    const ctx = contextOf(b);
    let released = false;
    const release = () => {
      if (!released) ctx.prefix?.release();
      released = true;
    };
    try {
      const promptIds = prompts.map((p) => completionPrompt(s, p, ctx, maxTokens));
      const id = `cmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      const abort = new AbortController();
      const stopAt = (text: string): number => {
        let cut = -1;
        for (const st of stops) {
          const i = text.indexOf(st);
          if (i >= 0 && (cut < 0 || i < cut)) cut = i;
        }
        return cut;
      };
      const holdBack = stops.length ? Math.max(...stops.map((x) => x.length)) - 1 : 0;
      interface Choice {
        index: number;
        prompt: number[];
        text: string;
        sent: number;
        tokens: number[];
        stopped: boolean;
      }
      const choices: Choice[] = promptIds.flatMap((prompt, p) =>
        Array.from({ length: n }, (_, j) => ({
          index: p * n + j,
          prompt,
          text: '',
          sent: 0,
          tokens: [],
          stopped: false,
        })),
      );
      const stream = b.stream === true;
      const chunk = (c: Choice, text: string, finish: string | null, logprobs: unknown = null) =>
        `data: ${JSON.stringify({
          id,
          object: 'text_completion',
          created,
          model: s.modelId,
          choices: [{ index: c.index, text, logprobs, finish_reason: finish }],
        })}\n\n`;
      if (stream) {
        reply.hijack();
        reply.raw.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
        });
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) abort.abort();
        });
      }
      const logprobsOf = (c: Choice, from: number, lps: number[]) => {
        if (b.logprobs == null) return null;
        const tokens = c.tokens.slice(from).map((t) => s.tokenizer.decode([t]));
        return { tokens, token_logprobs: lps.slice(from), top_logprobs: null, text_offset: null };
      };
      const running = Promise.all(
        choices.map((c) => {
          const lps: number[] = [];
          let streamedTokens = 0;
          return s.engine
            .submit({
              promptIds: c.prompt,
              prefix: ctx.prefix?.prefix,
              params: {
                maxTokens,
                temperature,
                topP: b.top_p ?? 1,
                seed,
                stream: c.index % n,
                stopIds: b.ignore_eos ? [] : [s.tokenizer.eosId],
              },
              signal: abort.signal,
              onToken: (tokenId, lp) => {
                c.tokens.push(tokenId);
                lps.push(lp);
                c.text = decodeAfter(s, c.prompt, c.tokens);
                const cut = stopAt(c.text);
                if (cut >= 0) {
                  c.text = c.text.slice(0, cut);
                  c.stopped = true;
                }
                if (stream) {
                  const safe = c.stopped ? c.text.length : Math.max(c.sent, c.text.length - holdBack);
                  if (safe > c.sent) {
                    reply.raw.write(chunk(c, c.text.slice(c.sent, safe), null, logprobsOf(c, streamedTokens, lps)));
                    c.sent = safe;
                    streamedTokens = c.tokens.length;
                  }
                }
                return !c.stopped;
              },
            })
            .then((r: SequenceResult) => {
              if (stream && !abort.signal.aborted) {
                const finish = c.stopped || r.finishReason === 'stop' ? 'stop' : 'length';
                reply.raw.write(chunk(c, c.text.slice(c.sent), finish, logprobsOf(c, streamedTokens, lps)));
                c.sent = c.text.length;
              }
              return { r, lps };
            });
        }),
      );
      let results: Awaited<typeof running>;
      try {
        results = await running;
      } catch (e) {
        if (!stream) throw e;
        // Headers are sent: the error goes into the stream, which then ends.
        abort.abort();
        const { body } = toApiError(e);
        if (!reply.raw.writableEnded) reply.raw.end(`data: ${JSON.stringify(body)}\n\ndata: [DONE]\n\n`);
        return reply;
      }
      const usage = {
        prompt_tokens: promptIds.reduce((a, p) => a + p.length, 0),
        completion_tokens: results.reduce((a, x) => a + x.r.tokens.length, 0),
        total_tokens: 0,
      };
      usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
      if (stream) {
        if (!abort.signal.aborted) {
          if ((b as { stream_options?: { include_usage?: boolean } }).stream_options?.include_usage)
            reply.raw.write(
              `data: ${JSON.stringify({ id, object: 'text_completion', created, model: s.modelId, choices: [], usage })}\n\n`,
            );
          reply.raw.write('data: [DONE]\n\n');
        }
        reply.raw.end();
        return reply;
      }
      return {
        id,
        object: 'text_completion',
        created,
        model: s.modelId,
        choices: choices.map((c, i) => ({
          index: c.index,
          text: c.text,
          logprobs: logprobsOf(c, 0, results[i].lps),
          finish_reason: c.stopped || results[i].r.finishReason === 'stop' ? 'stop' : 'length',
        })),
        usage,
      };
    } finally {
      release();
    }
  });

  return app;
}
