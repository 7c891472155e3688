import * as tf from '@tensorflow/tfjs';
import { clipByGlobalNorm, type NamedGradients, type Optimizer } from '@hyperllama/runtime';
import { HypernetError } from './errors.js';

export interface TrainStepOptions {
  /** Learning rate of this update (default: the optimizer's). */
  lr?: number;
  /** Clip the global gradient norm to this (default: no clipping). */
  maxGradNorm?: number;
}

/**
 * One optimisation step: gradients of `lossFn()` with respect to `params` (named as the optimizer knows them),
 * optional global-norm clipping, one optimizer update. Every intermediate tensor is freed, so the number of live
 * tensors does not grow from step to step. A NaN or infinite loss or gradient norm throws `HYPERNET_NON_FINITE_LOSS`
 * BEFORE the parameters change. Values are read asynchronously, so it also runs on webgpu.
 */
export async function trainStep(
  params: Record<string, tf.Variable>,
  optimizer: Optimizer,
  lossFn: () => tf.Scalar,
  opts: TrainStepOptions = {},
): Promise<{ loss: number; gradNorm: number }> {
  const nameOf = new Map(Object.entries(params).map(([name, v]) => [v.name, name]));
  const { value, grads } = tf.variableGrads(lossFn, Object.values(params));
  const named: NamedGradients = {};
  for (const [varName, g] of Object.entries(grads)) named[nameOf.get(varName)!] = g;
  try {
    let loss: number;
    try {
      loss = (await value.data())[0];
    } finally {
      value.dispose();
    }
    const { grads: clipped, norm } = await clipByGlobalNorm(named, opts.maxGradNorm ?? Number.MAX_VALUE);
    try {
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
        throw new HypernetError(
          'HYPERNET_NON_FINITE_LOSS',
          `training diverged: loss = ${loss}, gradient norm = ${norm}; no update was applied`,
          {
            field: 'loss',
            expected: 'a finite number',
            actual: loss,
            gradNorm: norm,
          },
        );
      }
      optimizer.step(clipped, opts.lr);
      return { loss, gradNorm: norm };
    } finally {
      tf.dispose(Object.values(clipped));
    }
  } finally {
    tf.dispose(Object.values(grads));
  }
}
