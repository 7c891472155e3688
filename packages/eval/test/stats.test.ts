import { describe, expect, it } from 'vitest';
import { bootstrapMean, EvalError, pairedBootstrap, verdict, type TaskScores } from '../src/index.js';
import { bootstrapDistribution, quantile } from '../src/stats.js';

const task = (name: string, scores: number[], extra: Partial<TaskScores> = {}): TaskScores => ({
  task: name,
  metric: 'accuracy',
  scores,
  ...extra,
});

describe('paired bootstrap', () => {
  it('matches the hand-enumerated resampling distribution of one task with instance differences {0, 1}', () => {
    // a − b per instance: 0 and 1. Resampling 2 indices with replacement: (0,0) → 0, (0,1) and (1,0) → 0.5, (1,1) → 1,
    // so the resampled mean is 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4.
    const a = [task('t', [1, 1])];
    const b = [task('t', [1, 0])];
    const dist = bootstrapDistribution([[0, 1]], { resamples: 4000, seed: 3 });
    const freq = (v: number) => dist.filter((x) => x === v).length / dist.length;
    expect(dist.every((x) => x === 0 || x === 0.5 || x === 1)).toBe(true);
    expect(freq(0)).toBeCloseTo(0.25, 1);
    expect(freq(0.5)).toBeCloseTo(0.5, 1);
    expect(freq(1)).toBeCloseTo(0.25, 1);
    // 2.5th percentile: inside the ~25% at 0; 97.5th: inside the ~25% at 1.
    const ci = pairedBootstrap(a, b, { resamples: 2000, seed: 0 });
    expect(ci).toEqual({ difference: 0.5, low: 0, high: 1, resamples: 2000 });
    expect(verdict(ci)).toBe('inconclusive');
    // Pairing: the same indices for both sides. Unpaired scores 0/1 on both sides would spread; paired equal ones do not.
    expect(pairedBootstrap([task('t', [0, 1, 0, 1])], [task('t', [0, 1, 0, 1])])).toEqual({
      difference: 0,
      low: 0,
      high: 0,
      resamples: 2000,
    });
  });

  it('gives [d, d] when every difference is d, averages tasks (macro), and is reproducible from the seed', () => {
    const a = [task('x', [1, 1, 1]), task('y', [1, 1])];
    const b = [task('y', [0, 0]), task('x', [0, 0, 0])]; // matched by name
    expect(pairedBootstrap(a, b, { resamples: 100 })).toEqual({ difference: 1, low: 1, high: 1, resamples: 100 });
    const d = pairedBootstrap(
      [task('x', [0.3, 0.3, 0.3], { metric: 'rougeL' } as never)],
      [task('x', [0.1, 0.1, 0.1], { metric: 'rougeL' } as never)],
      { resamples: 50 },
    );
    expect(d.low).toBeCloseTo(0.002, 12); // ROUGE-L divided by 100
    expect(d.high).toBeCloseTo(0.002, 12);
    // Macro average: task x (differences 1, 0) has mean 0.5, task y (0, 0, 0, 0) mean 0 → 0.25, not the pooled 1/6.
    const m = pairedBootstrap(
      [task('x', [1, 0]), task('y', [0, 0, 0, 0])],
      [task('x', [0, 0]), task('y', [0, 0, 0, 0])],
      { seed: 9 },
    );
    expect(m.difference).toBe(0.25);
    expect(m.low).toBe(0);
    expect(m.high).toBe(0.5);
    expect(pairedBootstrap(a.slice(0, 1), b.slice(1), { seed: 4 })).toEqual(
      pairedBootstrap(a.slice(0, 1), b.slice(1), { seed: 4 }),
    );
    const wide = (seed: number) =>
      pairedBootstrap([task('t', [1, 0, 1, 1, 0, 1, 0, 1])], [task('t', [0, 0, 1, 0, 0, 0, 1, 0])], {
        seed,
        resamples: 300,
      });
    expect(wide(1)).not.toEqual(wide(2));
  });

  it('resamples answer losses (skipping instances without one) and refuses mismatched inputs', () => {
    const a = [task('t', [0, 0, 0], { answerLoss: [1, 2, NaN] })];
    const b = [task('t', [0, 0, 0], { answerLoss: [2, 3, 5] })];
    expect(pairedBootstrap(a, b, { value: 'answerLoss' })).toEqual({
      difference: -1,
      low: -1,
      high: -1,
      resamples: 2000,
    });
    expect(() => pairedBootstrap(a, b, { value: 'answerLossWithEos' })).toThrow(/no answerLossWithEos/);
    expect(() => pairedBootstrap([task('t', [1, 0])], [task('t', [1, 0, 1])])).toThrow(EvalError);
    expect(() => pairedBootstrap([task('t', [1, 0])], [task('t', [1, 0, 1])])).toThrow(
      /2 instances in one method and 3/,
    );
    expect(() => pairedBootstrap([task('t', [1])], [task('u', [1])])).toThrow(EvalError);
    expect(() => pairedBootstrap([task('t', [1])], [task('t', [1])], { resamples: 0 })).toThrow(EvalError);
  });

  it('bootstrapMean brackets the macro average; verdict reads the interval', () => {
    const r = bootstrapMean([task('a', [1, 0, 1, 0]), task('b', [1, 1])], { resamples: 500 });
    expect(r.mean).toBe(0.75);
    expect(r.low).toBeGreaterThanOrEqual(0.5);
    expect(r.low).toBeLessThan(0.75);
    expect(r.high).toBeGreaterThan(0.75);
    expect(r.high).toBeLessThanOrEqual(1);
    expect(verdict({ low: 0.01, high: 0.2 })).toBe('holds');
    expect(verdict({ low: -0.2, high: -0.01 })).toBe('does not hold');
    expect(verdict({ low: 0, high: 0.2 })).toBe('inconclusive');
    expect(verdict({ low: -0.1, high: 0.1 })).toBe('inconclusive');
    expect(quantile([0, 1, 2, 3], 0.5)).toBe(1.5);
    expect(quantile([5], 0.975)).toBe(5);
  });
});
