import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  OptionError,
  Sgd,
  clipByGlobalNorm,
  initBackend,
  loadOptimizerState,
  lrSchedule,
  saveOptimizerState,
} from '../src/index.js';

let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = mkdtempSync(join(tmpdir(), 'optim-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const grads = (g: number[]) => ({ p: tf.tensor1d(g) });

describe('AdamW', () => {
  it('matches values computed by hand for its first three steps', () => {
    const p = tf.variable(tf.tensor1d([1, -2]), true, 'p');
    const opt = new AdamW({ p }, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    // p ← p(1 − lr·wd); m, v moving averages; p ← p − lr·m̂/(√v̂ + eps), m̂ = m/(1−β1^t), v̂ = v/(1−β2^t).
    const expected = [
      [0.899000002, -1.898000001],
      [0.8177969063826516, -1.8533171424282262],
      [0.782543734927106, -1.8183910057075727],
    ];
    [
      [0.5, -1],
      [0.1, 0.3],
      [-0.2, 0],
    ].forEach((g, i) => {
      opt.step(grads(g));
      const got = Array.from(p.dataSync());
      expect(got[0]).toBeCloseTo(expected[i][0], 6);
      expect(got[1]).toBeCloseTo(expected[i][1], 6);
    });
    expect(opt.stepCount).toBe(3);
    opt.dispose();
    p.dispose();
  });

  it('resumes bit-identically from saved state', () => {
    const gs = [
      [0.5, -1, 2],
      [0.1, 0.3, -0.7],
      [-0.2, 0, 0.01],
      [1, 1, 1],
      [0.3, -0.3, 0.9],
    ];
    const run = (resumeAt: number | null) => {
      const p = tf.variable(tf.tensor1d([1, -2, 3]), true, `p${resumeAt}`);
      let opt = new AdamW({ p }, { lr: 0.05 });
      gs.forEach((g, i) => {
        if (i === resumeAt) {
          const file = join(dir, `adam-${resumeAt}.safetensors`);
          saveOptimizerState(opt, file);
          opt.dispose();
          opt = new AdamW({ p }, { lr: 0.05 });
          loadOptimizerState(file, opt);
        }
        opt.step({ p: tf.tensor1d(g) });
      });
      const out = Array.from(p.dataSync());
      opt.dispose();
      p.dispose();
      return out;
    };
    expect(run(3)).toEqual(run(null));
  });

  it('rejects state saved for other parameters with a typed error naming the problem', () => {
    const a = tf.variable(tf.zeros([2]), true, 'a');
    const b = tf.variable(tf.zeros([3]), true, 'a_other');
    const opt = new AdamW({ a });
    opt.step({ a: tf.ones([2]) });
    const file = join(dir, 'mismatch.safetensors');
    saveOptimizerState(opt, file);
    const other = new AdamW({ a: b });
    expect(() => loadOptimizerState(file, other)).toThrow(/shape \[2\] but the parameter is \[3\]/);
    expect(() => loadOptimizerState(file, new Sgd({ a }))).toThrow(OptionError);
  });

  it('validates options', () => {
    const p = tf.variable(tf.zeros([1]), true, 'q');
    expect(() => new AdamW({ p }, { lr: -1 })).toThrow(OptionError);
    expect(() => new AdamW({ p }, { beta1: 1 })).toThrow(OptionError);
    expect(() => new AdamW({ p }, { eps: 0 })).toThrow(OptionError);
  });
});

describe('SGD', () => {
  it('applies momentum as torch.optim.SGD does', () => {
    const p = tf.variable(tf.tensor1d([1]), true, 's');
    const opt = new Sgd({ p }, { lr: 0.1, momentum: 0.9 });
    opt.step({ p: tf.tensor1d([1]) }); // buf = 1; p = 1 − 0.1 = 0.9
    opt.step({ p: tf.tensor1d([1]) }); // buf = 0.9 + 1 = 1.9; p = 0.9 − 0.19 = 0.71
    expect(p.dataSync()[0]).toBeCloseTo(0.71, 6);
    const file = join(dir, 'sgd.safetensors');
    saveOptimizerState(opt, file);
    const opt2 = new Sgd({ p }, { lr: 0.1, momentum: 0.9 });
    loadOptimizerState(file, opt2);
    opt2.step({ p: tf.tensor1d([1]) }); // buf = 1.71 + 1 = 2.71; p = 0.71 − 0.271 = 0.439
    expect(p.dataSync()[0]).toBeCloseTo(0.439, 6);
  });
});

describe('clipByGlobalNorm', () => {
  it('scales to the requested norm and leaves small gradients alone', async () => {
    const g = { a: tf.tensor1d([3, 0]), b: tf.tensor1d([0, 4]) }; // norm 5
    const { grads: clipped, norm } = await clipByGlobalNorm(g, 1);
    expect(norm).toBeCloseTo(5, 6);
    const after = Math.hypot(...clipped.a.dataSync(), ...clipped.b.dataSync());
    expect(after).toBeCloseTo(1, 5);
    const { grads: same } = await clipByGlobalNorm(g, 10);
    expect(Array.from(same.a.dataSync())).toEqual([3, 0]);
  });
});

describe('lrSchedule', () => {
  it('warms up linearly, then decays linearly or by cosine to minLr', () => {
    const lin = lrSchedule({ type: 'linear', lr: 1, warmupSteps: 4, totalSteps: 14 });
    expect([0, 1, 2, 3].map(lin)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(lin(4)).toBe(1);
    expect(lin(9)).toBeCloseTo(0.5, 12);
    expect(lin(14)).toBe(0);
    const cos = lrSchedule({ type: 'cosine', lr: 2, warmupSteps: 0, totalSteps: 10, minLr: 0.2 });
    expect(cos(0)).toBeCloseTo(2, 12);
    expect(cos(5)).toBeCloseTo(0.2 + 1.8 * 0.5, 12);
    expect(cos(10)).toBeCloseTo(0.2, 12);
    expect(lrSchedule({ type: 'constant', lr: 0.3 })(1000)).toBe(0.3);
    expect(() => lrSchedule({ type: 'cosine', lr: 1, warmupSteps: 5, totalSteps: 5 })).toThrow(OptionError);
  });
});
