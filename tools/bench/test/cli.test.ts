import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BenchRecord } from '../src/types.js';

// The built CLI (nx builds before testing), run as a user runs it: one child process per backend.
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');

describe('hyperllama-bench', () => {
  it('runs a suite on two backends, prints one table and writes every record with its runs to JSON', () => {
    const json = join(mkdtempSync(join(tmpdir(), 'bench-')), 'out', 'runtime.json');
    const r = spawnSync(
      process.execPath,
      [cli, '--suite', 'runtime', '--backend', 'cpu,wasm-1t-xnnpack', '--quick', '--json', json],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(readFileSync(json, 'utf8')) as { meta: { node: string }; records: BenchRecord[] };
    expect(out.meta.node).toBe(process.version);
    const backends = [...new Set(out.records.map((x) => x.backend))];
    expect(backends).toEqual(['cpu', 'wasm×1']);
    for (const b of backends) {
      const names = out.records.filter((x) => x.backend === b).map((x) => x.name);
      expect(names).toEqual([
        'matMul 256x256x256',
        'matMul 256 transposeB',
        'batched matMul 32x256x32 · kᵀ',
        'linear fwd+bwd 1024x256x256',
      ]);
    }
    for (const x of out.records) {
      expect(x.runs).toHaveLength(3);
      expect(x.value).toBeGreaterThan(0);
      // The headline value is the median of the recorded runs.
      expect(x.value).toBe([...x.runs!].sort((a, b) => a - b)[1]);
    }
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^suite\s+benchmark/);
    expect(lines.filter((l) => l.startsWith('runtime '))).toHaveLength(out.records.length);
    expect(r.stdout).toContain(`wrote ${json}`);
  });

  it('rejects an unknown backend before running anything, and says which', () => {
    const r = spawnSync(process.execPath, [cli, '--backend', 'gpu'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('unknown backend "gpu"');
    expect(r.stdout).toBe('');
  });
});
