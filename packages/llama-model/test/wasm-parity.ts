import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { disposeBackend, initBackend, loadNativeBlas, type MatMulPath } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findDenseBase, generate, lmLoss, loadLlama } from '../src/index.js';
import { FIXTURES, maxAbsDiff, readReference } from './helpers.js';

// The same model code on the wasm backend (with the runtime's kernel overrides) against the NumPy reference, and its
// gradients and greedy tokens against the cpu backend's. Run by wasm.test.ts on the default path (the native addon
// where one loads, as in CI on linux-x64) and by wasm-xnnpack.test.ts on pure wasm.
const dir = join(FIXTURES, 'tiny-untied-padded');
const ref = readReference(join(dir, 'reference.safetensors'));
const B = ref.ids.length;
const T = ref.ids[0].length;

/** Logits for the reference batch, the loss gradient for layer 0's q_proj, and a greedy continuation. */
async function runAll() {
  const model = loadLlama(dir, { trainable: false });
  const q = findDenseBase(model.getLinear('layers.0.self_attn.q_proj'))!.weight;
  q.trainable = true;
  const ids = tf.tensor2d(ref.ids, [B, T], 'int32');
  const attentionMask = tf.tensor2d(ref.mask, [B, T], 'int32');
  const positionIds = tf.tensor2d(ref.positions, [B, T], 'int32');
  const logits = tf.tidy(() =>
    model.forward({ inputIds: ids, attentionMask, positionIds }).logits!.arraySync(),
  ) as number[][][];
  const grad = tf.tidy(() => {
    const { grads } = tf.variableGrads(
      () =>
        lmLoss(model, model.forward({ inputIds: ids, attentionMask, positionIds, returnHidden: true }).hidden!, ids),
      [q],
    );
    return grads[q.name].dataSync();
  });
  const { tokens } = await generate(model, [ref.ids[0], ref.ids[1].filter((_, t) => ref.mask[1][t] === 1)], {
    maxNewTokens: 10,
    stopIds: [],
  });
  tf.dispose([ids, attentionMask, positionIds]);
  model.dispose();
  return { logits, grad, tokens };
}

/** The parity tests on wasm with the given matMul path (`auto`: the native addon where it loads). */
export function describeWasmParity(matMul: Extract<MatMulPath, 'auto' | 'xnnpack'>): void {
  let cpu: Awaited<ReturnType<typeof runAll>>;
  let wasm: Awaited<ReturnType<typeof runAll>>;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    cpu = await runAll();
    const info = await initBackend({ backend: 'wasm', matMul });
    // The default path is the native one wherever an addon loads: that is what these tests then cover.
    expect(info.matMul).toBe(matMul === 'auto' && loadNativeBlas().blas ? 'openblas' : 'xnnpack');
    wasm = await runAll();
  });
  afterAll(async () => {
    await disposeBackend();
  });

  describe(`on the wasm backend (matMul ${matMul})`, () => {
    it('logits match the NumPy reference to 1e-4 at every real position', () => {
      let worst = 0;
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++)
          if (ref.mask[b][t] === 1) worst = Math.max(worst, maxAbsDiff(wasm.logits[b][t], ref.logits[b][t]));
      expect(worst).toBeLessThan(1e-4);
    });

    it('loss gradients and greedy generation agree with the cpu backend', () => {
      expect(maxAbsDiff(wasm.grad, cpu.grad)).toBeLessThan(1e-4 * Math.max(1, ...Array.from(cpu.grad, Math.abs)));
      expect(wasm.tokens).toEqual(cpu.tokens);
    });
  });
}
