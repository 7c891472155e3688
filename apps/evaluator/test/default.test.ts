import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BUDGETS,
  SCREEN_MIN_GAIN,
  miniatureTasks,
  syntheticFamilyOf,
  type FamilyScreen,
} from '@hyperllama/experiments';
import { disposeBackend } from '@hyperllama/runtime';
import { runCli, type Io } from '../src/index.js';

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
    const base = ['zero-shot', 'icl', 'hyperllama', 'hyperllama-swap'];
    const inits = ['random', 'shared', 'hyper', 'hyper-other'];
    expect(Object.keys(report.methods)).toEqual([...base, ...inits.map((i) => `prefix-tuning-${i}`)]);
    // The headline families are the ones the screen passed (the bare base's gain from demonstrations on a development
    // draw, over its zero-shot score and chance).
    const screen = report.configuration.screen.families as FamilyScreen[];
    const families = screen.filter((f) => f.headline).map((f) => f.family);
    for (const f of screen) expect(f.headline).toBe(f.icl - Math.max(f.zeroShot, f.chance) >= SCREEN_MIN_GAIN);
    expect(families).toContain('constant'); // a held-out constant is copied from the demonstrations
    const { headline, control } = miniatureTasks(0, BUDGETS.quick, families);
    expect(headline.length).toBe(BUDGETS.quick.headlineTasks);
    // The families in turn, all with held-out content; one task of every other held-out family as a control.
    const turn = headline.slice(0, families.length).map((t) => syntheticFamilyOf(t.name));
    expect(new Set(turn).size).toBe(Math.min(families.length, headline.length));
    for (const t of [...headline, ...control]) expect(t.name).toMatch(/_heldout$/);
    expect(control.map((t) => syntheticFamilyOf(t.name)).sort()).toEqual(
      screen
        .filter((f) => !f.headline)
        .map((f) => f.family)
        .sort(),
    );
    expect(report.controlTasks.sort()).toEqual(control.map((t) => t.name).sort());
    const ptTasks = headline.slice(0, BUDGETS.quick.prefixTuningTasks);
    for (const m of Object.keys(report.methods)) {
      const pt = m.startsWith('prefix-tuning-');
      expect(Object.keys(report.methods[m].tasks).sort()).toEqual((pt ? ptTasks : headline).map((t) => t.name).sort());
      expect(Number.isFinite(report.methods[m].average)).toBe(true);
      for (const t of pt ? ptTasks : headline)
        expect(report.methods[m].taskDetails[t.name].instances).toBe(
          pt ? BUDGETS.quick.prefixTuningInstances : BUDGETS.quick.maxInstances,
        );
    }
    for (const init of inits) {
      expect(report.methods[`prefix-tuning-${init}`].curve.map((p: { step: number }) => p.step)).toEqual(
        BUDGETS.quick.prefixTuningEvalSteps,
      );
    }
    // ICL and HyperLlama read the same demonstrations; zero-shot none.
    expect(report.methods.icl.demonstrations).toBe(report.methods.hyperllama.demonstrations);
    expect(report.methods['zero-shot'].demonstrations).toBe(0);
    for (const f of ['results.md', 'methods.svg', 'prefix-tuning.svg'])
      expect(existsSync(join(tmp, 'report', f))).toBe(true);
    expect(stdout).toMatch(/^task\s+metric\s+zero-shot\s+icl\s+hyperllama\s+hyperllama-swap\s+prefix-tuning-random/m);
    for (const claim of [1, 2, 3])
      expect(stdout).toMatch(new RegExp(`^claim ${claim} .*: (holds|does not hold|inconclusive)`, 'm'));
    expect(stdout).toMatch(
      /^gate \(the base learns in context: ICL beats zero-shot by at least 20 points\): (passed|failed) — ICL − zero-shot [+-]\d/m,
    );
    expect(stdout).toMatch(/^gate \(the prefix carries the task: own prefix beats another task's\): (passed|failed)/m);
    expect(readFileSync(join(tmp, 'report', 'results.md'), 'utf8')).toMatch(
      /## Gates\n\n- gate \(the base learns in context/,
    );
    const lines = stdout.trim().split('\n');
    expect(lines.slice(-5).join('\n')).toMatch(
      /HyperLlama checkpoint: .*multitask-hyperllama[\\/]final[\\/]hyperllama\nreport: .*results\.json/,
    );
  }, 600_000);
});
