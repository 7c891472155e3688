import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTasks, makeSyntheticTask, symbolize, type Task } from '../src/index.js';
import { SHARED } from './helpers.js';

/** Checks that `after` relabels `before` by one bijection onto fresh symbols, touching nothing else. */
function expectSymbolTuned(before: Task, after: Task): void {
  expect(after.name).toBe(`${before.name}_symbolized`);
  expect(after.definition).toBeUndefined();
  const mapping = new Map<string, string>();
  before.options!.forEach((label, i) => mapping.set(label, after.options![i]));
  const symbols = after.options!;
  expect(new Set(symbols).size).toBe(new Set(before.options).size);
  const original = new Set(before.options!.map((l) => l.toLowerCase()));
  for (const s of symbols) expect(original.has(s.toLowerCase())).toBe(false);
  for (const key of ['examples', 'instances'] as const) {
    expect(after[key].length).toBe(before[key].length);
    before[key].forEach((e, i) => {
      expect(after[key][i].input).toBe(e.input);
      expect(after[key][i].output).toBe(mapping.get(e.output));
    });
  }
}

describe('symbolize', () => {
  const synthetic = {
    ...makeSyntheticTask('symbol_topic', 'animal_fruit_l1', { seed: 1 }),
    definition: 'Name the topic.',
  };

  it('relabels a classification task consistently with arbitrary symbols, deterministically per seed', () => {
    const a = symbolize(synthetic, 5);
    expectSymbolTuned(synthetic, a);
    expect(symbolize(synthetic, 5)).toEqual(a);
    const others = [6, 7, 8, 9].map((seed) => symbolize(synthetic, seed).options!.join('/'));
    expect(others.some((o) => o !== a.options!.join('/'))).toBe(true);
  });

  it('handles label sets larger than the symbol list', () => {
    const options = Array.from({ length: 120 }, (_, i) => `label${i}`);
    const task: Task = {
      name: 'many',
      source: 'test',
      examples: [],
      instances: options.map((o) => ({ input: o, output: o })),
      options,
      metric: 'accuracy',
    };
    expectSymbolTuned(task, symbolize(task, 1));
  });

  it('refuses tasks without a shared label set, and outputs outside it', () => {
    const free = makeSyntheticTask('caesar', 'shift1', { seed: 1 });
    expect(() => symbolize(free, 1)).toThrow(expect.objectContaining({ code: 'NOT_CLASSIFICATION' }));
    const bad = { ...synthetic, instances: [{ input: 'x', output: 'not-a-label' }] };
    expect(() => symbolize(bad, 1)).toThrow(
      expect.objectContaining({
        code: 'BAD_FIELD',
        details: expect.objectContaining({ field: 'instances[0].output' }),
      }),
    );
  });

  const sst2 = join(SHARED, 'data/metaicl/glue-sst2');
  it.skipIf(!existsSync(sst2))(
    `turns a real MetaICL classification task into its symbol-tuning variant (${sst2})`,
    () => {
      const [task] = loadTasks(sst2).tasks;
      expect(task.options).toEqual(['negative', 'positive']);
      expectSymbolTuned(task, symbolize(task, 3));
    },
  );
});
