import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EpisodeSampler, makeExample, type Task } from '@hyperllama/datasets';
import { describe, expect, it } from 'vitest';
import { englishLexicon, holdOutInstances, resolveTasks, trainingEpisodes, TrainerError } from '@hyperllama/training';
import { resolveConfig } from '../src/index.js';

const task = (name: string, instances: number, examples = 0): Task => ({
  name,
  source: 'jsonl',
  examples: Array.from({ length: examples }, (_, i) => makeExample(`${name} example ${i}`, ['e'])),
  instances: Array.from({ length: instances }, (_, i) => makeExample(`${name} instance ${i}`, ['o'])),
  metric: 'exact',
});

/** A plain JSONL task file with n instances. */
function jsonl(dir: string, name: string, n: number): string {
  const file = join(dir, `${name}.jsonl`);
  writeFileSync(
    file,
    Array.from({ length: n }, (_, i) => JSON.stringify({ input: `${name} ${i}`, output: `out ${i}` })).join('\n'),
  );
  return file;
}

describe('held-out instances of task files', () => {
  it("keeps each task's last instances out of training: round(share·n), at least one, never all", () => {
    const { train, heldOut } = holdOutInstances([task('a', 20), task('b', 2), task('c', 1), task('d', 7)], 0.1);
    expect(train.map((t) => [t.name, t.instances.length])).toEqual([
      ['a', 18],
      ['b', 1],
      ['c', 1],
      ['d', 6],
    ]);
    expect(heldOut.map((t) => [t.name, t.instances.length])).toEqual([
      ['a', 2],
      ['b', 1],
      ['d', 1],
    ]);
    expect(heldOut[0].instances.map((x) => x.input)).toEqual(['a instance 18', 'a instance 19']);
    expect(holdOutInstances([task('a', 20)], 0.9).heldOut[0].instances).toHaveLength(18);
    expect(holdOutInstances([task('a', 20)], 0).heldOut).toEqual([]);
  });

  it('a held-out target is never a training target nor a demonstration, with or without an example pool', () => {
    for (const pool of [0, 5]) {
      const { train, heldOut } = holdOutInstances([task('a', 30, pool), task('b', 10, pool)], 0.2);
      const held = new Set(heldOut.flatMap((t) => t.instances.map((x) => x.input)));
      expect(held.size).toBe(8);
      const seen = new Set<string>();
      for (const tasks of [train, heldOut]) {
        const sampler = new EpisodeSampler(tasks, { seed: 1, k: 4 });
        for (let i = 0; i < 200; i++) {
          const e = sampler.next();
          if (tasks === train) seen.add(e.target.input);
          for (const d of e.examples) expect(held.has(d.input), d.input).toBe(false);
        }
      }
      for (const x of held) expect(seen.has(x)).toBe(false);
      expect(seen.size).toBe(32);
    }
  });

  it('resolveTasks: data.tasks alone splits its instances; data.evalTasks replaces the split; nothing to hold out is an error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-tasks-'));
    const trainFile = jsonl(dir, 'greet', 10);
    const split = resolveTasks(resolveConfig('multitask', { set: [`data.tasks=${trainFile}`] }));
    expect(split.train[0].instances).toHaveLength(9);
    expect(split.evalTasks[0].instances.map((x) => x.input)).toEqual(['greet 9']);
    expect(split.all[0].instances).toHaveLength(10);

    const evalFile = jsonl(dir, 'farewell', 3);
    const given = resolveTasks(
      resolveConfig('multitask', { set: [`data.tasks=${trainFile}`, `data.evalTasks=${evalFile}`] }),
    );
    expect(given.train[0].instances).toHaveLength(10);
    expect(given.evalTasks.map((t) => t.name)).toEqual(['farewell']);

    const single = jsonl(dir, 'single', 1);
    const err = (() => {
      try {
        resolveTasks(resolveConfig('multitask', { set: [`data.tasks=${single}`] }));
      } catch (e) {
        return e as TrainerError;
      }
      throw new Error('expected an error');
    })();
    expect(err).toBeInstanceOf(TrainerError);
    expect(err.message).toMatch(/data\.heldOutShare: 0\.1 holds out no instance of any task/);
  });

  it('data.openLexicon: a share of synthetic episodes in common English words; with task files it is an error', () => {
    const cfg = resolveConfig('multitask', { set: ['data.openLexicon=1', 'data.shots=2'] });
    const episodes = trainingEpisodes(cfg, resolveTasks(cfg), 2);
    const english = englishLexicon().inputs;
    expect(english.length).toBeGreaterThan(5000);
    for (const w of ['water', 'green', 'window', 'camera']) expect(english).toContain(w);
    let constants = 0;
    for (let i = 0; i < 400; i++) {
      const e = episodes.next();
      if (!e.task.name.startsWith('synth_constant_')) continue;
      constants++;
      expect(english).toContain(e.target.output);
    }
    expect(constants).toBeGreaterThan(10);

    const dir = mkdtempSync(join(tmpdir(), 'trainer-open-'));
    const tasksCfg = resolveConfig('multitask', {
      set: [`data.tasks=${jsonl(dir, 'greet', 10)}`, 'data.openLexicon=0.5'],
    });
    expect(() => trainingEpisodes(tasksCfg, resolveTasks(tasksCfg), 2)).toThrow(
      /data\.openLexicon: only synthetic episodes can draw their words from another lexicon/,
    );
    const defsCfg = resolveConfig('multitask', {
      set: [`data.tasks=${jsonl(dir, 'greet', 10)}`, 'data.definitions=0.5'],
    });
    expect(() => trainingEpisodes(defsCfg, resolveTasks(defsCfg), 2)).toThrow(
      /data\.definitions: only synthetic episodes/,
    );
  });

  it('without task files the held-out loss uses unseen parameter settings of the synthetic families', () => {
    const sets = resolveTasks(resolveConfig('multitask', {}));
    const trainNames = new Set(sets.train.map((t) => t.name));
    expect(sets.evalTasks.length).toBeGreaterThan(0);
    for (const t of sets.evalTasks) expect(trainNames.has(t.name)).toBe(false);
  });
});
