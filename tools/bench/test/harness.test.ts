import { describe, expect, it } from 'vitest';
import { backendSpec, parseArgs } from '../src/args.js';
import { formatValue, modelRatios, modelSummary, table } from '../src/report.js';
import { SUITES } from '../src/suites.js';
import { median, timeRuns, type BenchRecord } from '../src/types.js';

describe('median and timeRuns', () => {
  it('median of odd and even lists, without reordering the input', () => {
    const xs = [5, 1, 4, 2, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 4, 2, 3]);
    expect(median([10, 2, 4, 8])).toBe(6);
    expect(median([7])).toBe(7);
  });

  it('timeRuns calls warm-up runs unmeasured and measures each timed run', async () => {
    let calls = 0;
    const ms = await timeRuns(() => new Promise((r) => setTimeout(() => r(++calls), 20)), 3, 2);
    expect(calls).toBe(5);
    expect(ms).toHaveLength(3);
    // setTimeout may fire a millisecond early; it never fires 10 ms early.
    for (const t of ms) expect(t).toBeGreaterThan(10);
  });
});

describe('options', () => {
  it('defaults to every suite, and to the model and llamacpp suites when only --config is given', () => {
    // Opt-in suites (big models: minutes and gigabytes) run only when named or chosen by their configs.
    expect(parseArgs([]).suites).toEqual(Object.keys(SUITES).filter((s) => s !== 'big'));
    expect(parseArgs(['--config', 'tiny,small']).suites).toEqual(['model', 'llamacpp']);
    expect(parseArgs(['--config', '1b-bf16,1b-nf4']).suites).toEqual(['big']);
    expect(parseArgs(['--config', '1b,small']).suites).toEqual(['model', 'llamacpp']);
    const a = parseArgs(['--suite', 'runtime,lora', '--backend', 'cpu,wasm-1t', '--quick', '--json', 'x.json']);
    expect(a).toMatchObject({ suites: ['runtime', 'lora'], backends: ['cpu', 'wasm-1t'], quick: true, json: 'x.json' });
  });

  it('names what is wrong: an unknown suite, backend or option, a missing value', () => {
    expect(() => parseArgs(['--suite', 'nope'])).toThrow(/unknown suite "nope"; known: runtime/);
    expect(() => parseArgs(['--backend', 'wasm-2x'])).toThrow(/unknown backend "wasm-2x"/);
    expect(() => parseArgs(['--fast'])).toThrow(/unknown option --fast/);
    expect(() => parseArgs(['--json'])).toThrow(/--json needs a value/);
  });

  it('reads threads, pool size and matMul path from a wasm spec', () => {
    expect(backendSpec('wasm-1t')).toEqual({ backend: 'wasm', threads: 1, wasmThreads: undefined, matMul: 'auto' });
    expect(backendSpec('wasm-4t-2p-native')).toEqual({ backend: 'wasm', threads: 4, wasmThreads: 2, matMul: 'native' });
    expect(backendSpec('wasm-1t-stock').matMul).toBe('stock');
    expect(backendSpec('cpu')).toEqual({ backend: 'cpu' });
  });
});

describe('report', () => {
  const rec = (name: string, backend: string, metric: string, value: number): BenchRecord => ({
    suite: 'model',
    name,
    backend,
    metric,
    value,
    unit: 'x',
  });

  it('formats values to about three significant figures', () => {
    expect(formatValue(1234.56)).toBe('1235');
    expect(formatValue(12.345)).toBe('12.35');
    expect(formatValue(0.012345)).toBe('0.0123');
    expect(formatValue(Number.NaN)).toBe('NaN');
  });

  it('prints one aligned row per record, medians right-aligned', () => {
    const out = table([
      {
        suite: 'runtime',
        name: 'matMul 256',
        backend: 'cpu',
        metric: 'throughput',
        value: 1.5,
        unit: 'GFLOPS',
        runs: [1, 1.5, 2],
      },
      {
        suite: 'runtime',
        name: 'a much longer benchmark name',
        backend: 'wasm×2',
        metric: 'throughput',
        value: 123.4,
        unit: 'GFLOPS',
      },
    ]).split('\n');
    expect(out).toHaveLength(4);
    expect(out[0]).toMatch(/^suite\s+benchmark\s+backend\s+metric\s+median\s+unit\s+runs$/);
    // No trailing blanks; the medians end in the same column.
    for (const l of out) expect(l).toBe(l.trimEnd());
    expect(out[2].indexOf('1.50') + 4).toBe(out[3].indexOf('123') + 3);
    expect(out[2]).toMatch(/\s3$/);
    expect(out[3]).toMatch(/\s1$/);
  });

  it('summarises model records per configuration and backend and divides by the reference', () => {
    const ours = modelSummary([
      rec('tiny', 'wasm', 'trainTokensPerSec', 300),
      rec('tiny', 'wasm', 'decodeTokensPerSec', 90),
      rec('tiny', 'wasm', 'stepMs', 5),
      rec('small', 'wasm', 'trainTokensPerSec', 50),
    ]);
    expect(ours).toEqual([
      { config: 'tiny', backend: 'wasm', trainTokensPerSec: 300, decodeTokensPerSec: 90 },
      { config: 'small', backend: 'wasm', trainTokensPerSec: 50 },
    ]);
    const ref = modelSummary([
      rec('tiny', 'torch', 'trainTokensPerSec', 200),
      rec('tiny', 'torch', 'decodeTokensPerSec', 60),
    ]);
    expect(modelRatios(ours, ref)).toEqual([
      { config: 'tiny', backend: 'wasm', reference: 'torch', trainTokensPerSec: 1.5, decodeTokensPerSec: 1.5 },
    ]);
  });
});
