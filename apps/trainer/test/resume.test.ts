import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLlama } from '@hyperllama/llama-model';
import { loadHyperLlama } from '@hyperllama/hypernet';
import { charTokenizer, defaultConfig } from '@hyperllama/training';
import { scratchConfig } from '@hyperllama/training';
import { TINY, finished, spawnCli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'trainer-resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// LoRA dropout on: its Rng streams must resume too.
const run = (out: string, steps = 24) => [
  'hyperpretrain',
  '--out',
  out,
  '--steps',
  String(steps),
  '--save-every',
  '4',
  '--eval-every',
  '8',
  '--set',
  'hyper.dropout=0.1',
  ...TINY,
];

/** Polls metrics.jsonl until a training step ≥ `step` is logged. */
async function waitForStep(out: string, step: number): Promise<number> {
  const file = join(out, 'metrics.jsonl');
  for (;;) {
    if (existsSync(file)) {
      const steps = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((m) => 'loss' in m)
        .map((m) => m.step as number);
      if (steps.length && steps[steps.length - 1] >= step) return steps[steps.length - 1];
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const bytes = (path: string) => readFileSync(path);
const OUTPUTS = [
  'checkpoint/trainable.safetensors',
  'checkpoint/optimizer.safetensors',
  'final/hyperllama/gist_embeddings.safetensors',
  'final/hyperllama/hyper/adapter_model.safetensors',
];

describe('hyperllama-train in a child process', () => {
  it('killed with SIGKILL mid-run and resumed, ends byte-identical to an uninterrupted run', async () => {
    const straight = join(dir, 'straight');
    const a = await finished(spawnCli(run(straight)));
    expect(a.code, a.output).toBe(0);

    const killed = join(dir, 'killed');
    const child = spawnCli(run(killed));
    const done = finished(child);
    const at = await waitForStep(killed, 10);
    child.kill('SIGKILL');
    const k = await done;
    expect(k.signal).toBe('SIGKILL');
    expect(at).toBeLessThan(24);

    const r = await finished(spawnCli(['hyperpretrain', '--resume', killed]));
    expect(r.code, r.output).toBe(0);
    const from = Number(/resumed from .* at step (\d+)/.exec(r.output)?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThan(24);
    for (const f of OUTPUTS) expect(bytes(join(killed, f)).equals(bytes(join(straight, f))), f).toBe(true);
    // the metrics log reads as one run: every step once
    const steps = readFileSync(join(killed, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((m) => 'loss' in m)
      .map((m) => m.step);
    expect(steps).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
  });

  it('SIGTERM writes a checkpoint and exits with 143; meanwhile a second run on the same --out is refused by the lock', async () => {
    const out = join(dir, 'terminated');
    const child = spawnCli(run(out, 400));
    const done = finished(child);
    await waitForStep(out, 2);
    const second = await finished(spawnCli(run(out, 4)));
    expect(second.code, second.output).toBe(1);
    expect(second.output).toMatch(
      new RegExp(
        `error OUT_LOCKED: .*hyperllama-train\\.lock: .* is in use by process ${child.pid} on \\S+, started \\d{4}-`,
      ),
    );
    expect(second.output).not.toMatch(/^\s+at /m); // one line, no stack trace
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code, r.output).toBe(143);
    expect(r.output).toContain(`SIGTERM: checkpoint written to ${join(out, 'checkpoint')}`);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8'));
    expect(state.step).toBeGreaterThanOrEqual(2);
    expect(state.step).toBeLessThan(400);
    expect(existsSync(join(out, 'hyperllama-train.lock'))).toBe(false);
  });

  it('SIGINT writes a loadable checkpoint and exits with 130', async () => {
    const out = join(dir, 'interrupted');
    const child = spawnCli(run(out, 400));
    const done = finished(child);
    await waitForStep(out, 2);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code, r.output).toBe(130);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8'));
    expect(state.step).toBeGreaterThanOrEqual(2);
    expect(state.step).toBeLessThan(400);
    expect(r.output).toContain(`--resume ${out}`);
    const cfg = defaultConfig('hyperpretrain');
    const base = createLlama(scratchConfig(cfg, charTokenizer()), {
      seed: 0,
      std: cfg.model.initStd,
      trainable: false,
    });
    const { hyperllama, config } = loadHyperLlama(join(out, 'checkpoint', 'hyperllama'), base);
    expect(config.k).toBe(cfg.hyper.k);
    hyperllama.dispose();
    base.dispose();
  });
});
