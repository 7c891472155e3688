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
 * jobs hits both alike. llama.cpp runs twice: as shipped (float16 KV cache, its default) and with a float32 KV cache
 * (our precision); records say whether its greedy tokens equal ours.
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
    const shipped = await gguf.createContext({ contextSize, threads: THREADS });
    const f32 = await gguf.createContext({
      contextSize,
      threads: THREADS,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    });
    const rng = new Rng(1234);
    const prompt = Array.from({ length: PROMPT_TOKENS }, () => rng.int(model.config.vocabSize));
    const ours: number[] = [];
    const theirs: number[] = [];
    const theirsF32: number[] = [];
    let oursTokens: number[] = [];
    const match = { shipped: 1, f32: 1 };
    const runs = opts.quick ? 2 : 7;
    for (let i = 0; i <= runs; i++) {
      const r = await generate(model, [prompt], { maxNewTokens: NEW_TOKENS + 1, stopIds: [] });
      const a = await llamaCppDecode(shipped, prompt as Token[]);
      const b = await llamaCppDecode(f32, prompt as Token[]);
      if (i === 0) continue; // warm-up
      oursTokens = r.tokens[0];
      ours.push((r.stats.newTokens - 1) / r.stats.decodeSeconds);
      theirs.push(a.rate);
      theirsF32.push(b.rate);
      if (a.tokens.join() !== oursTokens.join()) match.shipped = 0;
      if (b.tokens.join() !== oursTokens.join()) match.f32 = 0;
    }
    await Promise.all([shipped.dispose(), f32.dispose()]);
    await gguf.dispose();

    // Its package.json is not exported: read it beside the resolved entry (dist/index.js).
    const entry = createRequire(import.meta.url).resolve('node-llama-cpp');
    const version = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
    const engine = `llama.cpp ${llama.llamaCppRelease.release} (node-llama-cpp ${version.version}, cpu×${THREADS})`;
    const records: BenchRecord[] = [];
    const add = (backend: string, metric: string, unit: string, values: number[]) =>
      records.push({ suite: 'llamacpp', name, backend, metric, value: median(values), unit, runs: values });
    add(describeBackend(), 'decodeTokensPerSec', 'tokens/s', ours);
    add(`${engine} f16 KV`, 'decodeTokensPerSec', 'tokens/s', theirs);
    add(`${engine} f32 KV`, 'decodeTokensPerSec', 'tokens/s', theirsF32);
    add(`${engine} f16 KV`, 'oursOverLlamaCpp', 'ratio', [median(ours) / median(theirs)]);
    add(`${engine} f32 KV`, 'oursOverLlamaCpp', 'ratio', [median(ours) / median(theirsF32)]);
    add(`${engine} f16 KV`, 'sameGreedyTokens', 'bool', [match.shipped]);
    add(`${engine} f32 KV`, 'sameGreedyTokens', 'bool', [match.f32]);
    return records;
  } finally {
    model.dispose();
    await llama.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
