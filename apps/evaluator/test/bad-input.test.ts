import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportSniTasks, makeSyntheticTask } from '@hyperllama/datasets';
import {
  PieceType,
  Tokenizer,
  saveTokenizer,
  tokenizerConfigFromPieces,
  tokenizerJsonFromPieces,
  type VocabPiece,
} from '@hyperllama/tokenizer';
import { cli, writeTinyBase, writeUntrainedCheckpoint } from './helpers.js';

function tokenizerOf(n: number): Tokenizer {
  const chars = Array.from({ length: n }, (_, i) => String.fromCharCode(33 + i));
  const pieces: VocabPiece[] = [
    { piece: '<unk>', score: 0, type: PieceType.Unknown },
    { piece: '<s>', score: 0, type: PieceType.Control },
    { piece: '</s>', score: 0, type: PieceType.Control },
    ...['▁', ...chars].map((piece) => ({ piece, score: 0, type: PieceType.Normal })),
  ];
  const vocab = {
    pieces,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    byteFallback: false,
    addDummyPrefix: true,
    removeExtraWhitespaces: false,
  };
  return new Tokenizer(tokenizerJsonFromPieces(vocab), tokenizerConfigFromPieces(vocab), 'char.model');
}

let tmp: string, modelDir: string, ckpt: string, tasksDir: string, smallTok: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = mkdtempSync(join(tmpdir(), 'hyperllama-bad-'));
  const tokenizer = tokenizerOf(94);
  modelDir = join(tmp, 'base');
  const model = writeTinyBase(modelDir, tokenizer, { vocabSize: tokenizer.vocabSize });
  ckpt = join(tmp, 'ckpt');
  writeUntrainedCheckpoint(model, modelDir, ckpt, { k: 2, r: 2, alpha: 4, seed: 1 });
  model.dispose();
  smallTok = join(tmp, 'small-tok');
  saveTokenizer(tokenizerOf(40), smallTok);
  tasksDir = join(tmp, 'tasks');
  exportSniTasks([makeSyntheticTask('constant', 'c1', { seed: 2, numExamples: 6, numInstances: 3 })], tasksDir);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs the real CLI in a child process (sources through tsx, every @hyperllama/* import mapped to its sources). */
function child(args: string[]): Promise<{ code: number | null; output: string }> {
  const app = join(dirname(fileURLToPath(import.meta.url)), '..');
  const paths = join(tmp, 'tsconfig.paths.json');
  writeFileSync(
    paths,
    JSON.stringify({
      extends: join(app, 'tsconfig.json'),
      compilerOptions: {
        baseUrl: join(app, '..', '..'),
        paths: { '@hyperllama/*': ['packages/*/src/index.ts', 'apps/*/src/index.ts'] },
      },
    }),
  );
  const p = spawn(process.execPath, ['--import', 'tsx', join(app, 'src', 'cli.ts'), ...args], {
    cwd: app,
    env: { ...process.env, TSX_TSCONFIG_PATH: paths },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  p.stdout.on('data', (d) => (output += d));
  p.stderr.on('data', (d) => (output += d));
  return new Promise((resolve) => p.on('exit', (code) => resolve({ code, output })));
}

/** A typed error is one line, `hyperllama-eval <command>: error CODE: message`, or a usage error; never a stack. */
function expectTyped(r: { code: number; stderr: string }, code: string, ...named: string[]) {
  expect(r.code, r.stderr).not.toBe(0);
  if (code === 'USAGE') expect(r.stderr).toMatch(/^hyperllama-eval: \w+: /);
  else expect(r.stderr).toMatch(new RegExp(`hyperllama-eval \\w+: error ${code}: `));
  for (const n of named) expect(r.stderr).toContain(n);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

describe('hyperllama-eval bad input: a typed error naming what was wrong, non-zero exit, no stack trace', () => {
  const common = () => ['--backend', 'cpu', '--out', join(tmp, 'o')];

  it('a missing --tasks path', async () => {
    const nowhere = join(tmp, 'nowhere');
    expectTyped(await cli('run', '--model', modelDir, '--tasks', nowhere, ...common()), 'MISSING_FILE', nowhere);
    expectTyped(
      await cli('compress', '--checkpoint', ckpt, '--task', nowhere, '--out', join(tmp, 'p'), '--backend', 'cpu'),
      '\\w+',
      nowhere,
    );
  });

  it('a malformed checkpoint: truncated hypernet_config.json, truncated gist rows, a missing adapter', async () => {
    const bad = join(tmp, 'bad-config');
    cpSync(ckpt, bad, { recursive: true });
    const config = join(bad, 'hypernet_config.json');
    writeFileSync(config, readFileSync(config, 'utf8').slice(0, 40));
    expectTyped(await cli('run', '--checkpoint', bad, '--tasks', tasksDir, ...common()), 'HYPERNET_BAD_CONFIG', config);

    const rows = join(tmp, 'bad-rows');
    cpSync(ckpt, rows, { recursive: true });
    const gist = join(rows, 'gist_embeddings.safetensors');
    writeFileSync(gist, readFileSync(gist).subarray(0, 100));
    expectTyped(await cli('run', '--checkpoint', rows, '--tasks', tasksDir, ...common()), 'SAFETENSORS_\\w+', gist);

    const noAdapter = join(tmp, 'no-adapter');
    cpSync(ckpt, noAdapter, { recursive: true });
    rmSync(join(noAdapter, 'hyper', 'adapter_model.safetensors'));
    expectTyped(
      await cli('run', '--checkpoint', noAdapter, '--tasks', tasksDir, ...common()),
      '\\w+',
      join(noAdapter, 'hyper'),
    );
  });

  it('--shots 0 (and other counts below 1) are usage errors naming the option', async () => {
    for (const args of [
      ['run', '--model', modelDir, '--tasks', tasksDir, '--shots', '0', ...common()],
      ['compress', '--checkpoint', ckpt, '--task', tasksDir, '--shots', '0', '--out', join(tmp, 'p')],
    ]) {
      const r = await cli(...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--shots: expected an integer ≥ 1, got "0"');
    }
    for (const [flag, value] of [
      ['--max-instances', '0'],
      ['--pt-steps', '0'],
      ['--batch-size', '0'],
      ['--pool-size', '0'],
    ]) {
      const r = await cli('run', '--model', modelDir, '--tasks', tasksDir, flag, value, ...common());
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${flag}: expected an integer ≥ 1, got "${value}"`);
    }
    expect((await cli('generate', '--model', modelDir, '--prompt', 'hi', '--max-new-tokens', '0')).stderr).toContain(
      '--max-new-tokens: expected an integer ≥ 1',
    );
    for (const flag of ['--shots', '--steps']) {
      const r = await cli(
        'analyze',
        'masks',
        '--model',
        modelDir,
        '--tasks',
        tasksDir,
        flag,
        '0',
        '--backend',
        'cpu',
        '--out',
        join(tmp, 'a'),
      );
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${flag}: expected an integer ≥ 1, got "0"`);
    }
  });

  it('a tokenizer that does not match the model (vocabulary size)', async () => {
    const named = [`tokenizer ${smallTok} has 44 tokens`, `model ${modelDir} has vocabSize 98`];
    expectTyped(
      await cli(
        'run',
        '--model',
        modelDir,
        '--tokenizer',
        smallTok,
        '--tasks',
        tasksDir,
        '--methods',
        'zero-shot',
        ...common(),
      ),
      'TOKENIZER_MISMATCH',
      ...named,
    );
    expectTyped(
      await cli('generate', '--model', modelDir, '--tokenizer', smallTok, '--prompt', 'hi', '--backend', 'cpu'),
      'TOKENIZER_MISMATCH',
      ...named,
    );
  });

  it('in a child process: exit code 1 and one error line, no stack trace', async () => {
    const nowhere = join(tmp, 'nowhere');
    const r = await child([
      'run',
      '--model',
      modelDir,
      '--tasks',
      nowhere,
      '--out',
      join(tmp, 'o'),
      '--backend',
      'cpu',
    ]);
    expect(r.code).toBe(1);
    expect(r.output).toContain(`hyperllama-eval run: error MISSING_FILE: ${nowhere}`);
    expect(r.output).not.toMatch(/^\s+at /m);
  }, 60_000);
});
