import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { run } from '../src/suites/serve.js';

// The serve suite at its quick size: a real server on loopback, prefix and inline-ICL clients at 1 and 4 concurrent.
describe('serve suite', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });
  afterAll(async () => {
    await disposeBackend();
  });

  it('measures both ways of serving with no failed request; prefixes outrun inline 16-shot ICL', async () => {
    const records = await run({ quick: true });
    const value = (name: string, metric: string) => {
      const r = records.find((x) => x.name === name && x.metric === metric);
      expect(r, `${name} / ${metric}`).toBeDefined();
      return r!.value;
    };
    for (const mode of ['prefix', 'icl'])
      for (const c of [1, 4]) {
        const name = `${mode} c=${c}`;
        expect(value(name, 'non-200 responses')).toBe(0);
        // Every request generates exactly 8 tokens (ignore_eos).
        expect(value(name, 'output tokens/s')).toBeCloseTo(8 * value(name, 'requests/s'), 6);
        expect(value(name, 'TTFT p50')).toBeLessThanOrEqual(value(name, 'latency p50'));
        expect(value(name, 'TTFT p95')).toBeGreaterThanOrEqual(value(name, 'TTFT p50'));
      }
    // The ICL rows re-read 16 demonstrations (hundreds of tokens) that the prefix replaces with 4 positions.
    expect(value('prefix / icl c=4', 'request throughput ratio')).toBeGreaterThan(1.5);
    expect(value('prefix 100 requests c=4', 'RSS at end')).toBeGreaterThan(0);
    // Nothing leaks per request: the long run ends with the tensors it started with.
    expect(value('prefix 100 requests c=4', 'live tensors added')).toBe(0);
  }, 300_000);
});
