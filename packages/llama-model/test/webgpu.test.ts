import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendError, disposeBackend, initBackend } from '@hyperllama/runtime';
import { loadTokenizer } from '@hyperllama/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, loadLlama } from '../src/index.js';
import { FIXTURES, STORIES, maxAbsDiff, readReference } from './helpers.js';

// Generation on the webgpu backend (on a machine without a GPU: Mesa's llvmpipe through OpenGL ES), which in Node
// can only read tensors asynchronously: logits and greedy tokens must equal the reference and the cpu backend's.
const started = await initBackend({ backend: 'webgpu' }).then(
  (info) => ({ ok: true as const, why: info.reason }),
  (e: unknown) => ({ ok: false as const, why: e instanceof BackendError ? e.message : String(e) }),
);
if (!started.ok) console.warn(`[webgpu.test] skipped: ${started.why}`);

const dir = join(FIXTURES, 'tiny-untied-padded');
const ref = readReference(join(dir, 'reference.safetensors'));
const prompts = [ref.ids[0], ref.ids[1].filter((_, t) => ref.mask[1][t] === 1)];

describe.skipIf(!started.ok)(`on the webgpu backend (${started.why})`, () => {
  let cpuTokens: number[][];
  beforeAll(async () => {
    tf.setBackend('cpu');
    const model = loadLlama(dir, { trainable: false });
    cpuTokens = (await generate(model, prompts, { maxNewTokens: 10, stopIds: [] })).tokens;
    model.dispose();
    tf.setBackend('webgpu');
  });
  afterAll(async () => {
    await disposeBackend();
  });

  it('logits match the NumPy reference to 1e-4 and a left-padded batch decodes as on cpu', async () => {
    const model = loadLlama(dir, { trainable: false });
    const [B, T] = [ref.ids.length, ref.ids[0].length];
    const inputs = [tf.tensor2d(ref.ids, [B, T], 'int32'), tf.tensor2d(ref.mask, [B, T], 'int32'), tf.tensor2d(ref.positions, [B, T], 'int32')];
    const logits = model.forward({ inputIds: inputs[0], attentionMask: inputs[1], positionIds: inputs[2] }).logits!;
    const values = (await logits.array()) as number[][][];
    let worst = 0;
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) if (ref.mask[b][t] === 1) worst = Math.max(worst, maxAbsDiff(values[b][t], ref.logits[b][t]));
    expect(worst).toBeLessThan(1e-4);
    const { tokens } = await generate(model, prompts, { maxNewTokens: 10, stopIds: [] });
    expect(tokens).toEqual(cpuTokens);
    tf.dispose([logits, ...inputs]);
    model.dispose();
  });

  const storiesBin = join(STORIES, 'stories260K.bin');
  it.skipIf(!existsSync(storiesBin))(`stories260K decodes llama2.c's greedy text exactly (needs ${storiesBin})`, async () => {
    const stories = loadLlama(storiesBin);
    const tokenizer = loadTokenizer(join(STORIES, 'tok512.bin'));
    const result = await generate(stories, [[1]], { maxNewTokens: 256, stopIds: [1], tokenizer });
    expect(result.texts![0] + '\n').toBe(readFileSync(join(STORIES, 'expected_greedy.txt'), 'utf8'));
    stories.dispose();
  });
});
