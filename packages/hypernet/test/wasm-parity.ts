import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { EpisodeSampler, collateHyperLlama, makeSyntheticTask } from '@hyperllama/datasets';
import { disposeBackend, initBackend, loadNativeBlas, type MatMulPath } from '@hyperllama/runtime';
import { HyperLlama } from '../src/index.js';
import { charEncoder, tinyModel } from './helpers.js';

/** Loss and gradient norms of one HyperLlama batch on the current backend. */
function lossAndGrads(): number[] {
  const tasks = [makeSyntheticTask('constant', 'c1', { seed: 1, numExamples: 4, numInstances: 4 })];
  const model = tinyModel(2);
  const hl = new HyperLlama(model, { k: 2, downstream: { r: 2 }, seed: 3 });
  const params = hl.trainableVariables();
  for (const [n, v] of Object.entries(params))
    if (n.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', 5));
  const sampler = new EpisodeSampler(tasks, { seed: 0, k: 2 });
  const batch = collateHyperLlama([sampler.next(), sampler.next()], { encoder: charEncoder, gistIds: hl.gistIds });
  const { value, grads } = tf.variableGrads(() => hl.loss(batch), Object.values(params));
  const out = [
    value.dataSync()[0],
    ...Object.values(params).map((v) => tf.tidy(() => tf.norm(grads[v.name]).dataSync()[0])),
  ];
  tf.dispose([value, ...Object.values(grads)]);
  hl.dispose();
  model.dispose();
  return out;
}

/** HyperLlama's loss and gradients on wasm with the given matMul path (`auto`: the native addon where it loads) against
 * the cpu backend's. Run by wasm.test.ts (default path) and wasm-xnnpack.test.ts (pure wasm). */
export function describeWasmParity(matMul: Extract<MatMulPath, 'auto' | 'xnnpack'>): void {
  afterAll(() => disposeBackend());
  describe(`wasm backend (matMul ${matMul})`, () => {
    it("gives the cpu backend's HyperLlama loss and gradients (with the OneHot fix)", async () => {
      await initBackend({ backend: 'cpu' });
      const cpu = lossAndGrads();
      const info = await initBackend({ backend: 'wasm', threads: 1, matMul });
      expect(info.matMul).toBe(matMul === 'auto' && loadNativeBlas().blas ? 'openblas' : 'xnnpack');
      const wasm = lossAndGrads();
      wasm.forEach((x, i) => expect(x, `entry ${i}`).toBeCloseTo(cpu[i], 3));
    });
  });
}
