import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Rng } from '@hyperllama/runtime';
import { createLlama, generate, loadLlama, saveGguf, type LlamaModel } from '@hyperllama/llama-model';
import { getLlama, LlamaLogLevel, type LlamaContext, type Token } from 'node-llama-cpp';
import { median, type BenchRecord, type SuiteOptions } from '../types.js';
import { BENCH_CONFIGS, NEW_TOKENS, PROMPT_TOKENS, findDefaultModel } from './model.js';
import { describeBackend } from './runtime.js';

/**
 * Decode against llama.cpp (the prebuilt CPU binary of node-llama-cpp) on the same weights, exported to a float32
 * GGUF file (ids-only vocabulary): batch 1, a 16-token prompt, then 64 new tokens one at a time with the KV cache,
 * greedy, 2 threads on both sides, as the model suite's decode. Runs alternate (ours, llama.cpp, …) so load from other
 * jobs hits both alike. llama.cpp runs as shipped (float16 KV cache, its default), with a float32 KV cache (our
 * precision) and, as shipped, on one thread (its spinning thread barrier suffers most when the 2 cores are shared);
 * records say whether its greedy tokens equal ours.
 */

const THREADS = 2;

function buildModel(name: string): LlamaModel | null {
  if (name === 'tiny' || name === 'small') return createLlama(BENCH_CONFIGS[name].model, { seed: 0 });
  if (name !== 'default') throw new Error(`unknown model config "${name}" (tiny, small, default)`);
  const path = findDefaultModel();
  if (!path) {
    process.stderr.write('[bench] llamacpp/default: no embedded default model found; skipped\n');
    return null;
  }
  return loadLlama(path);
}

/**
 * Tokens/s of the 64 decode steps after the first new token (the prompt's forward yields that one). Each step is one
 * `controlledEvaluate` call: llama.cpp's decode of one token plus its greedy sampler, the least wrapper code
 * node-llama-cpp offers (its `evaluate` generator measured 10-30 % slower here).
 */
async function llamaCppDecode(ctx: LlamaContext, prompt: Token[]): Promise<{ rate: number; tokens: Token[] }> {
  const seq = ctx.getSequence();
  try {
    const next = { generateNext: { token: true, options: { temperature: 0 } } };
    const first = await seq.controlledEvaluate(prompt.map((t, i) => (i === prompt.length - 1 ? [t, next] : t)));
    const tokens = [first[prompt.length - 1]!.next.token!];
    const start = performance.now();
    for (let i = 0; i < NEW_TOKENS; i++) {
      const [out] = await seq.controlledEvaluate([[tokens[tokens.length - 1], next]]);
      tokens.push(out!.next.token!);
    }
    return { rate: (NEW_TOKENS * 1000) / (performance.now() - start), tokens };
  } finally {
    await seq.dispose();
  }
}

/** The llama.cpp settings measured: as shipped (float16 KV cache), our precision (float32 KV), and one thread. */
const VARIANTS = [
  { label: `cpu×${THREADS} f16 KV`, threads: THREADS, f32Kv: false },
  { label: `cpu×${THREADS} f32 KV`, threads: THREADS, f32Kv: true },
  { label: 'cpu×1 f16 KV', threads: 1, f32Kv: false },
] as const;

export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const name = opts.config ?? 'tiny';
  const model = buildModel(name);
  if (!model) return [];
  const dir = mkdtempSync(join(tmpdir(), 'bench-gguf-'));
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  try {
    const path = join(dir, `${name}.gguf`);
    saveGguf(model, path);
    const gguf = await llama.loadModel({ modelPath: path });
    const contextSize = PROMPT_TOKENS + NEW_TOKENS + 16;
    const contexts = await Promise.all(
      VARIANTS.map((v) =>
        gguf.createContext({
          contextSize,
          threads: v.threads,
          ...(v.f32Kv ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } : {}),
        }),
      ),
    );
    const rng = new Rng(1234);
    const prompt = Array.from({ length: PROMPT_TOKENS }, () => rng.int(model.config.vocabSize));
    const ours: number[] = [];
    const theirs: number[][] = VARIANTS.map(() => []);
    const same = VARIANTS.map(() => 1);
    const runs = opts.quick ? 2 : 7;
    for (let i = 0; i <= runs; i++) {
      const r = await generate(model, [prompt], { maxNewTokens: NEW_TOKENS + 1, stopIds: [] });
      for (const [v, ctx] of contexts.entries()) {
        const t = await llamaCppDecode(ctx, prompt as Token[]);
        if (i === 0) continue; // warm-up
        theirs[v].push(t.rate);
        if (t.tokens.join() !== r.tokens[0].join()) same[v] = 0;
      }
      if (i > 0) ours.push((r.stats.newTokens - 1) / r.stats.decodeSeconds);
    }
    await Promise.all(contexts.map((c) => c.dispose()));
    await gguf.dispose();

    // Its package.json is not exported: read it beside the resolved entry (dist/index.js).
    const entry = createRequire(import.meta.url).resolve('node-llama-cpp');
    const version = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
    const engine = `llama.cpp ${llama.llamaCppRelease.release} (node-llama-cpp ${version.version})`;
    const records: BenchRecord[] = [];
    const add = (backend: string, metric: string, unit: string, values: number[]) =>
      records.push({ suite: 'llamacpp', name, backend, metric, value: median(values), unit, runs: values });
    add(describeBackend(), 'decodeTokensPerSec', 'tokens/s', ours);
    for (const [v, variant] of VARIANTS.entries()) {
      const backend = `${engine} ${variant.label}`;
      add(backend, 'decodeTokensPerSec', 'tokens/s', theirs[v]);
      add(backend, 'oursOverLlamaCpp', 'ratio', [median(ours) / median(theirs[v])]);
      add(backend, 'sameGreedyTokens', 'bool', [same[v]]);
    }
    return records;
  } finally {
    model.dispose();
    await llama.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
