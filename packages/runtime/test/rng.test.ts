import { describe, expect, it } from 'vitest';
import { OptionError, Rng } from '../src/index.js';

describe('Rng (xoshiro128**)', () => {
  it('matches the reference xoshiro128** outputs for state [1, 2, 3, 4]', () => {
    // Reference outputs of Blackman & Vigna's xoshiro128** from state {1, 2, 3, 4}.
    const rng = Rng.fromState({ algorithm: 'xoshiro128**', s: [1, 2, 3, 4], spareNormal: null });
    const got = Array.from({ length: 8 }, () => rng.nextUint32());
    expect(got).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
  });

  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const sa = Array.from({ length: 20 }, () => a.next());
    expect(Array.from({ length: 20 }, () => b.next())).toEqual(sa);
    expect(Array.from({ length: 20 }, () => c.next())).not.toEqual(sa);
  });

  it('continues the exact stream after a state round trip through JSON', () => {
    const a = new Rng(7);
    for (let i = 0; i < 13; i++) a.normal();
    const saved = JSON.parse(JSON.stringify(a.getState()));
    const b = Rng.fromState(saved);
    const restA = [a.normal(), a.next(), a.int(1000), a.normal()];
    const restB = [b.normal(), b.next(), b.int(1000), b.normal()];
    expect(restB).toEqual(restA);
  });

  it('has the moments of its distributions', () => {
    const rng = new Rng(1);
    const n = 50_000;
    const u = rng.uniformArray(n);
    const z = rng.normalArray(n);
    const mean = (xs: Float32Array) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const variance = (xs: Float32Array) => {
      const m = mean(xs);
      return xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length;
    };
    // Uniform[0,1): mean 1/2, variance 1/12; standard normal: mean 0, variance 1 (5-sigma bands).
    expect(Math.abs(mean(u) - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(variance(u) - 1 / 12)).toBeLessThan(0.002);
    expect(Math.abs(mean(z))).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(variance(z) - 1)).toBeLessThan(0.03);
    const counts = Array.from({ length: 7 }, () => 0);
    for (let i = 0; i < 70_000; i++) counts[rng.int(7)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
  });

  it('shuffles into a permutation and samples without replacement', () => {
    const rng = new Rng(3);
    const xs = Array.from({ length: 50 }, (_, i) => i);
    const sh = rng.shuffle([...xs]);
    expect([...sh].sort((a, b) => a - b)).toEqual(xs);
    expect(sh).not.toEqual(xs);
    const s = rng.sample(xs, 10);
    expect(new Set(s).size).toBe(10);
  });

  it('forks independent streams without advancing the parent', () => {
    const a = new Rng(5);
    const before = a.getState();
    const f1 = a.fork('data');
    const f2 = a.fork('init');
    expect(a.getState()).toEqual(before);
    expect(f1.next()).not.toEqual(f2.next());
    expect(new Rng(5).fork('data').next()).toEqual(new Rng(5).fork('data').next());
  });

  it('rejects bad seeds, states and ranges with OptionError', () => {
    expect(() => new Rng(1.5)).toThrow(OptionError);
    expect(() => Rng.fromState({ algorithm: 'xoshiro128**', s: [0, 0, 0, 0], spareNormal: null })).toThrow(OptionError);
    expect(() => Rng.fromState({ algorithm: 'mt' as never, s: [1, 2, 3, 4], spareNormal: null })).toThrow(OptionError);
    expect(() => new Rng(1).int(0)).toThrow(OptionError);
    expect(() => new Rng(1).sample([1, 2], 3)).toThrow(OptionError);
  });
});
