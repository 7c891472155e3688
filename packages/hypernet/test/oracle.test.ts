import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { collateHyperLlama, type HyperBatch, type PromptTemplate, type TokenEncoder } from '@hyperllama/datasets';
import { loadLlama } from '@hyperllama/llama-model';
import {
  disposeBackend,
  initBackend,
  readSafetensors,
  toFloat32,
  toInt32,
  type SafetensorsEntry,
} from '@hyperllama/runtime';
import { loadHyperLlama } from '../src/index.js';

/**
 * HyperLlama against the independent NumPy oracle tools/reference/hyperllama_reference.py (float64, written from the
 * paper and the file formats). Fixtures: tools/reference/hyperllama_fixture.ts writes a tiny GQA base (4 query heads,
 * 2 KV heads, head_dim 8, untied head) and two checkpoints with trained (B ≠ 0) LoRA weights through saveHyperLlama;
 * the oracle reads those files and writes each checkpoint's reference.safetensors (prefix, logits, loss).
 */
const FIXTURES = join(__dirname, 'fixtures', 'hyperllama-oracle');
const TOL = 1e-5; // per element: |ts − ref| ≤ TOL · max(1, |ref|) (float32 against float64; values reach ~8)

interface Reference {
  tensors: Map<string, SafetensorsEntry>;
  meta: Record<string, string>;
}

function readReference(scheme: string): Reference {
  const file = readSafetensors(join(FIXTURES, scheme, 'reference.safetensors'));
  return { tensors: file.tensors, meta: file.metadata ?? {} };
}

const f32 = (ref: Reference, name: string) => toFloat32(ref.tensors.get(name)!, name);
function rows(ref: Reference, name: string): number[][] {
  const e = ref.tensors.get(name)!;
  const flat = [...toInt32(e, name)];
  const [B, T] = e.shape;
  return Array.from({ length: B }, (_, b) => flat.slice(b * T, (b + 1) * T));
}

/**
 * Largest |a − b| / max(1, |b|) over the elements (shapes must agree); with `rowMask` [B][T], only over the real
 * tokens of [B, T, …] tensors (a padding position's output is never used, and the two sides need not agree there).
 */
