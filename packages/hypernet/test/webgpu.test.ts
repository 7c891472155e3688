import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findWebGPUAdapter } from '../../../tools/scripts/webgpu-adapter.mjs';
import { EpisodeSampler, collateHyperLlama, makeSyntheticTask } from '@hyperllama/datasets';
import { Sgd, disposeBackend, initBackend } from '@hyperllama/runtime';
import { HyperLlama, HypernetError, PrefixTuning, trainStep } from '../src/index.js';
import { charEncoder, tinyModel } from './helpers.js';

// Training on the webgpu backend (Mesa's llvmpipe through OpenGL ES where there is no GPU), which in Node reads
// tensors only asynchronously.
// Whether an adapter exists is asked of Dawn directly, before our code runs: only its absence skips; any error from
// initBackend itself fails.
const found = await findWebGPUAdapter();
if (!found.adapter) console.warn(`[webgpu.test] skipped: ${found.why}`);

const tasks = ['c1', 'c2'].map((v) => makeSyntheticTask('constant', v, { seed: 1, numExamples: 8, numInstances: 8 }));

describe.skipIf(!found.adapter)(`training on the webgpu backend (${found.adapter ?? found.why})`, () => {
  beforeAll(async () => {
    expect((await initBackend({ backend: 'webgpu' })).name).toBe('webgpu');
  });
  afterAll(async () => {
    await disposeBackend();
  });

  it('initialisations that read statistics say so; built on cpu, a HyperLlama trains on webgpu exactly as on cpu', async () => {
    void tf.setBackend('webgpu');
    const onGpu = tinyModel(3);
    const error = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as HypernetError;
      }
      throw new Error('expected an error');
    };
    expect(error(() => new HyperLlama(onGpu, { k: 2, seed: 1 })).code).toBe('HYPERNET_NEEDS_SYNC_READ');
    expect(error(() => PrefixTuning.random(onGpu, 2, { sampleIds: [[1, 5, 6]], seed: 0 })).message).toMatch(
      /webgpu backend cannot/,
    );
    onGpu.dispose();

    const losses = async (backendForSteps: string) => {
      void tf.setBackend('cpu');
      const model = tinyModel(3);
      const hl = new HyperLlama(model, { k: 2, hyper: { r: 2 }, seed: 1 });
      const sampler = new EpisodeSampler(tasks, { seed: 2, k: 2 });
      const batch = collateHyperLlama(
        Array.from({ length: 3 }, () => sampler.next()),
        { encoder: charEncoder, gistIds: hl.gistIds },
      );
      void tf.setBackend(backendForSteps);
      // Plain SGD: Adam's normalisation would turn last-bit differences of near-zero gradients into full steps.
      const optimizer = new Sgd(hl.trainableVariables(), { lr: 0.5 });
      const out: number[] = [];
      for (let s = 0; s < 4; s++)
        out.push(
          (
            await trainStep(hl.trainableVariables(), optimizer, () => hl.loss(batch, { training: true }), {
              maxGradNorm: 1,
            })
          ).loss,
        );
      optimizer.dispose();
      hl.dispose();
      model.dispose();
      return out;
    };
    const cpu = await losses('cpu');
    const gpu = await losses('webgpu');
    expect(gpu[3]).toBeLessThan(gpu[0]);
    gpu.forEach((l, s) => expect(Math.abs(l - cpu[s]), `step ${s}`).toBeLessThan(1e-4));
  });
});
