import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlama } from '@hyperllama/llama-model';
import { loadHyperLlama } from '@hyperllama/hypernet';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { Prefix } from '@hyperllama/gist-attention';
import { readAdapterConfig } from '@hyperllama/lora';
import { charTokenizer, defaultConfig } from '@hyperllama/training';
import { main } from '../src/index.js';
import { createLlama } from '@hyperllama/llama-model';
import { scratchConfig } from '@hyperllama/training';

/** The tiny default base the CLI builds with seed 0. */
function buildDefaultBase() {
  const cfg = defaultConfig('multitask');
  return createLlama(scratchConfig(cfg, charTokenizer()), { seed: 0, std: cfg.model.initStd, trainable: false });
}
import { TINY, memoryIo } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'trainer-stages-'));
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await disposeBackend();
});

/** Runs the CLI in-process; returns the held-out losses before and after (from metrics.jsonl). */
async function train(
  stage: string,
  name: string,
  extra: string[],
): Promise<{ before: number; after: number; out: string }> {
  const out = join(dir, name);
  const io = memoryIo();
  const code = await main(
    [stage, '--out', out, '--eval-every', '0', '--save-every', '0', ...TINY, '--set', 'evalBatches=2', ...extra],
    io,
    () => {},
  );
  console.log(`${stage} ${name}: ${io.lines.slice(-3, -2)}`);
  expect(code, io.lines.join('\n')).toBe(0);
  const evals = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((m) => 'evalLoss' in m);
  expect(evals[0].step).toBe(0);
  return { before: evals[0].evalLoss, after: evals[evals.length - 1].evalLoss, out };
}

describe('every stage runs end to end on the tiny default and lowers its held-out loss', () => {
  it('pretrain-base → an HF model directory with its tokenizer', async () => {
    const r = await train('pretrain-base', 'pb', ['--steps', '80', '--lr', '0.01']);
    expect(r.after).toBeLessThan(r.before - 0.5);
    const model = loadLlama(join(r.out, 'final', 'model'));
    expect(model.config.hiddenSize).toBe(64);
    expect(existsSync(join(r.out, 'final', 'model', 'tokenizer.json'))).toBe(true);
    model.dispose();
  });

  // The other stages run on the tiny random-init default base (frozen), where even a prefix alone clearly lowers
  // the loss; multitask icl also runs on the pretrained base above (--base).
  it('hyperpretrain → a HyperLlama checkpoint that loads on its base only', async () => {
    const r = await train('hyperpretrain', 'hp', ['--steps', '40', '--lr', '0.01']);
    expect(r.after).toBeLessThan(r.before - 0.1);
    const { hyperllama, config } = loadHyperLlama(join(r.out, 'final', 'hyperllama'), buildDefaultBase());
    expect(config.base_model.path).toBe('random-init(seed=0)');
    hyperllama.dispose();
    expect(() =>
      loadHyperLlama(join(r.out, 'final', 'hyperllama'), loadLlama(join(dir, 'pb', 'final', 'model'))),
    ).toThrow(/HYPERNET|hash/);
  });

  for (const method of ['hyperllama', 'icl', 'zero-shot', 'shared-prefix']) {
    it(`multitask --method ${method}`, async () => {
      const from = method === 'hyperllama' ? ['--set', `hyper.from=${join(dir, 'hp', 'final', 'hyperllama')}`] : [];
      const base = method === 'icl' ? ['--base', join(dir, 'pb', 'final', 'model')] : [];
      // Fresh-content episodes: on this random-init base only the prefix can learn, and no fixed answer per task is
      // left to memorise, so HyperLlama gets more steps and a smaller margin.
      const steps = method === 'hyperllama' ? '120' : '40';
      const r = await train('multitask', `mt-${method}`, [
        '--method',
        method,
        '--steps',
        steps,
        ...base,
        '--lr',
        method === 'shared-prefix' ? '0.05' : '0.02',
        ...from,
      ]);
      expect(r.after).toBeLessThan(r.before - (method === 'hyperllama' ? 0.05 : 0.1));
      if (method === 'icl' || method === 'zero-shot')
        expect(readAdapterConfig(join(r.out, 'final', 'adapter')).r).toBe(8);
      if (method === 'shared-prefix') expect(existsSync(join(r.out, 'final', 'prefix.safetensors'))).toBe(true);
    });
  }

  it('a HyperLlama stage with one row per batch finishes and exports (its swap control has nobody to swap with)', async () => {
    const out = join(dir, 'hp-b1');
    const io = memoryIo();
    const code = await main(
      [
        'hyperpretrain',
        '--out',
        out,
        '--eval-every',
        '0',
        '--save-every',
        '0',
        ...TINY,
        '--set',
        'batchSize=1',
        '--steps',
        '3',
      ],
      io,
      () => {},
    );
    expect(code, io.lines.join('\n')).toBe(0);
    expect(existsSync(join(out, 'final', 'hyperllama'))).toBe(true);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).not.toContain('swapControl');
    // With rows to swap, the control is logged.
    expect(readFileSync(join(dir, 'hp', 'metrics.jsonl'), 'utf8')).toContain('"swapControl"');
  });

  for (const init of ['random', 'shared', 'hyper']) {
    it(`prefix-tune --init ${init}`, async () => {
      const extra =
        init === 'shared'
          ? ['--shared', join(dir, 'mt-shared-prefix', 'final', 'prefix.safetensors')]
          : init === 'hyper'
            ? ['--hypernet', join(dir, 'mt-hyperllama', 'final', 'hyperllama')]
            : [];
      const r = await train('prefix-tune', `pt-${init}`, ['--init', init, '--steps', '40', '--lr', '0.05', ...extra]);
      expect(r.after).toBeLessThan(r.before - 0.03);
      const model = buildDefaultBase();
      const prefix = Prefix.load(join(r.out, 'final', 'prefix.safetensors'), model.config);
      expect(prefix.length).toBe(4);
      prefix.dispose();
      model.dispose();
    });
  }
});