function worstError(actual: tf.Tensor, expected: Float32Array, shape: number[], rowMask?: number[][]): number {
  expect(actual.shape).toEqual(shape);
  const a = actual.dataSync();
  const inner = rowMask ? expected.length / (shape[0] * shape[1]) : 1;
  let worst = 0;
  let compared = 0;
  for (let i = 0; i < expected.length; i++) {
    const t = Math.floor(i / inner);
    if (rowMask && rowMask[Math.floor(t / shape[1])][t % shape[1]] !== 1) continue;
    worst = Math.max(worst, Math.abs(a[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
    compared++;
  }
  expect(compared).toBeGreaterThan(0);
  return worst;
}

function batchOf(ref: Reference): HyperBatch {
  const hyperIds = rows(ref, 'hyper.input_ids');
  const downIds = rows(ref, 'input_ids');
  return {
    hyper: {
      inputIds: hyperIds,
      attentionMask: rows(ref, 'hyper.attention_mask'),
      gistPositions: rows(ref, 'hyper.gist_positions'),
      lengths: rows(ref, 'hyper.attention_mask').map((r) => r.reduce((a, b) => a + b, 0)),
      numExamples: hyperIds.map(() => 1),
    },
    downstream: {
      inputIds: downIds,
      attentionMask: rows(ref, 'attention_mask'),
      labels: rows(ref, 'labels'),
      lengths: rows(ref, 'attention_mask').map((r) => r.reduce((a, b) => a + b, 0)),
    },
  };
}

afterAll(() => disposeBackend());

/** Token ids written as text ("5 6 7"), so the collator can be fed the oracle's id rows as they are. */
const idEncoder = (padId: number, bosId: number): TokenEncoder => ({
  encode: (text) =>
    text
      .split(' ')
      .filter((t) => t !== '')
      .map(Number),
  bosId,
  eosId: -1,
  padId,
});
const ID_TEMPLATE: PromptTemplate = {
  definition: (d) => d,
  prompt: (input) => `${input} `,
  answer: (output) => output,
  separator: '',
};

const batchJson = JSON.parse(readFileSync(join(FIXTURES, 'batch.json'), 'utf8'));

describe.each(['cpu', 'wasm'] as const)('HyperLlama matches the NumPy oracle (%s backend)', (backend) => {
  it.each(['restart', 'continue'])(
    '%s checkpoint: padded batch, prefix K/V per layer, offsets, logits and answer loss',
    async (scheme) => {
      await initBackend({ backend, threads: 1 });
      const ref = readReference(scheme);
      const model = loadLlama(join(FIXTURES, 'base'));
      const { hyperllama: hl, config } = loadHyperLlama(join(FIXTURES, scheme), model);
      expect(config.scheme).toBe(scheme);
      expect(model.config.numKeyValueHeads).toBeLessThan(model.config.numAttentionHeads); // GQA
      const batch = batchOf(ref);

      // The oracle's padding is the project's: the collator, fed the same ids, gives the same hyper ids, masks and gist
      // columns, and the same downstream ids and labels behind its BOS column (the oracle's downstream rows have no BOS).
      const collated = collateHyperLlama(
        batchJson.hyper.map((row: number[], b: number) => ({
          task: {},
          examples: [{ input: row.slice(1).join(' '), output: '' }],
          target: { input: batchJson.contexts[b].join(' '), output: batchJson.targets[b].join(' ') },
        })),
        {
          encoder: idEncoder(batchJson.pad_id, batchJson.hyper[0][0]),
          template: ID_TEMPLATE,
          gistIds: hl.gistIds,
          eos: false,
        },
      );
      expect(collated.hyper.inputIds).toEqual(batch.hyper.inputIds);
      expect(collated.hyper.attentionMask).toEqual(batch.hyper.attentionMask);
      expect(collated.hyper.gistPositions).toEqual(batch.hyper.gistPositions);
      expect(collated.downstream.inputIds.map((r) => r.slice(1))).toEqual(batch.downstream.inputIds);
      expect(collated.downstream.labels.map((r) => r.slice(1))).toEqual(batch.downstream.labels);

      // Prefix: per layer keys/values [B=3, nKvHeads=2, k=3, headDim=8]; restart offsets k, continue one past the last gist.
      const prefix = hl.encode(batch.hyper);
      const L = model.config.numHiddenLayers;
      expect(prefix.keys.length).toBe(L);
      expect(prefix.positionOffsets).toEqual([...toInt32(ref.tensors.get('position_offsets')!)]);
      let worstKV = 0;
      for (let l = 0; l < L; l++) {
        const shape = ref.tensors.get(`layers.${l}.keys`)!.shape;
        worstKV = Math.max(worstKV, worstError(prefix.keys[l], f32(ref, `layers.${l}.keys`), shape));
        worstKV = Math.max(worstKV, worstError(prefix.values[l], f32(ref, `layers.${l}.values`), shape));
      }
      expect(worstKV).toBeLessThan(TOL);

      // Downstream logits behind the prefix [B, T, V] (hyper adapter off, downstream adapter on where saved).
      const logits = tf.tidy(() => {
        const hidden = hl.downstreamHidden(batch.downstream, prefix);
        const [B, T, D] = hidden.shape;
        return tf.reshape(model.logitsFromHidden(tf.reshape(hidden, [B * T, D]) as tf.Tensor2D), [B, T, -1]);
      });
      const worstLogit = worstError(
        logits,
        f32(ref, 'logits'),
        ref.tensors.get('logits')!.shape,
        batch.downstream.attentionMask,
      );
      expect(worstLogit).toBeLessThan(TOL);

      // Answer loss: mean NLL over the labelled target tokens of the batch (nats/token).
      const expected = Number(ref.meta.loss);
      const loss = tf.tidy(() => hl.loss(batch).dataSync()[0]);
      expect(Math.abs(loss - expected)).toBeLessThan(TOL);
      console.log(
        `${backend} ${scheme}: max rel/abs error prefix ${worstKV.toExponential(2)}, logits ${worstLogit.toExponential(2)}, loss ${loss.toFixed(7)} vs ${expected.toFixed(7)}`,
      );

      prefix.dispose();
      logits.dispose();
      hl.dispose();
      model.dispose();
    },
  );
});

describe('the oracle fixture can tell a wrong prefix from the right one', () => {
  it('the two checkpoints differ in their prefixes by far more than the tolerance', () => {
    const a = readReference('restart');
    const b = readReference('continue');
    let gap = 0;
    const ka = f32(a, 'layers.0.keys');
    const kb = f32(b, 'layers.0.keys');
    for (let i = 0; i < ka.length; i++) gap = Math.max(gap, Math.abs(ka[i] - kb[i]));
    expect(gap).toBeGreaterThan(1000 * TOL);
    // continue offsets are per row (the hyper rows have 11, 6 and 14 real tokens + 3 gists); restart's are all k = 3
    expect([...toInt32(a.tensors.get('position_offsets')!)]).toEqual([3, 3, 3]);
    expect([...toInt32(b.tensors.get('position_offsets')!)]).toEqual([14, 9, 17]);
  });
});
