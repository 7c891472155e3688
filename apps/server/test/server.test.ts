import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TEMPLATE } from '@hyperllama/datasets';
import { defaultBaseDir } from '@hyperllama/default-model';
import type { Prefix } from '@hyperllama/gist-attention';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { buildApp } from '../src/app.js';
import { Engine } from '../src/engine.js';
import { serve, type RunningServer } from '../src/server.js';
import { loadService } from '../src/service.js';

// The server on the embedded default, on loopback, driven by the official `openai` client as a user would drive it
// (raw fetch only where a client cannot send what is tested: malformed JSON, oversized bodies).
let server: RunningServer;
let client: OpenAI;
let store: string;
let prefixId: string;

const TASK = {
  definition: 'Answer with the fruit.',
  examples: ['red', 'blue', 'green', 'pink'].map((input) => ({ input, output: 'apple' })),
};

interface PrefixResponse {
  id: string;
  object: string;
  k: number;
  bytes: number;
  prompt_tokens_saved: number;
}

const MODEL = 'hyperllama-default';

type Params = OpenAI.CompletionCreateParamsNonStreaming & {
  prefix?: string;
  examples?: typeof TASK.examples;
  ignore_eos?: boolean;
};
type StreamParams = OpenAI.CompletionCreateParamsStreaming & { prefix?: string };

/** An error's status and OpenAI error fields, from the client. */
async function apiError(
  p: Promise<unknown>,
): Promise<{ status?: number; code?: string | null; param?: string | null; type?: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof OpenAI.APIError) return { status: e.status, code: e.code, param: e.param, type: e.type };
    throw e;
  }
  throw new Error('expected the request to fail');
}

/** log-softmax of logits rows [T, V] at the given ids (teacher-forced reference, computed here in JS). */
async function teacherForced(prefix: Prefix | undefined, ids: number[]): Promise<number[]> {
  const s = server.service;
  const P = prefix?.length ?? 0;
  const offset = prefix?.positionOffsets[0] ?? 0;
  const logits = tf.tidy(
    () =>
      s.model.forward({
        inputIds: tf.tensor2d(ids, [1, ids.length], 'int32'),
        positionIds: tf.tensor2d(
          ids.map((_, t) => offset + t),
          [1, ids.length],
          'int32',
        ),
        attentionMask: tf.ones([1, P + ids.length], 'int32'),
        prefix,
      }).logits!,
  );
  const data = (await logits.data()) as Float32Array;
  logits.dispose();
  const V = s.model.config.vocabSize;
  // Row t predicts ids[t + 1].
  return ids.slice(1).map((id, t) => {
    const row = data.subarray(t * V, (t + 1) * V);
    const max = Math.max(...row);
    const z = Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0)) + max;
    return row[id] - z;
  });
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  store = mkdtempSync(join(tmpdir(), 'hl-server-'));
  server = await serve({ port: 0, store });
  client = new OpenAI({ apiKey: 'unused', baseURL: `${server.url}/v1`, maxRetries: 0 });
  const created = await client.post<PrefixResponse>('/prefixes', { body: TASK });
  prefixId = created.id;
});

afterAll(async () => {
  await server?.close();
  rmSync(store, { recursive: true, force: true });
  await disposeBackend();
});

