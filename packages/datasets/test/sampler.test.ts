import { describe, expect, it } from 'vitest';
import {
  CompressionSampler,
  DatasetError,
  EpisodeSampler,
  makeSyntheticTask,
  type Episode,
  type EpisodeSamplerOptions,
  type Task,
  type TextDocument,
} from '../src/index.js';
import { CharEncoder } from './helpers.js';

const tasks: Task[] = ['shift1', 'shift2', 'shift3', 'shift4', 'shift5'].map((v) =>
  makeSyntheticTask('caesar', v, { seed: 2, numExamples: 10, numInstances: 8 }),
);
const summary = (e: Episode) => `${e.taskIndex}/${e.targetIndex}:${e.examples.map((x) => x.input).join(',')}`;
const draw = (s: { next(): Episode }, n: number) => Array.from({ length: n }, () => summary(s.next()));

describe('EpisodeSampler', () => {
  const opts: EpisodeSamplerOptions = { seed: 11, k: 4 };

  it('restored from a JSON copy of its state, continues with the same stream (across epochs)', () => {
    for (const stopAt of [0, 17, 40, 93]) {
      const a = new EpisodeSampler(tasks, opts);
      draw(a, stopAt);
      const state = JSON.parse(JSON.stringify(a.getState()));
      const b = new EpisodeSampler(tasks, opts, state);
      expect(draw(b, 100)).toEqual(draw(a, 100));
    }
    expect(draw(new EpisodeSampler(tasks, { ...opts, seed: 12 }), 20)).not.toEqual(
      draw(new EpisodeSampler(tasks, opts), 20),
    );
  });

  it('visits every target once per epoch, in an order that changes between epochs', () => {
    const s = new EpisodeSampler(tasks, opts);
    expect(s.epochLength).toBe(40);
    const epoch1 = Array.from({ length: 40 }, () => s.next());
    const epoch2 = Array.from({ length: 40 }, () => s.next());
    for (const epoch of [epoch1, epoch2])
      expect(new Set(epoch.map((e) => `${e.taskIndex}/${e.targetIndex}`)).size).toBe(40);
    expect(epoch2.map(summary)).not.toEqual(epoch1.map(summary));
    for (const e of epoch1) {
      expect(e.target).toBe(e.task.instances[e.targetIndex]);
      expect(e.examples.length).toBe(4);
      expect(new Set(e.examples).size).toBe(4);
      for (const x of e.examples) expect(e.task.examples).toContain(x);
    }
  });

  it('caps targets per task and epoch', () => {
    const s = new EpisodeSampler(tasks, { ...opts, maxPerTask: 3 });
    expect(s.epochLength).toBe(15);
    const counts = new Map<number, number>();
    for (let i = 0; i < 15; i++) {
      const t = s.next().taskIndex;
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect([...counts.values()]).toEqual([3, 3, 3, 3, 3]);
  });

  it('draws demonstrations from the other instances when asked, never the target', () => {
    const s = new EpisodeSampler(tasks, { ...opts, pool: 'instances', k: 7 });
    for (let i = 0; i < 80; i++) {
      const e = s.next();
      expect(e.examples.length).toBe(7);
      expect(e.examples).not.toContain(e.target);
      for (const x of e.examples) expect(e.task.instances).toContain(x);
    }
  });

  it('rejects bad options and states with typed errors', () => {
    expect(() => new EpisodeSampler([], opts)).toThrow(DatasetError);
    expect(() => new EpisodeSampler(tasks, { ...opts, k: -1 })).toThrow(DatasetError);
    const state = new EpisodeSampler(tasks, opts).getState();
    expect(() => new EpisodeSampler(tasks, opts, { ...state, position: 41 })).toThrow(/position/);
  });
});

describe('CompressionSampler', () => {
  const docs: TextDocument[] = [
    { name: 'one', text: 'the quick brown fox jumps over the lazy dog and runs far away into the woods' },
    { name: 'two', text: 'a tiny text' },
    {
      name: 'three',
      text: 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma',
    },
  ];
  const lengths = { a: 5, b: 4, c: 6, d: 3 };

  it('cuts four consecutive segments from a word boundary of one document', () => {
    const encoder = new CharEncoder();
    const s = new CompressionSampler(docs, encoder, { seed: 3, lengths });
    for (let i = 0; i < 50; i++) {
      const x = s.next();
      expect([x.a.length, x.b.length, x.c.length, x.d.length]).toEqual([5, 4, 6, 3]);
      const text = docs[x.document].text;
      expect(encoder.decode([...x.a, ...x.b, ...x.c, ...x.d])).toBe(text.slice(x.offset, x.offset + 18));
      expect(x.offset === 0 || text[x.offset - 1] === ' ').toBe(true);
      expect(x.document).not.toBe(1); // too short for 18 tokens
    }
  });

  it('restored from its state continues with the same stream', () => {
    const encoder = new CharEncoder();
    const a = new CompressionSampler(docs, encoder, { seed: 3, lengths });
    for (let i = 0; i < 7; i++) a.next();
    const b = new CompressionSampler(docs, encoder, { seed: 3, lengths }, JSON.parse(JSON.stringify(a.getState())));
    for (let i = 0; i < 20; i++) expect(b.next()).toEqual(a.next());
    expect(b.getState()).toEqual(a.getState());
  });

  it('fails with a typed error when no document is long enough', () => {
    const s = new CompressionSampler([docs[1]], new CharEncoder(), { seed: 3, lengths });
    expect(() => s.next()).toThrow(expect.objectContaining({ code: 'CORPUS_TOO_SHORT' }));
  });
});
