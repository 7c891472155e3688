import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { disposeBackend } from '@hyperllama/runtime';
import { BUDGETS, heldOutTasks, runCli, type Io } from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'hyperllama-default-'));
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await disposeBackend();
});

describe('hyperllama-eval default --quick (what `npm start -- --quick` runs)', () => {
  it('trains every stage, evaluates every method on every held-out task, prints the table and writes the report', async () => {
    let stdout = '';
    let stderr = '';
    const io: Io = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) };
    const code = await runCli(['default', '--quick', '--out', tmp, '--backend', 'wasm'], io);
    expect(code, stderr.slice(-2000)).toBe(0);

    const report = JSON.parse(readFileSync(join(tmp, 'report', 'results.json'), 'utf8'));
    const methods = ['zero-shot', 'icl', 'hyperllama', 'prefix-tuning-random', 'prefix-tuning-shared', 'prefix-tuning-hyper'];
    expect(Object.keys(report.methods)).toEqual(methods);
    const tasks = heldOutTasks(0, BUDGETS.quick.tasksPerFamily).map((t) => t.name);
    expect(tasks.length).toBe(5); // one task of each held-out family, one unseen lookup table
    for (const m of methods) {
      expect(Object.keys(report.methods[m].tasks).sort()).toEqual([...tasks].sort());
      expect(Number.isFinite(report.methods[m].average)).toBe(true);
      for (const t of tasks) expect(report.methods[m].taskDetails[t].instances).toBe(BUDGETS.quick.maxInstances);
    }
    for (const init of ['random', 'shared', 'hyper']) {
      expect(report.methods[`prefix-tuning-${init}`].curve.map((p: { step: number }) => p.step)).toEqual([0, 2, 4]);
    }
    for (const f of ['results.md', 'methods.svg', 'prefix-tuning.svg']) expect(existsSync(join(tmp, 'report', f))).toBe(true);
    expect(stdout).toMatch(/^task\s+metric\s+zero-shot\s+icl\s+hyperllama\s+prefix-tuning-random/m);
    const lines = stdout.trim().split('\n');
    expect(lines.slice(-5).join('\n')).toMatch(/HyperLlama checkpoint: .*multitask-hyperllama[\\/]final[\\/]hyperllama\nreport: .*results\.json/);
  }, 600_000);
});
