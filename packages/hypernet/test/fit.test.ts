import * as tf from '@tensorflow/tfjs';
import { AdamW } from '@hyperllama/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { HypernetError, fit, trainStep } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A least-squares problem whose batch depends on the step: w·x ≈ y for x = step + 1. */
function problem() {
  const w = tf.variable(tf.tensor1d([0.5, -0.25]), true);
  const params = { w };
  const optimizer = new AdamW(params, { lr: 0.1, weightDecay: 0 });
  const loss = (step: number) => () =>
    tf.tidy(() => tf.square(tf.sub(tf.sum(tf.mul(w, tf.tensor1d([step + 1, 1]))), 3)).asScalar());
  return { w, params, optimizer, loss, dispose: () => (w.dispose(), optimizer.dispose()) };
}

describe('fit: the training loop', () => {
  it('takes the same steps as a hand-written loop of trainStep (schedule, clipping, objective per step)', async () => {
    const schedule = (step: number) => 0.1 / (step + 1);
    const a = problem();
    const losses: number[] = [];
    for (let step = 0; step < 5; step++)
      losses.push(
        (await trainStep(a.params, a.optimizer, a.loss(step), { lr: schedule(step), maxGradNorm: 0.5 })).loss,
      );
    const b = problem();
    const seen: number[] = [];
    const r = await fit({
      params: b.params,
      optimizer: b.optimizer,
      objective: b.loss,
      steps: 5,
      schedule,
      maxGradNorm: 0.5,
      onStep: (s) => void seen.push(s.loss),
    });
    expect(seen).toEqual(losses);
    expect(r).toEqual({ step: 5, stopped: false, firstLoss: losses[0], lastLoss: losses[4] });
    expect(b.w.dataSync()).toEqual(a.w.dataSync());
    a.dispose();
    b.dispose();
  });

  it('evaluates at the start and after the chosen steps, before onStep; resumes from startStep; stops on request', async () => {
    const p = problem();
    const events: string[] = [];
    const r = await fit({
      params: p.params,
      optimizer: p.optimizer,
      objective: (step) => (events.push(`objective ${step}`), p.loss(step)),
      steps: 6,
      startStep: 2,
      schedule: (step) => (events.push(`lr ${step}`), 0.01),
      evaluate: { at: (step) => step % 2 === 0, run: async (step) => void events.push(`evaluate ${step}`) },
      onStep: (s) => (events.push(`step ${s.step} lr ${s.lr}`), s.step === 4 ? 'stop' : undefined),
    });
    expect(events).toEqual([
      'evaluate 2',
      'lr 2',
      'objective 2',
      'step 3 lr 0.01',
      'lr 3',
      'objective 3',
      'evaluate 4',
      'step 4 lr 0.01',
    ]);
    expect([r.step, r.stopped]).toEqual([4, true]);
    p.dispose();
  });

  it('a non-finite loss throws before the parameters change; bad step counts are typed errors', async () => {
    const p = problem();
    const before = p.w.dataSync().slice();
    const err = await fit({
      params: p.params,
      optimizer: p.optimizer,
      objective: (step) => () => tf.mul(p.loss(step)(), NaN).asScalar(),
      steps: 1,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(HypernetError);
    expect((err as HypernetError).code).toBe('HYPERNET_NON_FINITE_LOSS');
    expect(p.w.dataSync()).toEqual(before);
    await expect(
      fit({ params: p.params, optimizer: p.optimizer, objective: p.loss, steps: 2, startStep: 3 }),
    ).rejects.toThrow(HypernetError);
    await expect(fit({ params: p.params, optimizer: p.optimizer, objective: p.loss, steps: -1 })).rejects.toThrow(
      HypernetError,
    );
    const none = await fit({ params: p.params, optimizer: p.optimizer, objective: p.loss, steps: 0 });
    expect(none).toEqual({ step: 0, stopped: false, firstLoss: NaN, lastLoss: NaN });
    p.dispose();
  });
});
