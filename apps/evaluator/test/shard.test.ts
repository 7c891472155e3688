import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportSniTasks, makeSyntheticTask, SYNTHETIC_FAMILIES } from '@hyperllama/datasets';
import {
  PieceType,
  Tokenizer,
  tokenizerConfigFromPieces,
  tokenizerJsonFromPieces,
  type VocabPiece,
} from '@hyperllama/tokenizer';
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
let ckpt: string;
let tasksDir: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = mkdtempSync(join(tmpdir(), 'hyperllama-shard-'));
  const tokenizer = charTokenizer();
  const modelDir = join(tmp, 'base');
  const model = writeTinyBase(modelDir, tokenizer, { vocabSize: tokenizer.vocabSize });
  ckpt = join(tmp, 'ckpt');
  writeUntrainedCheckpoint(model, modelDir, ckpt, { k: 2, r: 2, alpha: 4, seed: 1 });
  model.dispose();
  tasksDir = join(tmp, 'tasks');
  const rule = SYNTHETIC_FAMILIES.find((f) => f.name === 'symbol_rule')!.variants;
  exportSniTasks(
    [
      makeSyntheticTask('symbol_rule', rule[0], { seed: 2, numExamples: 6, numInstances: 3 }),
      makeSyntheticTask('constant', 'c1', { seed: 2, numExamples: 6, numInstances: 2 }),
      makeSyntheticTask('symbol_rule', rule[1], { seed: 3, numExamples: 6, numInstances: 3 }),
    ],
    tasksDir,
  );
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('hyperllama-eval run --shard / merge', () => {
  const common = () => [
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
    '2',
    '--pt-eval-steps',
    '0,1',
    '--resamples',
    '300',
    '--backend',
    'cpu',
  ];

  it('the merged partial reports of 2 shards are the results.json and results.md of the unsharded run', async () => {
    const whole = join(tmp, 'whole');
    expect((await cli('run', ...common(), '--out', whole)).code).toBe(0);
    const shards = [0, 1].map((i) => join(tmp, `shard-${i}`));
    for (const [i, dir] of shards.entries()) {
      const r = await cli('run', ...common(), '--shard', `${i}/2`, '--out', dir);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`partial report: ${join(dir, 'partial.json')}`);
      const partial = JSON.parse(readFileSync(join(dir, 'partial.json'), 'utf8'));
      expect(partial.shardTasks).toHaveLength(i === 0 ? 2 : 1);
    }
    const merged = join(tmp, 'merged');
    const m = await cli('merge', shards[1], shards[0], '--out', merged);
    expect(m.code, m.stderr).toBe(0);
    const read = (dir: string) => {
      const report = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
      expect(report.created).toMatch(/^\d{4}-/);
      return { ...report, created: undefined };
    };
    const expected = read(whole);
    expect(Object.keys(expected.methods)).toContain('hyperllama-swap');
    expect(Object.keys(expected.methods.icl.tasks)).toHaveLength(3);
    expect(read(merged)).toEqual(expected);
    const md = (dir: string) => readFileSync(join(dir, 'results.md'), 'utf8').replace(/Created \S+\./, '');
    expect(md(merged)).toBe(md(whole));
    // A shard left out is named.
    const missing = await cli('merge', shards[0], '--out', join(tmp, 'bad'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/shard\(s\) 1\/2 missing/);
    const absent = await cli('merge', shards[0], join(tmp, 'nowhere'), '--out', join(tmp, 'bad'));
    expect(absent.code).toBe(1);
    expect(absent.stderr).toMatch(/nowhere: no partial report/);
  });

  it('bad --shard values are usage errors naming the option', async () => {
    for (const bad of ['2/2', '1', 'x/3', '-1/2', '0/0']) {
      const r = await cli('run', ...common(), `--shard=${bad}`, '--out', join(tmp, 'never'));
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/run: --shard: shard/);
    }
    const many = await cli('run', ...common(), '--shard', '0/4', '--out', join(tmp, 'never'));
    expect(many.code).toBe(1);
    expect(many.stderr).toMatch(/4 shards for 3 task\(s\)/);
    const none = await cli('merge', '--out', join(tmp, 'never'));
    expect(none.code).toBe(2);
  });
});
