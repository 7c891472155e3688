import * as tf from '@tensorflow/tfjs';
import { it } from 'vitest';
import { EpisodeSampler, collateZeroShot, makeSyntheticTask } from '@hyperllama/datasets';
import { AdamW, initBackend } from '@hyperllama/runtime';
import { LoraBaseline, trainStep } from '../src/index.js';
import { charEncoder, tinyModel } from './helpers.js';
it('dbg', async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  const tasks = ['c1', 'c2'].map((v) => makeSyntheticTask('constant', v, { seed: 3, numExamples: 16, numInstances: 16 }));
  const plain = tinyModel(1);
  const zs = new LoraBaseline(plain, 'zero-shot', { r: 8, alpha: 16, targetModules: 'all-linear', seed: 1 });
  const sampler = new EpisodeSampler(tasks, { seed: 1, k: 0 });
  const params = zs.trainableVariables();
  console.log(Object.keys(params).length, Object.values(params).map((v) => v.name).slice(0, 3));
  const opt = new AdamW(params, { lr: 3e-3, weightDecay: 0 });
  const batch = collateZeroShot(Array.from({ length: 4 }, () => sampler.next()), { encoder: charEncoder });
  console.log(JSON.stringify(batch.labels[0]), JSON.stringify(batch.inputIds[0]));
  for (let s = 0; s < 20; s++) {
    const r = trainStep(params, opt, () => zs.loss(batch, { training: true }), { maxGradNorm: 1 });
    if (s % 5 === 0) console.log(s, r);
  }
});
