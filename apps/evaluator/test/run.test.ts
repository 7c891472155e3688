import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_TEMPLATE,
  exportSniTasks,
  loadTasks,
  makeSyntheticTask,
  SYNTHETIC_FAMILIES,
} from '@hyperllama/datasets';
import { planTasks, taskPrefix } from '@hyperllama/eval';
import { Prefix } from '@hyperllama/gist-attention';
import { generate } from '@hyperllama/llama-model';
import {
  PieceType,
  Tokenizer,
  tokenizerConfigFromPieces,
  tokenizerJsonFromPieces,
  type VocabPiece,
} from '@hyperllama/tokenizer';
import { loadSetup } from '../src/index.js';
import { cli, writeTinyBase, writeUntrainedCheckpoint } from './helpers.js';

/** A character-level SentencePiece-style tokenizer (no merges): <unk>, <s>, </s>, ▁ and printable ASCII. */
function charTokenizer(): Tokenizer {
  const chars = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i));
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

let tmp: string;
let modelDir: string;
let ckpt: string;
let tasksDir: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = mkdtempSync(join(tmpdir(), 'hyperllama-run-'));
  const tokenizer = charTokenizer();
  modelDir = join(tmp, 'base');
  const model = writeTinyBase(modelDir, tokenizer, { vocabSize: tokenizer.vocabSize });
  ckpt = join(tmp, 'ckpt');
  writeUntrainedCheckpoint(model, modelDir, ckpt, { k: 2, r: 2, alpha: 4, seed: 1 });
  model.dispose();
  tasksDir = join(tmp, 'tasks');
  const variant = SYNTHETIC_FAMILIES.find((f) => f.name === 'symbol_rule')!.variants[0];
  exportSniTasks(
    [
      makeSyntheticTask('symbol_rule', variant, { seed: 2, numExamples: 6, numInstances: 4 }),
      { ...makeSyntheticTask('constant', 'c1', { seed: 2, numExamples: 6, numInstances: 3 }), metric: 'rougeL' },
    ],
    tasksDir,
  );
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('hyperllama-eval run / compress', () => {
  it('evaluates every method on every task and writes a well-formed report; the table is printed', async () => {
    const out = join(tmp, 'report');
    const r = await cli(
      'run',
      '--checkpoint',
      ckpt,
      '--tasks',
      tasksDir,
      '--methods',
      'zero-shot,icl,hyperllama,prefix-tuning',
      '--shots',
      '3',
      '--max-instances',
      '3',
      '--max-new-tokens',
      '3',
      '--pt-steps',
      '2',
      '--pt-eval-every',
      '1',
      '--out',
      out,
      '--backend',
      'cpu',
    );
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    const methods = [
      'zero-shot',
      'icl',
      'hyperllama',
      'hyperllama-swap',
      'prefix-tuning-random',
      'prefix-tuning-hyper',
      'prefix-tuning-hyper-other',
    ];
    expect(Object.keys(report.methods)).toEqual(methods);
    const taskNames = Object.keys(report.methods.icl.tasks);
    expect(taskNames).toHaveLength(2);
    for (const m of methods) {
      expect(Object.keys(report.methods[m].tasks)).toEqual(taskNames);
      expect(report.methods[m].metric).toBe('mixed');
      expect(report.methods[m].average).toBeGreaterThanOrEqual(0);
      expect(report.methods[m].average).toBeLessThanOrEqual(1);
    }
    expect(report.methods['prefix-tuning-hyper'].curve.map((p: { step: number }) => p.step)).toEqual([0, 1, 2]);
    for (const m of methods) expect(report.methods[m].answerLoss).toBeGreaterThan(0);
    expect(report.methods['zero-shot'].demonstrations).toBe(0);
    expect(report.methods.icl.demonstrations).toBe(report.methods.hyperllama.demonstrations);
    // The claims this run can test (no shared prefix: no claim 3), with their verdict lines printed last.
    expect(report.claims.map((c: { id: string }) => c.id)).toEqual(['claim 1', 'claim 2', 'swap gap']);
    expect(report.prefixTuning).toMatchObject({
      steps: 2,
      evalSteps: [0, 1, 2],
      batchSize: 8,
      inits: ['random', 'hyper', 'hyper-other'],
    });
    const table = r.stdout.slice(0, r.stdout.indexOf('report: '));
    const tail = table.trimEnd().split('\n').slice(-3);
    expect(tail[0]).toMatch(
      /^claim 1 \(HyperLlama beats zero-shot\): (holds|does not hold|inconclusive) — [+-]\d+\.\d points \[95% CI [+-]\d+\.\d, [+-]\d+\.\d\]; answer loss [+-]\d\.\d{3} nats\/token/,
    );
    expect(tail[1]).toMatch(/^claim 2 \(full-attention ICL beats HyperLlama\): /);
    expect(tail[2]).toMatch(/^swap gap \(HyperLlama's own prefix beats another task's\): /);
    expect(r.stdout).toMatch(/^hyperllama-swap\s/m);
    expect(readFileSync(join(out, 'results.md'), 'utf8').trimEnd().split('\n').slice(-1)[0]).toBe(tail[2]);
    expect(report.configuration.checkpoint).toContain('ckpt');
    for (const f of ['results.md', 'methods.svg', 'prefix-tuning.svg']) expect(existsSync(join(out, f))).toBe(true);
    expect(r.stdout).toMatch(/^task\s+metric\s+zero-shot\s+icl\s+hyperllama\s+hyperllama-swap/m);
    expect(r.stdout).toMatch(/^average\s+mixed/m);
  });

  it('compress stores a prefix that run --prefix and generate --prefix serve as compressing on the fly would', async () => {
    const taskFile = join(tasksDir, readdirJson(tasksDir)[0]);
    const prefixFile = join(tmp, 'task.safetensors');
    const c = await cli(
      'compress',
      '--checkpoint',
      ckpt,
      '--task',
      taskFile,
      '--shots',
      '3',
      '--out',
      prefixFile,
      '--backend',
      'cpu',
    );
    expect(c.code).toBe(0);
    const prefix = Prefix.load(prefixFile);
    expect(prefix.length).toBe(2);
    expect(prefix.meta.shots).toBe('3');
    // The stored tensors are the hyper pass over the same seeded demonstrations that `run` uses.
    const setup = await loadSetup({ checkpoint: ckpt });
    const plan = planTasks(loadTasks(taskFile).tasks, { shots: 3, seed: 0 })[0];
    const direct = taskPrefix(setup.hyperllama!, plan, { model: setup.model, tokenizer: setup.tokenizer });
    prefix.keys.forEach((k, l) => expect(Array.from(k.dataSync())).toEqual(Array.from(direct.keys[l].dataSync())));
    prefix.values.forEach((v, l) => expect(Array.from(v.dataSync())).toEqual(Array.from(direct.values[l].dataSync())));
    // generate --prefix continues an instance input behind the stored prefix, as the library does.
    const input = plan.instances[0].input;
    const expected = await generate(setup.model, [DEFAULT_TEMPLATE.prompt(input)], {
      maxNewTokens: 6,
      tokenizer: setup.tokenizer,
      prefix: direct,
    });
    const g = await cli(
      'generate',
      '--model',
      modelDir,
      '--prefix',
      prefixFile,
      '--prompt',
      input,
      '--max-new-tokens',
      '6',
      '--backend',
      'cpu',
    );
    expect(g.code).toBe(0);
    expect(g.stdout).toBe(expected.texts![0] + '\n');
    prefix.dispose();
    direct.dispose();
    setup.dispose();

    const common = [
      '--tasks',
      taskFile,
      '--methods',
      'hyperllama',
      '--shots',
      '3',
      '--max-new-tokens',
      '3',
      '--backend',
      'cpu',
    ];
    const onTheFly = await cli('run', '--checkpoint', ckpt, ...common, '--out', join(tmp, 'a'));
    expect(onTheFly.code).toBe(0);
    const stored = await cli('run', '--model', modelDir, '--prefix', prefixFile, ...common, '--out', join(tmp, 'b'));
    expect(stored.code).toBe(0);
    const a = JSON.parse(readFileSync(join(tmp, 'a', 'results.json'), 'utf8'));
    const b = JSON.parse(readFileSync(join(tmp, 'b', 'results.json'), 'utf8'));
    expect(b.methods.hyperllama.tasks).toEqual(a.methods.hyperllama.tasks);
    expect(b.methods.hyperllama.taskDetails).toEqual(a.methods.hyperllama.taskDetails);
  });

  it('reports control tasks apart and leaves them out of the average and the claims', async () => {
    const out = join(tmp, 'control');
    const [controlTask, headlineTask] = readdirJson(tasksDir).map((f) => f.replace(/\.json$/, ''));
    const r = await cli(
      'run',
      '--checkpoint',
      ckpt,
      '--tasks',
      tasksDir,
      '--methods',
      'zero-shot,hyperllama',
      '--shots',
      '3',
      '--max-instances',
      '3',
      '--max-new-tokens',
      '3',
      '--control',
      controlTask,
      '--resamples',
      '200',
      '--out',
      out,
      '--backend',
      'cpu',
    );
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(report.controlTasks).toEqual([controlTask]);
    for (const m of ['zero-shot', 'hyperllama', 'hyperllama-swap']) {
      expect(Object.keys(report.methods[m].tasks)).toEqual([headlineTask]);
      expect(Object.keys(report.methods[m].control.tasks)).toEqual([controlTask]);
      expect(report.methods[m].average).toBe(report.methods[m].tasks[headlineTask]);
    }
    expect(report.bootstrap).toEqual({ resamples: 200, seed: 0 });
    expect(report.claims.map((c: { id: string }) => c.id)).toEqual(['claim 1', 'swap gap']);
    expect(r.stdout).toContain(`control tasks (left out of the averages above and of the claims): ${controlTask}`);
  });

  it('rejects bad usage with exit code 2', async () => {
    expect((await cli('run', '--tasks', tasksDir, '--out', tmp)).stderr).toContain('give --checkpoint or --model');
    const bad = await cli(
      'run',
      '--model',
      modelDir,
      '--tasks',
      tasksDir,
      '--methods',
      'icl,magic',
      '--out',
      join(tmp, 'x'),
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown method "magic"');
    const control = await cli(
      'run',
      '--model',
      modelDir,
      '--tasks',
      tasksDir,
      '--control',
      'nosuchtask',
      '--out',
      join(tmp, 'y'),
      '--backend',
      'cpu',
    );
    expect(control.code).toBe(2);
    expect(control.stderr).toContain('--control: no task named nosuchtask');
    expect((await cli('compress', '--task', tasksDir, '--out', 'x')).stderr).toContain('--checkpoint is required');
  });
});

function readdirJson(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort();
}
