import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLlama, saveLlama } from '@hyperllama/llama-model';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { saveTokenizer } from '@hyperllama/tokenizer';
import { charTokenizer, defaultConfig, scratchConfig } from '@hyperllama/training';
import { main } from '../src/index.js';
import { TINY, finished, memoryIo, spawnCli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'trainer-cli-errors-'));
let base: string;
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  base = join(dir, 'base');
  const tok = charTokenizer();
  const model = createLlama(scratchConfig(defaultConfig('multitask'), tok), { seed: 0, std: 0.02 });
  saveLlama(model, base);
  saveTokenizer(tok, base);
  model.dispose();
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await disposeBackend();
});

async function train(...args: string[]): Promise<{ code: number; log: string }> {
  const io = memoryIo();
  const code = await main(args, io, () => {});
  return { code, log: io.lines.join('\n') };
}

/** One line `hyperllama-train <stage>: error CODE: …` naming what was wrong, exit 1, nothing in the log looks like a stack. */
function expectTyped(r: { code: number; log: string }, code: string, ...named: string[]) {
  expect(r.code, r.log).toBe(1);
  expect(r.log).toMatch(new RegExp(`hyperllama-train [\\w-]+: error ${code}: `));
  for (const n of named) expect(r.log).toContain(n);
  expect(r.log).not.toMatch(/^\s+at /m);
}

describe('hyperllama-train bad input: a typed error naming what was wrong, exit 1', () => {
  const out = (name: string) => ['--out', join(dir, name)];

  it('a missing --config file, and a --config that is a directory', async () => {
    const missing = join(dir, 'nowhere.yaml');
    expectTyped(await train('multitask', '--config', missing, ...out('c1')), 'CONFIG_NOT_FOUND', missing);
    expectTyped(
      await train('multitask', '--config', dir, ...out('c2')),
      'CONFIG_NOT_FOUND',
      `${dir}: cannot read the config file`,
    );
  });

  it('--steps 0', async () => {
    expectTyped(
      await train('multitask', '--steps', '0', ...out('s')),
      'CONFIG_BAD_VALUE',
      '--steps: "steps": expected an integer ≥ 1, got 0',
    );
  });

  it('--set data.shots=0 for few-shot training', async () => {
    for (const method of ['hyperllama', 'icl']) {
      expectTyped(
        await train(
          'multitask',
          '--method',
          method,
          '--set',
          'data.shots=0',
          '--set',
          'data.minShots=0',
          '--steps',
          '1',
          ...out(`shots-${method}`),
          ...TINY,
        ),
        'CONFIG_BAD_VALUE',
        'data.shots: expected at least 1 demonstration per few-shot episode, got 0',
      );
    }
  });

  it('a missing tasks path', async () => {
    const nowhere = join(dir, 'no-tasks');
    expectTyped(
      await train('multitask', '--set', `data.tasks=${nowhere}`, ...out('t'), ...TINY),
      'MISSING_FILE',
      nowhere,
    );
  });

  it('a malformed HyperLlama checkpoint (--hypernet, hyper.from)', async () => {
    const bad = join(dir, 'badckpt');
    mkdirSync(bad);
    writeFileSync(join(bad, 'hypernet_config.json'), '{"format": "hyperllama-hypernet", "k": ');
    const file = join(bad, 'hypernet_config.json');
    expectTyped(
      await train('prefix-tune', '--init', 'hyper', '--hypernet', bad, ...out('h1'), ...TINY),
      'HYPERNET_BAD_CONFIG',
      file,
    );
    expectTyped(
      await train('multitask', '--set', `hyper.from=${bad}`, ...out('h2'), ...TINY),
      'HYPERNET_BAD_CONFIG',
      file,
    );
  });

  it('a tokenizer that does not match the base model (vocabulary size), for every method', async () => {
    for (const method of ['hyperllama', 'zero-shot']) {
      expectTyped(
        await train(
          'multitask',
          '--base',
          base,
          '--method',
          method,
          '--set',
          'model.tokenizer=builtin:word',
          '--steps',
          '1',
          ...out(`tok-${method}`),
          ...TINY,
        ),
        'TOKENIZER_MISMATCH',
        `model.tokenizer: builtin:word has 4096 tokens but the base ${base} has vocabSize ${charTokenizer().numTokens}`,
      );
    }
  });

  it('in a child process: exit code 1, one error line, no stack trace', async () => {
    const missing = join(dir, 'nowhere.json');
    const r = await finished(spawnCli(['multitask', '--config', missing, '--out', join(dir, 'child')]));
    expect(r.code).toBe(1);
    expect(r.output.trim()).toBe(`hyperllama-train multitask: error CONFIG_NOT_FOUND: ${missing}: no such config file`);
  }, 60_000);
});
