import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeBackend, initBackend, readSafetensors, toFloat32 } from '@hyperllama/runtime';
import { main } from '../src/index.js';
import { TINY, memoryIo } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'trainer-errors-'));
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await disposeBackend();
});

describe('divergence', () => {
  it('a non-finite loss stops the run with a clear error and keeps the last good checkpoint', async () => {
    const out = join(dir, 'nan');
    const io = memoryIo();
    // An absurd learning rate: the first update blows the weights up to ~1e30, the next loss overflows.
    const code = await main(
      [
        'multitask',
        '--method',
        'zero-shot',
        '--out',
        out,
        '--steps',
        '10',
        '--save-every',
        '1',
        '--eval-every',
        '0',
        '--lr',
        '1e30',
        '--set',
        'warmupSteps=0',
        ...TINY,
      ],
      io,
      () => {},
    );
    expect(code).toBe(1);
    const log = io.lines.join('\n');
    expect(log).toMatch(/NON_FINITE_LOSS: step (\d+): training diverged: loss = (NaN|Infinity)/);
    const failed = Number(/step (\d+): training diverged/.exec(log)![1]);
    expect(log).toContain(`last good checkpoint is ${join(out, 'checkpoint')} (step ${failed - 1})`);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8'));
    expect(state.step).toBe(failed - 1);
    for (const [name, e] of readSafetensors(join(out, 'checkpoint', 'trainable.safetensors')).tensors) {
      expect(toFloat32(e, name).every(Number.isFinite), name).toBe(true);
    }
    expect(existsSync(join(out, 'final'))).toBe(false);
  });

  it('a missing base model is a typed error naming the path', async () => {
    const io = memoryIo();
    expect(
      await main(['multitask', '--base', join(dir, 'nowhere'), '--out', join(dir, 'x'), ...TINY], io, () => {}),
    ).toBe(1);
    expect(io.lines.join('\n')).toMatch(/error \w+: .*nowhere/);
  });
});
