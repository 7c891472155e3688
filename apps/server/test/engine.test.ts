import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TEMPLATE } from '@hyperllama/datasets';
import type { Prefix } from '@hyperllama/gist-attention';
import { generate } from '@hyperllama/llama-model';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { Engine, EngineBusyError, type SequenceRequest, type SequenceResult } from '../src/engine.js';
import { compressTask, loadService, type Service } from '../src/service.js';

// Continuous batching must not change what a sequence computes: every request of a mixed batch (different prefixes
// of one length, and none) gets exactly the tokens it gets alone, and alone it gets what `generate` gives (the
// function `hyperllama-eval generate` runs).
let s: Service;
let dir: string;
const prefixes: Prefix[] = [];
const releases: Array<() => void> = [];

const tasks = [
  ['red', 'blue', 'green'].map((input) => ({ input, output: 'apple' })),
  ['one', 'two', 'three'].map((input) => ({ input, output: `${input} ${input}` })),
  ['cat', 'dog', 'cow'].map((input, i) => ({ input, output: ['pets', 'pets', 'farm'][i] })),
];

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = mkdtempSync(join(tmpdir(), 'hl-engine-'));
  s = loadService({ store: dir });
  for (const examples of tasks) {
    const { info } = compressTask(s, { examples });
    const held = s.store.acquire(info.id);
    prefixes.push(held.prefix);
    releases.push(held.release);
  }
});

afterAll(async () => {
  for (const r of releases) r();
  s?.dispose();
  rmSync(dir, { recursive: true, force: true });
  await disposeBackend();
});

const greedy = (maxTokens: number, stopIds = [s.tokenizer.eosId]) => ({
  maxTokens,
  temperature: 0,
  topP: 1,
  seed: 0,
  stream: 0,
  stopIds,
});

describe('Engine', () => {
  it('gives each request of a mixed batch exactly its solo output, and solo equals generate()', async () => {
    const inputs = ['yellow', 'four', 'horse', 'purple', 'five', 'sheep'];
    const reqs: SequenceRequest[] = inputs.map((input, i) => {
      const prefix = i < 5 ? prefixes[i % 3] : undefined;
      const text = prefix ? DEFAULT_TEMPLATE.prompt(input) : `the ${input}`;
      // No stop id: every sequence runs its full length (6-11 tokens), so they overlap in the batch.
      return { promptIds: s.tokenizer.encode(text, { bos: true }), prefix, params: greedy(6 + i, []) };
    });
    // Solo: one engine call at a time.
    const solo: SequenceResult[] = [];
    for (const r of reqs) solo.push(await s.engine.submit(r));
    // Reference: generate() with the same prefix and prompt.
    for (const [i, r] of reqs.entries()) {
      const ref = await generate(s.model, [r.promptIds], {
        maxNewTokens: r.params.maxTokens,
        prefix: r.prefix,
        stopIds: [],
      });
      expect(solo[i].tokens, `request ${i} alone vs generate()`).toEqual(ref.tokens[0]);
    }
    // Together: three start, the other three join after the first one's second token (between decode steps).
    const engine = new Engine(s.model, { maxBatch: 8 });
    const pending: Array<Promise<SequenceResult>> = [];
    let joined = false;
    const first = {
      ...reqs[0],
      onToken: () => {
        if (!joined) pending.push(...reqs.slice(3).map((r) => engine.submit(r)));
        joined = true;
      },
    };
    pending.push(engine.submit(first), engine.submit(reqs[1]), engine.submit(reqs[2]));
    await pending[0];
    const together = await Promise.all(pending);
    expect(engine.stats.maxBatchSeen).toBeGreaterThan(3);
    together.forEach((t, i) => {
      expect(t.tokens, `request ${i} in the batch vs alone`).toEqual(solo[i].tokens);
      t.logprobs.forEach((lp, j) => expect(lp).toBeCloseTo(solo[i].logprobs[j], 4));
    });
    // The prefixes matter (the comparison is not vacuous): the same input behind different prefixes differs.
    const input = s.tokenizer.encode(DEFAULT_TEMPLATE.prompt('yellow'), { bos: true });
    const outs = await Promise.all(
      prefixes.map((prefix) => engine.submit({ promptIds: input, prefix, params: greedy(6) })),
    );
    expect(new Set(outs.map((o) => o.tokens.join(','))).size).toBeGreaterThan(1);
  });

  it('samples per (seed, stream) as row `stream` of generate() does', async () => {
    const promptIds = s.tokenizer.encode('the cat', { bos: true });
    const params = { ...greedy(8), temperature: 0.9, seed: 7 };
    const ref = await generate(s.model, [promptIds, promptIds], { maxNewTokens: 8, temperature: 0.9, seed: 7 });
    const [a, b] = await Promise.all([
      s.engine.submit({ promptIds, params: { ...params, stream: 0 } }),
      s.engine.submit({ promptIds, params: { ...params, stream: 1 } }),
    ]);
    expect(a.tokens).toEqual(ref.tokens[0]);
    expect(b.tokens).toEqual(ref.tokens[1]);
  });

  it('refuses work beyond its queue and stops a sequence when asked', async () => {
    const engine = new Engine(s.model, { maxBatch: 1, maxQueue: 2 });
    const promptIds = s.tokenizer.encode('the', { bos: true });
    // Submitted in one tick: the first two wait, the third finds the queue full.
    const a = engine.submit({ promptIds, params: greedy(4) });
    const b = engine.submit({ promptIds, params: greedy(4) });
    expect(() => engine.submit({ promptIds, params: greedy(4) })).toThrow(EngineBusyError);
    await Promise.all([a, b]);
    let seen = 0;
    const stopped = await engine.submit({ promptIds, params: greedy(20), onToken: () => ++seen < 3 });
    expect(stopped.tokens).toHaveLength(3);
    expect(stopped.finishReason).toBe('stop');
    const ac = new AbortController();
    ac.abort();
    expect((await engine.submit({ promptIds, params: greedy(5), signal: ac.signal })).finishReason).toBe('aborted');
    await engine.drain();
    expect(() => engine.submit({ promptIds, params: greedy(4) })).toThrow(/shutting down/);
  });
});
