import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadLlama } from '../src/index.js';
import { FIXTURES, STORIES, maxAbsDiff, readReference } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Forward the reference batch (left padding, its position ids) and compare logits at real (unpadded) positions. */
function compareToReference(modelPath: string, referencePath: string): number {
  const ref = readReference(referencePath);
  const model = loadLlama(modelPath);
  const B = ref.ids.length;
  const T = ref.ids[0].length;
  const logits = tf.tidy(() =>
    model
      .forward({
        inputIds: tf.tensor2d(ref.ids, [B, T], 'int32'),
        attentionMask: tf.tensor2d(ref.mask, [B, T], 'int32'),
        positionIds: tf.tensor2d(ref.positions, [B, T], 'int32'),
      })
      .logits!.arraySync(),
  ) as number[][][];
  model.dispose();
  let worst = 0;
  let compared = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      if (ref.mask[b][t] !== 1) continue;
      worst = Math.max(worst, maxAbsDiff(logits[b][t], ref.logits[b][t]));
      compared++;
    }
  }
  expect(compared).toBeGreaterThan(0);
  return worst;
}

describe('logits match the NumPy reference (tools/reference/llama_reference.py) to 1e-4', () => {
  it('random HF model: GQA (6 heads, 2 KV heads), tied head', () => {
    const dir = join(FIXTURES, 'tiny-gqa-tied');
    expect(compareToReference(dir, join(dir, 'reference.safetensors'))).toBeLessThan(1e-4);
  });

  it('random HF model: untied head, rope_theta 100, head_dim ≠ hidden/heads, batch of 3 with left padding', () => {
    const dir = join(FIXTURES, 'tiny-untied-padded');
    expect(compareToReference(dir, join(dir, 'reference.safetensors'))).toBeLessThan(1e-4);
  });

  it("llama2.c .bin with GQA and an untied classifier, against llama2.c's own adjacent-pair RoPE", () => {
    const diff = compareToReference(
      join(FIXTURES, 'tiny-llama2c-untied.bin'),
      join(FIXTURES, 'tiny-llama2c-untied.reference.safetensors'),
    );
    expect(diff).toBeLessThan(1e-4);
  });
});

const storiesBin = join(STORIES, 'stories260K.bin');
describe.skipIf(!existsSync(storiesBin))(`stories260K (needs ${storiesBin})`, () => {
  it('three prompts (1, 12, 24 tokens) as one left-padded batch match llama2.c-convention logits to 1e-4', () => {
    expect(compareToReference(storiesBin, join(FIXTURES, 'stories260k.reference.safetensors'))).toBeLessThan(1e-4);
  });
});
