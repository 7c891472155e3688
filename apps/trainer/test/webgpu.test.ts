import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { disposeBackend } from '@hyperllama/runtime';
import { findWebGPUAdapter } from '../../../tools/scripts/webgpu-adapter.mjs';
import { main } from '../src/index.js';
import { TINY, finished, memoryIo, spawnCli } from './helpers.js';

// Every trainer stage on the webgpu backend (on a machine without a GPU: Mesa's llvmpipe through OpenGL ES) must train
// as the pure-JS cpu backend does, loss for loss, and a run killed with SIGKILL and resumed must end where an
// uninterrupted webgpu run ends. Whether an adapter exists is asked of Dawn directly; only its absence skips.
const found = await findWebGPUAdapter();
if (!found.adapter) console.warn(`[trainer webgpu.test] skipped: ${found.why}`);

const dir = mkdtempSync(join(tmpdir(), 'trainer-webgpu-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await disposeBackend();
});

const STEPS = 3;

interface Logged {
  losses: number[];
  evalLosses: number[];
  output: string;
}

function metrics(out: string): Record<string, number>[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
}

/** One stage in-process on `backend`, a few steps, a checkpoint every step; its logged losses. */
async function train(stage: string, backend: string, name: string, extra: string[] = []): Promise<Logged> {
  const out = join(dir, `${name}-${backend}`);
  const io = memoryIo();
  const code = await main(
    [
      stage,
      '--out',
      out,
      '--backend',
      backend,
      '--steps',
      String(STEPS),
      '--eval-every',
      '2',
      '--save-every',
      '1',
      ...TINY,
      ...extra,
    ],
    io,
    () => {},
  );
  expect(code, io.lines.join('\n')).toBe(0);
  expect(io.lines.join('\n')).toContain(`backend: ${backend}`);
  const m = metrics(out);
  return {
    losses: m.filter((x) => 'loss' in x).map((x) => x.loss),
    evalLosses: m.filter((x) => 'evalLoss' in x).map((x) => x.evalLoss),
    output: io.lines.join('\n'),
  };
}

/** The webgpu run's losses equal the cpu run's within float tolerance (another summation order, the same maths). */
function expectSameLosses(gpu: Logged, cpu: Logged) {
  expect(gpu.losses).toHaveLength(STEPS);
  expect(gpu.evalLosses).toHaveLength(cpu.evalLosses.length);
  gpu.losses.forEach((l, i) => expect(Math.abs(l - cpu.losses[i]), `step ${i + 1}`).toBeLessThan(2e-3));
  gpu.evalLosses.forEach((l, i) => expect(Math.abs(l - cpu.evalLosses[i]), `eval ${i}`).toBeLessThan(2e-3));
}

describe.skipIf(!found.adapter)(`every trainer stage on webgpu (${found.adapter ?? found.why})`, () => {
  const stages: [string, string, string[]][] = [
    ['pretrain-base', 'pb', []],
    ['hyperpretrain', 'hp', []],
    ['multitask', 'mt-hyperllama', ['--method', 'hyperllama']],
    ['multitask', 'mt-icl', ['--method', 'icl']],
    ['multitask', 'mt-zero-shot', ['--method', 'zero-shot']],
    ['multitask', 'mt-shared-prefix', ['--method', 'shared-prefix']],
    ['prefix-tune', 'pt-random', ['--init', 'random']],
  ];
  for (const [stage, name, extra] of stages) {
    it(`${name}: the same losses as the cpu backend, checkpoints and outputs written`, async () => {
      const cpu = await train(stage, 'cpu', name, extra);
      const gpu = await train(stage, 'webgpu', name, extra);
      expectSameLosses(gpu, cpu);
    }, 600_000);
  }

  it('prefix-tune --init hyper from a HyperLlama trained on webgpu', async () => {
    const hypernet = join(dir, 'mt-hyperllama-webgpu', 'final', 'hyperllama');
    const extra = ['--init', 'hyper', '--hypernet', hypernet];
    expectSameLosses(
      await train('prefix-tune', 'webgpu', 'pt-hyper', extra),
      await train('prefix-tune', 'cpu', 'pt-hyper', extra),
    );
  }, 600_000);

  it('killed with SIGKILL mid-run and resumed on webgpu, ends identical to an uninterrupted webgpu run', async () => {
    const args = (out: string) => [
      'multitask',
      '--method',
      'hyperllama',
      '--backend',
      'webgpu',
      '--out',
      out,
      '--steps',
      '8',
      '--save-every',
      '2',
      '--eval-every',
      '0',
      ...TINY,
    ];
    const env = { HYPERLLAMA_BACKEND: 'webgpu' };
    const straight = join(dir, 'straight');
    const a = await finished(spawnCli(args(straight), env));
    expect(a.code, a.output).toBe(0);

    const killed = join(dir, 'killed');
    const child = spawnCli(args(killed), env);
    const done = finished(child);
    // Killed once the step-4 checkpoint is on disk (a later step has been logged).
    for (;;) {
      const steps = (() => {
        try {
          return metrics(killed).filter((m) => 'loss' in m).length;
        } catch {
          return 0;
        }
      })();
      if (steps >= 5) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    const r = await finished(spawnCli(['multitask', '--resume', killed], env));
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/resumed from .* at step [4-7]\b/);
    const finalLosses = (out: string) => metrics(out).filter((m) => 'loss' in m);
    const resumed = finalLosses(killed);
    expect(resumed.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // Same data, same dropout streams, same weights: the resumed steps' losses are the uninterrupted run's.
    finalLosses(straight).forEach((m, i) =>
      expect(Math.abs(resumed[i].loss - m.loss), `step ${m.step}`).toBeLessThan(1e-5),
    );
    for (const f of [
      'final/hyperllama/gist_embeddings.safetensors',
      'final/hyperllama/hyper/adapter_model.safetensors',
    ]) {
      const x = readFileSync(join(killed, f));
      const y = readFileSync(join(straight, f));
      expect(x.length, f).toBe(y.length);
      expect(x.equals(y), f).toBe(true);
    }
  }, 900_000);
});
