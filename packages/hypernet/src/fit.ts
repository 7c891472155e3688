import type * as tf from '@tensorflow/tfjs';
import type { Optimizer } from '@hyperllama/runtime';
import { bad } from './errors.js';
import { trainStep } from './train-step.js';

/** What one optimisation step of {@link fit} did. */
export interface FitStep {
  /** Steps taken so far, this one included (1 after the first step). */
  step: number;
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate of this update (undefined: the optimizer's own). */
  lr: number | undefined;
}

export interface FitOptions {
  /** The trained variables, named as the optimizer knows them. */
  params: Record<string, tf.Variable>;
  optimizer: Optimizer;
  /**
   * The objective of the step about to be taken (`step` = steps taken so far): returns the closure whose scalar is
   * differentiated. Draw the step's batch here (it is called exactly once per step, in order); make adapters active
   * inside the closure when the loss needs them.
   */
  objective: (step: number) => () => tf.Scalar;
  /** The step count at which the run ends. */
  steps: number;
  /** Steps already taken: a resumed run continues from here (default 0). */
  startStep?: number;
  /** Learning rate of the update taken at `step` (default: the optimizer's own). */
  schedule?: (step: number) => number;
  /** Clip the global gradient norm to this before each update (default: no clipping). */
  maxGradNorm?: number;
  /**
   * Evaluation hook: `run(step)` wherever `at(step)` holds, for the starting step (before any update) and after
   * every step, before `onStep`.
   */
  evaluate?: { at: (step: number) => boolean; run: (step: number) => void | Promise<void> };
  /** Progress and checkpoint hook, after every step; returning `'stop'` ends the run there. */
  onStep?: (s: FitStep) => void | 'stop' | Promise<void | 'stop'>;
}

export interface FitResult {
  /** Steps taken in all (`steps` unless stopped). */
  step: number;
  stopped: boolean;
  /** Training loss of the first and the last step taken by this call (NaN when none). */
  firstLoss: number;
  lastLoss: number;
}

/**
 * The training loop every trainer of the project runs (the trainer's stages, prefix tuning, the analyses, the
 * benchmarks): from `startStep` to `steps`, one {@link trainStep} per step on `objective(step)` at
 * `schedule(step)` with optional clipping, an evaluation hook and a per-step hook. A non-finite loss throws
 * `HYPERNET_NON_FINITE_LOSS` before the parameters change (the step count in `onStep` says how far it got).
 */
export async function fit(o: FitOptions): Promise<FitResult> {
  const start = o.startStep ?? 0;
  if (!Number.isInteger(o.steps) || o.steps < 0) bad('HYPERNET_BAD_OPTION', 'steps', 'an integer >= 0', o.steps);
  if (!Number.isInteger(start) || start < 0 || start > o.steps)
    bad('HYPERNET_BAD_OPTION', 'startStep', `an integer in 0..${o.steps}`, start);
  const result: FitResult = { step: start, stopped: false, firstLoss: NaN, lastLoss: NaN };
  if (o.evaluate?.at(start)) await o.evaluate.run(start);
  while (result.step < o.steps) {
    const lr = o.schedule?.(result.step);
    const lossFn = o.objective(result.step);
    const { loss, gradNorm } = await trainStep(o.params, o.optimizer, lossFn, { lr, maxGradNorm: o.maxGradNorm });
    result.step++;
    if (Number.isNaN(result.firstLoss)) result.firstLoss = loss;
    result.lastLoss = loss;
    if (o.evaluate?.at(result.step)) await o.evaluate.run(result.step);
    if ((await o.onStep?.({ step: result.step, loss, gradNorm, lr })) === 'stop') {
      result.stopped = true;
      break;
    }
  }
  return result;
}
