import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticTask, SYNTHETIC_FAMILIES, type Task } from '@hyperllama/datasets';
import { HyperLlama } from '@hyperllama/hypernet';
import {
  buildReport,
  evaluate,
  mergePartialReports,
  mergeShardResults,
  parseShard,
  parsePartialReport,
  shardItems,
  writePartialReport,
  EvalError,
  type MethodResult,
  type PartialReport,
  type Shard,
} from '../src/index.js';
import { charTokenizer, tinyModel } from './helpers.js';

const family = (name: string) => SYNTHETIC_FAMILIES.find((f) => f.name === name)!;
let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = mkdtempSync(join(tmpdir(), 'hyperllama-shards-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(EvalError);
    return (e as EvalError).code;
  }
  return undefined;
};

describe('shards', () => {
  it('parses i/n and refuses anything else with a typed error', () => {
    expect(parseShard('0/1')).toEqual({ index: 0, count: 1 });
    expect(parseShard(' 3 / 4 ')).toEqual({ index: 3, count: 4 });
    for (const bad of ['4/4', '1/0', '-1/4', '1.5/4', '1', 'a/b', '', '1/2/3', '0/-2'])
      expect(
        code(() => parseShard(bad)),
        bad,
      ).toBe('BAD_SHARD');
  });

  it('splits round robin: every item in exactly one shard, in order; more shards than items is refused', () => {
    const items = Array.from({ length: 10 }, (_, i) => `t${i}`);
    const shards = [0, 1, 2].map((index) => shardItems(items, { index, count: 3 }));
    expect(shards).toEqual([
      ['t0', 't3', 't6', 't9'],
      ['t1', 't4', 't7'],
      ['t2', 't5', 't8'],
    ]);
    expect(shardItems(items, { index: 0, count: 1 })).toEqual(items);
    expect(code(() => shardItems(items, { index: 0, count: 11 }))).toBe('BAD_SHARD');
    expect(code(() => shardItems(items, { index: 3, count: 3 }))).toBe('BAD_SHARD');
  });

  it('sharded evaluation joined equals the unsharded one: scores, curves, swap control, configurations, report', async () => {
    const model = tinyModel(7);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, seed: 3 });
    const tasks: Task[] = [
      makeSyntheticTask('symbol_rule', family('symbol_rule').variants[0], { seed: 6, numExamples: 8, numInstances: 3 }),
      makeSyntheticTask('constant', 'c2', { seed: 6, numExamples: 8, numInstances: 2 }),
      { ...makeSyntheticTask('constant', 'c4', { seed: 7, numExamples: 8, numInstances: 2 }), metric: 'rougeL' },
    ];
    const s = { model, tokenizer: charTokenizer, hyperllama: hl, maxNewTokens: 2 };
    const o = {
      methods: ['zero-shot', 'icl', 'hyperllama', 'prefix-tuning-random', 'prefix-tuning-hyper-other'] as const,
      shots: 3,
      seed: 0,
      poolSize: 6,
      control: [tasks[1].name],
      prefixTuning: { evalSteps: [0, 1], lr: 0.05, batchSize: 2 },
    };
    const whole = await evaluate(tasks, s, { ...o, methods: [...o.methods] });
    const names = tasks.map((t) => t.name);
    const configuration = { tasks: '3 tasks', backend: 'cpu' };
    const reportOptions = { controlTasks: o.control, resamples: 200, seed: 0 };
    const partial = async (shard: Shard): Promise<PartialReport> => ({
      format: 'hyperllama-eval-partial/1',
      shard,
      tasks: names,
      shardTasks: shardItems(names, shard),
      configuration,
      reportOptions,
      results: await evaluate(tasks, s, { ...o, methods: [...o.methods], shard }),
    });
    const parts = [await partial({ index: 0, count: 2 }), await partial({ index: 1, count: 2 })];
    // Each shard scores its own tasks only (task 1's swap partner is in the other shard).
    expect(parts[0].results[0].scores.map((t) => t.task)).toEqual([names[0], names[2]]);
    expect(parts[1].results.map((r) => r.scores.map((t) => t.task))).toEqual(whole.map(() => [names[1]]));
    // Through the files (NaN answer losses survive), in any order.
    const read = parts
      .reverse()
      .map((p, i) => parsePartialReport(readFileSync(writePartialReport(p, join(tmp, `shard${i}`)), 'utf8')));
    const merged = mergeShardResults(read);
    expect(merged.results).toEqual(whole);
    const created = new Date(0);
    expect(mergePartialReports(read, created)).toEqual(
      buildReport(whole, configuration, { ...reportOptions, created }),
    );
    hl.dispose();
    model.dispose();
  });

  it('refuses missing, repeated and foreign shards, and files that are not partial reports', () => {
    const scores = (task: string) => [{ task, metric: 'exact' as const, scores: [1, 0], answerLoss: [NaN, 2] }];
    const results = (tasks: string[]): MethodResult[] => [
      { method: 'zero-shot', configuration: { shots: 0 }, scores: tasks.flatMap(scores) },
    ];
    const p = (index: number, shardTasks: string[], extra: Partial<PartialReport> = {}): PartialReport => ({
      format: 'hyperllama-eval-partial/1',
      shard: { index, count: 2 },
      tasks: ['a', 'b', 'c'],
      shardTasks,
      configuration: { backend: 'cpu' },
      reportOptions: {},
      results: results(shardTasks),
      ...extra,
    });
    const ok = [p(0, ['a', 'c']), p(1, ['b'])];
    expect(mergeShardResults(ok).results[0].scores.map((t) => t.task)).toEqual(['a', 'b', 'c']);
    // NaN (an empty answer's loss) is not JSON: it survives the file as NaN, not null.
    const back = parsePartialReport(readFileSync(writePartialReport(ok[0], join(tmp, 'nan')), 'utf8'));
    expect(back).toEqual(ok[0]);
    expect(back.results[0].scores[0].answerLoss![0]).toBeNaN();
    expect(code(() => mergeShardResults([ok[0]]))).toBe('MISSING_SHARD');
    expect(code(() => mergeShardResults([ok[0], ok[0]]))).toBe('SHARD_MISMATCH');
    expect(code(() => mergeShardResults([]))).toBe('NO_PARTIAL_REPORT');
    expect(code(() => mergeShardResults([ok[0], p(1, ['b'], { configuration: { backend: 'wasm' } })]))).toBe(
      'SHARD_MISMATCH',
    );
    expect(() => mergeShardResults([ok[0], p(1, ['b'], { configuration: { backend: 'wasm' } })])).toThrow(
      /another configuration than shard 0\/2 \(backend\)/,
    );
    expect(code(() => mergeShardResults([ok[0], p(1, ['b'], { shard: { index: 1, count: 3 } })]))).toBe(
      'SHARD_MISMATCH',
    );
    expect(code(() => mergeShardResults([ok[0], p(1, ['b'], { tasks: ['a', 'b', 'c', 'd'] })]))).toBe('SHARD_MISMATCH');
    expect(code(() => mergeShardResults([ok[0], p(1, ['c'])]))).toBe('SHARD_MISMATCH'); // c twice, b never
    expect(code(() => mergeShardResults([p(0, ['a']), p(1, ['b'])]))).toBe('MISSING_SHARD'); // c never
    expect(code(() => parsePartialReport(JSON.stringify({ format: 'hyperllama-eval/2' })))).toBe('BAD_PARTIAL_REPORT');
    expect(code(() => parsePartialReport('{'))).toBe('BAD_PARTIAL_REPORT');
    expect(code(() => parsePartialReport(JSON.stringify({ ...ok[0], shard: { index: 2, count: 2 } })))).toBe(
      'BAD_SHARD',
    );
  });
});
