import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findWebGPUAdapter } from '../../../tools/scripts/webgpu-adapter.mjs';
import { makeSyntheticTask, SYNTHETIC_FAMILIES, type Task } from '@hyperllama/datasets';
import { HyperLlama } from '@hyperllama/hypernet';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { evaluate } from '../src/index.js';
import { charTokenizer, tinyModel } from './helpers.js';

// Evaluation on the webgpu backend (Mesa's llvmpipe through OpenGL ES where there is no GPU), which in Node reads
// tensors only asynchronously: rank classification and generation must score exactly as on the cpu backend.
// Whether an adapter exists is asked of Dawn directly, before our code runs: only its absence skips; any error from
// initBackend itself fails.
const found = await findWebGPUAdapter();
if (!found.adapter) console.warn(`[webgpu.test] skipped: ${found.why}`);

const family = (name: string) => SYNTHETIC_FAMILIES.find((f) => f.name === name)!;
const tasks: Task[] = [
  makeSyntheticTask('symbol_rule', family('symbol_rule').variants[0], { seed: 4, numExamples: 8, numInstances: 6 }),
  { ...makeSyntheticTask('constant', 'c1', { seed: 4, numExamples: 8, numInstances: 3 }), metric: 'rougeL' },
];

describe.skipIf(!found.adapter)(`evaluation on the webgpu backend (${found.adapter ?? found.why})`, () => {
  beforeAll(async () => {
    expect((await initBackend({ backend: 'webgpu' })).name).toBe('webgpu');
  });
  afterAll(async () => {
    await disposeBackend();
  });

  it('zero-shot, ICL, HyperLlama and the swap control score every instance as on the cpu backend', async () => {
    void tf.setBackend('cpu');
    const model = tinyModel(2);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, seed: 1 });
    const settings = { model, tokenizer: charTokenizer, hyperllama: hl, maxNewTokens: 6, batchSize: 4 };
    const options = { methods: ['zero-shot', 'icl', 'hyperllama'] as const, shots: 2, seed: 3 };
    const scoresOf = async () =>
      (await evaluate(tasks, settings, { ...options, methods: [...options.methods] })).map((r) =>
        r.scores.map((s) => s.scores),
      );
    const lossesOf = async () =>
      (await evaluate(tasks, settings, { ...options, methods: [...options.methods] })).map((r) =>
        r.scores.map((s) => s.answerLoss!),
      );
    const onCpu = await scoresOf();
    const lossCpu = await lossesOf();
    // The same variables, moved to the GPU backend on first use.
    void tf.setBackend('webgpu');
    const onGpu = await scoresOf();
    const lossGpu = await lossesOf();
    expect(onGpu).toEqual(onCpu);
    expect(onCpu.flat(2).length).toBe(4 * (6 + 3)); // zero-shot, icl, hyperllama, hyperllama-swap
    lossGpu.flat(2).forEach((l, i) => expect(l).toBeCloseTo(lossCpu.flat(2)[i], 3));
    hl.dispose();
    model.dispose();
  });
});
