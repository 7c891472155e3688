import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { LlamaCppRow } from '../src/report.js';
import type { BenchRecord } from '../src/types.js';

// The built CLI (nx builds before testing), as a user runs it.
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');

describe('hyperllama-bench --suite llamacpp', () => {
  it('decodes the embedded base with llama.cpp on its GGUF export: same greedy tokens, rates and ratios', () => {
    const json = join(mkdtempSync(join(tmpdir(), 'bench-')), 'llamacpp.json');
    const r = spawnSync(
      process.execPath,
      [cli, '--suite', 'llamacpp', '--config', 'default', '--quick', '--json', json],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/decode vs llama\.cpp .* \(node-llama-cpp \d+\.\d+\.\d+\), batch 1/);
    const out = JSON.parse(readFileSync(json, 'utf8')) as { llamaCpp: LlamaCppRow[]; records: BenchRecord[] };
    const get = (metric: string, setting: string) =>
      out.records.find((x) => x.metric === metric && x.backend.endsWith(setting))!;
    // A trained model's greedy path is far from ties: every llama.cpp setting reproduces ours.
    for (const setting of ['cpu×2 f16 KV', 'cpu×2 f32 KV', 'cpu×1 f16 KV'])
      expect(get('sameGreedyTokens', setting).value, setting).toBe(1);
    const [row] = out.llamaCpp;
    expect(row.config).toBe('default');
    expect(Object.keys(row.llamaCpp)).toEqual(['cpu×2 f16 KV', 'cpu×2 f32 KV', 'cpu×1 f16 KV']);
    for (const v of [row.ours, ...Object.values(row.llamaCpp)]) expect(v).toBeGreaterThan(0);
    expect(row.ratio['cpu×2 f16 KV']).toBeCloseTo(row.ours / row.llamaCpp['cpu×2 f16 KV'], 10);
    expect(get('oursOverLlamaCpp', 'cpu×2 f16 KV').value).toBeCloseTo(row.ratio['cpu×2 f16 KV'], 10);
    expect(row.oursBest).toBeGreaterThanOrEqual(row.ours);
    expect(row.ratioBest).toBeCloseTo(row.oursBest / row.llamaCppBest, 10);
    expect(get('decodeTokensPerSec', 'cpu×2 f16 KV').runs).toHaveLength(2);
  });
});
