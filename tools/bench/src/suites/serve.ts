// Benchmark of hyperllama-serve on loopback: the embedded default served in this process, driven over HTTP by closed-
// loop clients (each sends its next request when the previous one ends), for 8 synthetic tasks at 16 shots. Two ways
// of serving the same requests: `prefix` (each task compressed once into a stored prefix; requests carry its id and
// the input) and `icl` (every request carries the 16 demonstrations inline and is prefilled with full attention).
// Every request generates exactly 8 tokens (ignore_eos), so both ways produce the same output. Streamed responses
// give the time to the first token. Then a long prefix run watches the process's RSS. `--config full` sends 200
// requests per level (default 64, quick 16).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { SYNTHETIC_FAMILIES, makeSyntheticTask, type Task } from '@hyperllama/datasets';
import { serve } from '@hyperllama/server';
import { median, type BenchRecord, type SuiteOptions } from '../types.js';

const SHOTS = 16;
const FAMILIES = ['constant', 'lookup', 'pick', 'repeat', 'symbol_rule', 'count', 'reverse', 'case'];
const MAX_TOKENS = 8;

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

interface Outcome {
  status: number;
  ttftMs: number;
  latencyMs: number;
  tokens: number;
}

/** One streamed completion; resolves with its status, time to first token, latency and completion tokens. */
async function complete(url: string, body: object): Promise<Outcome> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) {
    await res.text();
    return { status: res.status, ttftMs: NaN, latencyMs: performance.now() - t0, tokens: 0 };
  }
  let ttft = NaN;
  let tokens = 0;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    if (Number.isNaN(ttft)) ttft = performance.now() - t0;
    buffer += decoder.decode(part, { stream: true });
    const usage = buffer.match(/"completion_tokens":(\d+)/);
    if (usage) tokens = Number(usage[1]);
  }
  return { status: res.status, ttftMs: ttft, latencyMs: performance.now() - t0, tokens };
}

/** `total` requests from `concurrency` closed-loop clients; `body(i)` is request i. */
async function load(url: string, total: number, concurrency: number, body: (i: number) => object) {
  let next = 0;
  const outcomes: Outcome[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < total; i = next++) outcomes.push(await complete(url, body(i)));
    }),
  );
  return { outcomes, seconds: (performance.now() - t0) / 1000 };
}

export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const requests = opts.quick ? 16 : opts.config === 'full' ? 200 : 64;
  const levels = opts.quick ? [1, 4] : [1, 4, 16];
  const rssRequests = opts.quick ? 100 : 1000;
  const store = mkdtempSync(join(tmpdir(), 'hl-bench-serve-'));
  const server = await serve({ port: 0, store, maxBatch: 16, maxQueue: 256 });
  const out: BenchRecord[] = [];
  const rec = (name: string, metric: string, value: number, unit: string) =>
    out.push({ suite: 'serve', name, backend: tf.getBackend(), metric, value, unit });
  try {
    const tasks: Task[] = FAMILIES.map((f, i) => {
      const family = SYNTHETIC_FAMILIES.find((x) => x.name === f)!;
      return makeSyntheticTask(f, family.variants[0], { seed: i, numExamples: SHOTS, numInstances: 32 });
    });
    const ids: string[] = [];
    const t0 = performance.now();
    for (const t of tasks) {
      const r = await fetch(`${server.url}/v1/prefixes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          definition: t.definition,
          examples: t.examples.slice(0, SHOTS).map((e) => ({ input: e.input, output: e.output })),
        }),
      });
      ids.push(((await r.json()) as { id: string }).id);
    }
    rec('compress 8 tasks', 'ms per task', (performance.now() - t0) / tasks.length, 'ms');
    const bodies = {
      prefix: (i: number) => {
        const t = i % tasks.length;
        return {
          prompt: tasks[t].instances[i % 32].input,
          prefix: ids[t],
          max_tokens: MAX_TOKENS,
          temperature: 0,
          ignore_eos: true,
        };
      },
      icl: (i: number) => {
        const t = tasks[i % tasks.length];
        return {
          prompt: t.instances[i % 32].input,
          definition: t.definition,
          examples: t.examples.slice(0, SHOTS).map((e) => ({ input: e.input, output: e.output })),
          max_tokens: MAX_TOKENS,
          temperature: 0,
          ignore_eos: true,
        };
      },
    };
    const throughput: Record<string, number> = {};
    for (const concurrency of levels) {
      for (const mode of ['prefix', 'icl'] as const) {
        await load(server.url, Math.min(8, requests), concurrency, bodies[mode]); // warm-up
        const rss: number[] = [];
        const timer = setInterval(() => rss.push(process.memoryUsage().rss), 100);
        const { outcomes, seconds } = await load(server.url, requests, concurrency, bodies[mode]);
        clearInterval(timer);
        rss.push(process.memoryUsage().rss);
        const ok = outcomes.filter((o) => o.status === 200);
        const name = `${mode} c=${concurrency}`;
        throughput[name] = ok.length / seconds;
        rec(name, 'requests/s', ok.length / seconds, 'req/s');
        rec(name, 'output tokens/s', ok.reduce((n, o) => n + o.tokens, 0) / seconds, 'tok/s');
        rec(name, 'TTFT p50', median(ok.map((o) => o.ttftMs)), 'ms');
        rec(
          name,
          'TTFT p95',
          percentile(
            ok.map((o) => o.ttftMs),
            0.95,
          ),
          'ms',
        );
        rec(name, 'latency p50', median(ok.map((o) => o.latencyMs)), 'ms');
        rec(
          name,
          'latency p95',
          percentile(
            ok.map((o) => o.latencyMs),
            0.95,
          ),
          'ms',
        );
        rec(name, 'RSS max', Math.max(...rss) / 2 ** 20, 'MiB');
        rec(name, 'non-200 responses', outcomes.length - ok.length, 'count');
      }
      rec(
        `prefix / icl c=${concurrency}`,
        'request throughput ratio',
        throughput[`prefix c=${concurrency}`] / throughput[`icl c=${concurrency}`],
        'x',
      );
    }
    // RSS over a long prefix run, sampled after each tenth of it (after a full garbage collection, so what is
    // measured is what stays); drift = spread of the ten samples over the smallest. Live tensors must not grow.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const c = levels[levels.length - 1];
    const tenth = rssRequests / 10;
    const samples: number[] = [];
    const tensorsBefore = tf.memory().numTensors;
    for (let part = 0; part < 10; part++) {
      await load(server.url, tenth, c, (i) => bodies.prefix(part * tenth + i));
      gc();
      samples.push(process.memoryUsage().rss);
    }
    const name = `prefix ${rssRequests} requests c=${c}`;
    rec(name, 'RSS after first tenth', samples[0] / 2 ** 20, 'MiB');
    rec(name, 'RSS at end', samples[9] / 2 ** 20, 'MiB');
    rec(
      name,
      'RSS drift (max - min) / min over tenths',
      ((Math.max(...samples) - Math.min(...samples)) / Math.min(...samples)) * 100,
      '%',
    );
    rec(name, 'live tensors added', tf.memory().numTensors - tensorsBefore, 'count');
  } finally {
    await server.close();
    rmSync(store, { recursive: true, force: true });
  }
  return out;
}