describe('hyperllama-serve through the openai client', () => {
  it('lists its model, and creates, reads and addresses prefixes by content', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['hyperllama-default']);
    expect(prefixId).toMatch(/^pfx-[0-9a-f]{32}$/);
    const got = await client.get<PrefixResponse>(`/prefixes/${prefixId}`);
    expect(got).toMatchObject({ id: prefixId, object: 'prefix', k: 4 });
    // 4 layers × {K, V} × 6 heads × 4 gists × 32 dims × 4 bytes.
    expect(got.bytes).toBe(4 * 2 * 6 * 4 * 32 * 4);
    expect(got.prompt_tokens_saved).toBeGreaterThan(10);
    // The same task again (different whitespace) is the same prefix; another task is another.
    const again = await client.post<PrefixResponse>('/prefixes', {
      body: { ...TASK, definition: `  ${TASK.definition}\r\n` },
    });
    expect(again.id).toBe(prefixId);
    const other = await client.post<PrefixResponse>('/prefixes', {
      body: { examples: [{ input: 'a', output: 'b' }] },
    });
    expect(other.id).not.toBe(prefixId);
    expect(await client.delete(`/prefixes/${other.id}`)).toMatchObject({ id: other.id, deleted: true });
    expect(await apiError(client.get(`/prefixes/${other.id}`))).toMatchObject({
      status: 404,
      code: 'prefix_not_found',
      param: 'prefix',
    });
  });

  it('completes behind a prefix exactly as `hyperllama-eval generate --prefix` does with the stored file', async () => {
    const prompt = 'yellow';
    const r = await client.completions.create({
      model: 'hyperllama-default',
      prompt,
      max_tokens: 12,
      temperature: 0,
      prefix: prefixId,
    } as Params);
    expect(r.object).toBe('text_completion');
    expect(r.choices[0].finish_reason).toMatch(/stop|length/);
    const file = join(store, `${prefixId}.safetensors`);
    const cli = spawnSync(
      'npx',
      [
        '--no',
        'hyperllama-eval',
        'generate',
        '--model',
        defaultBaseDir(),
        '--prefix',
        file,
        '--prompt',
        prompt,
        '--max-new-tokens',
        '12',
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toBe(`${r.choices[0].text}\n`);
    // The prefix carries the task: the same input behind no prefix continues differently.
    const plain = await client.completions.create({
      model: MODEL,
      prompt: DEFAULT_TEMPLATE.prompt(prompt),
      max_tokens: 12,
      temperature: 0,
    });
    expect(plain.choices[0].text).not.toBe(r.choices[0].text);
  }, 300_000);

  it('streams the same text it returns whole, and cuts at stop strings', async () => {
    const base = { model: MODEL, prompt: 'the farmer', max_tokens: 16, temperature: 0 };
    const whole = await client.completions.create(base);
    const text = whole.choices[0].text;
    expect(text.length).toBeGreaterThan(3);
    const collect = async (params: OpenAI.CompletionCreateParamsStreaming) => {
      let out = '';
      let finish: string | null = null;
      for await (const chunk of await client.completions.create(params)) {
        out += chunk.choices[0]?.text ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      return { out, finish };
    };
    expect(await collect({ ...base, stream: true })).toEqual({ out: text, finish: whole.choices[0].finish_reason });
    const stop = text.slice(2, 4);
    const cut = text.slice(0, text.indexOf(stop));
    const stopped = await client.completions.create({ ...base, stop: [stop] });
    expect(stopped.choices[0]).toMatchObject({ text: cut, finish_reason: 'stop' });
    expect(await collect({ ...base, stop, stream: true })).toEqual({ out: cut, finish: 'stop' });
    // ignore_eos (vLLM's extension) generates exactly max_tokens.
    const full = await client.completions.create({ ...base, max_tokens: 12, ignore_eos: true } as Params);
    expect(full.usage!.completion_tokens).toBe(12);
    expect(full.choices[0].finish_reason).toBe('length');
    // Behind a prefix too.
    const behind = await client.completions.create({ ...base, prefix: prefixId } as Params);
    expect(await collect({ ...base, prefix: prefixId, stream: true } as StreamParams)).toMatchObject({
      out: behind.choices[0].text,
    });
  });

  it('returns the chosen tokens’ log-probabilities, equal to a teacher-forced pass', async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: 'green',
      max_tokens: 6,
      temperature: 0,
      logprobs: 1,
      prefix: prefixId,
    } as Params);
    const lp = r.choices[0].logprobs!;
    const s = server.service;
    const held = s.store.acquire(prefixId);
    try {
      const promptIds = s.tokenizer.encode(DEFAULT_TEMPLATE.prompt('green'), { bos: true });
      const generated = lp.tokens!.map((t) => s.tokenizer.encode(t, { bos: false }));
      expect(generated.every((g) => g.length === 1)).toBe(true);
      const ids = [...promptIds, ...generated.map((g) => g[0])];
      const ref = (await teacherForced(held.prefix, ids)).slice(promptIds.length - 1);
      lp.token_logprobs!.forEach((x, i) => expect(x).toBeCloseTo(ref[i], 3));
      expect(lp.tokens!.join('')).toBe(r.choices[0].text);
    } finally {
      held.release();
    }
  });

  it('samples reproducibly by seed, with n choices', async () => {
    const params = { model: MODEL, prompt: 'the dog', max_tokens: 8, temperature: 0.9, top_p: 0.95, seed: 11, n: 3 };
    const a = await client.completions.create(params);
    const b = await client.completions.create(params);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(b.choices.map((c) => c.text)).toEqual(a.choices.map((c) => c.text));
    expect(a.usage!.prompt_tokens).toBe(server.service.tokenizer.encode('the dog', { bos: true }).length);
    expect(a.usage!.total_tokens).toBe(a.usage!.prompt_tokens + a.usage!.completion_tokens);
  });

  it('answers inline examples with full-attention ICL (more prompt tokens than the prefix)', async () => {
    const icl = await client.completions.create({
      model: MODEL,
      prompt: 'yellow',
      max_tokens: 4,
      temperature: 0,
      ...TASK,
    } as Params);
    const withPrefix = await client.completions.create({
      model: MODEL,
      prompt: 'yellow',
      max_tokens: 4,
      temperature: 0,
      prefix: prefixId,
    } as Params);
    expect(icl.usage!.prompt_tokens).toBeGreaterThan(withPrefix.usage!.prompt_tokens + 10);
    // More demonstrations than the context holds: as many as leave room for max_tokens are kept.
    const many = Array.from({ length: 120 }, (_, i) => ({ input: `word ${i}`, output: 'apple' }));
    const crowded = await client.completions.create({
      model: MODEL,
      prompt: 'yellow',
      max_tokens: 100,
      temperature: 0,
      examples: many,
    } as Params);
    expect(crowded.usage!.prompt_tokens + 100).toBeLessThanOrEqual(512);
    expect(crowded.usage!.prompt_tokens).toBeGreaterThan(300);
  });

  it('classifies by rank over the options, as a teacher-forced pass scores them', async () => {
    const options = ['apple', 'pear', 'blue sky'];
    const r = await client.post<{
      label: string;
      index: number;
      scores: Array<{ option: string; mean_logprob: number }>;
    }>('/classify', { body: { input: 'orange', options, prefix: prefixId } });
    const s = server.service;
    const held = s.store.acquire(prefixId);
    try {
      const promptText = DEFAULT_TEMPLATE.prompt('orange');
      const means: number[] = [];
      for (const option of options) {
        const full = s.tokenizer.encode(promptText + DEFAULT_TEMPLATE.answer(option), { bos: false });
        const prompt = s.tokenizer.encode(promptText, { bos: false });
        let b = 0;
        while (b < prompt.length && prompt[b] === full[b]) b++;
        const ids = [s.tokenizer.bosId, ...full];
        const lps = (await teacherForced(held.prefix, ids)).slice(b);
        means.push(lps.reduce((x, y) => x + y, 0) / lps.length);
      }
      r.scores.forEach((sc, i) => expect(sc.mean_logprob).toBeCloseTo(means[i], 3));
      expect(r.index).toBe(means.indexOf(Math.max(...means)));
      expect(r.label).toBe(options[r.index]);
    } finally {
      held.release();
    }
  });

  it('refuses bad input with 4xx and OpenAI error bodies naming the field', async () => {
    expect(
      await apiError(
        client.completions.create({ model: MODEL, prompt: 'x', prefix: 'pfx-' + '0'.repeat(32) } as Params),
      ),
    ).toEqual({
      status: 404,
      code: 'prefix_not_found',
      param: 'prefix',
      type: 'invalid_request_error',
    });
    expect(await apiError(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: -1 }))).toMatchObject({
      status: 400,
      param: 'max_tokens',
    });
    expect(await apiError(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 100_000 }))).toMatchObject(
      {
        status: 400,
        param: 'max_tokens',
        code: 'context_length_exceeded',
      },
    );
    expect(await apiError(client.completions.create({ model: MODEL, prompt: 'word '.repeat(600) }))).toMatchObject({
      status: 400,
      param: 'prompt',
      code: 'context_length_exceeded',
    });
    expect(await apiError(client.completions.create({ model: MODEL, prompt: 'x', temperature: 3 }))).toMatchObject({
      status: 400,
      param: 'temperature',
    });
    expect(await apiError(client.completions.create({ model: MODEL, prompt: 'x', echo: true }))).toMatchObject({
      status: 400,
      param: 'echo',
    });
    expect(await apiError(client.completions.create({ model: 'gpt-4', prompt: 'x' }))).toMatchObject({
      status: 404,
      param: 'model',
      code: 'model_not_found',
    });
    expect(await apiError(client.post('/prefixes', { body: { examples: [{ input: 'a' }] } }))).toMatchObject({
      status: 400,
      param: 'examples.0.output',
    });
    expect(await apiError(client.post('/prefixes', { body: { examples: [] } }))).toMatchObject({
      status: 400,
      param: 'examples',
    });
    // What a client library cannot send: malformed JSON and a body over the limit.
    const post = (body: string) =>
      fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const malformed = await post('{"prompt": "x",');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: object }).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_json',
    });
    const huge = await post(JSON.stringify({ prompt: 'x'.repeat(2 * 2 ** 20) }));
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { error: object }).error).toMatchObject({
      code: 'body_too_large',
      message: expect.any(String),
    });
    const unknown = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST' });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('unknown_url');
  });

  it('serves a bounded concurrent load over several prefixes without a 5xx, batching across them', async () => {
    const ids = [prefixId];
    for (const out of ['pear', 'plum', 'fig'])
      ids.push(
        (
          await client.post<PrefixResponse>('/prefixes', {
            body: { examples: ['red', 'blue', 'green'].map((input) => ({ input, output: out })) },
          })
        ).id,
      );
    const before = server.service.engine.stats.maxBatchSeen;
    const statuses: number[] = [];
    const jobs = Array.from({ length: 32 }, (_, i) => i);
    const worker = async () => {
      for (let i = jobs.shift(); i !== undefined; i = jobs.shift()) {
        try {
          await client.completions.create({
            model: MODEL,
            prompt: `word ${i}`,
            max_tokens: 8,
            temperature: 0,
            prefix: ids[i % 4],
          } as Params);
          statuses.push(200);
        } catch (e) {
          statuses.push((e as { status?: number }).status ?? -1);
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(statuses).toEqual(Array(32).fill(200));
    expect(Math.max(before, server.service.engine.stats.maxBatchSeen)).toBeGreaterThan(1);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^hyperllama_requests_total\{route="\/v1\/completions",status="200"\} \d+$/m);
    expect(metrics).toMatch(/^hyperllama_queue_depth 0$/m);
    // Streamed completions count too (their replies are hijacked from fastify).
    const streamed = async () =>
      Number(
        (await (await fetch(`${server.url}/metrics`)).text()).match(
          /^hyperllama_requests_total\{route="\/v1\/completions",status="200"\} (\d+)$/m,
        )?.[1],
      );
    const n0 = await streamed();
    for await (const _ of await client.completions.create({ model: MODEL, prompt: 'a', max_tokens: 2, stream: true }));
    expect(await streamed()).toBe(n0 + 1);
    expect(metrics).toMatch(/^hyperllama_tokens_per_second [\d.]+$/m);
    const hits = Number(metrics.match(/^hyperllama_prefix_cache_hits_total (\d+)$/m)?.[1]);
    expect(hits).toBeGreaterThanOrEqual(32);
  });

  it('answers 429 once its bounded queue is full, and never a 5xx', async () => {
    const app = buildApp({ ...server.service, engine: new Engine(server.service.model, { maxBatch: 1, maxQueue: 2 }) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (app.server.address() as { port: number }).port;
      const small = new OpenAI({ apiKey: 'x', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          small.completions.create({ model: MODEL, prompt: 'the', max_tokens: 20, temperature: 0 }).then(
            () => ({ status: 200 }),
            (e: InstanceType<typeof OpenAI.APIError>) => ({ status: e.status, type: e.type, code: e.code }),
          ),
        ),
      );
      const refused = results.filter((r) => r.status === 429);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused[0]).toMatchObject({ type: 'rate_limit_error', code: 'queue_full' });
      expect(results.every((r) => r.status === 200 || r.status === 429)).toBe(true);
      expect(results.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(3);
    } finally {
      await app.close();
    }
  });

  it('checks an API key in constant time on every route but /healthz', async () => {
    const app = buildApp(server.service, { apiKey: 'sk-test-123' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
      const withKey = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${url}/v1`, maxRetries: 0 });
      expect((await withKey('sk-test-123').models.list()).data).toHaveLength(1);
      expect(await apiError(withKey('sk-test-12').models.list())).toMatchObject({
        status: 401,
        code: 'invalid_api_key',
      });
      expect(await apiError(withKey('sk-test-1234').completions.create({ model: MODEL, prompt: 'x' }))).toMatchObject({
        status: 401,
      });
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
    } finally {
      await app.close();
    }
  });

  it('serves a plain base (--model): no compression, but the stored prefixes of that base', async () => {
    const plain = loadService({ model: defaultBaseDir(), store });
    try {
      const app = buildApp(plain);
      const compress = await app.inject({ method: 'POST', url: '/v1/prefixes', payload: TASK });
      expect(compress.statusCode).toBe(400);
      expect(compress.json().error.code).toBe('NO_HYPERNETWORK');
      const r = await app.inject({
        method: 'POST',
        url: '/v1/completions',
        payload: { prompt: 'yellow', max_tokens: 12, temperature: 0, prefix: prefixId },
      });
      const ref = await client.completions.create({
        model: MODEL,
        prompt: 'yellow',
        max_tokens: 12,
        temperature: 0,
        prefix: prefixId,
      } as Params);
      expect(r.statusCode).toBe(200);
      expect(r.json().choices[0].text).toBe(ref.choices[0].text);
      await app.close();
    } finally {
      plain.dispose();
    }
  });
});
