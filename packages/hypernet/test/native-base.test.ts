import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlama, validateLlamaConfig, writeRandomLlamaDir } from '@hyperllama/llama-model';
import { disposeBackend, initBackend, loadNativeFrozen } from '@hyperllama/runtime';
import { HyperLlama, HypernetError, baseModelHash, loadHyperLlama, saveHyperLlama } from '../src/index.js';

// A HyperLlama checkpoint names its base by a hash of the base's weights; with the base's linear weights in native
// memory (@hyperllama/llama-model's loadLlama(dir, { weights })) the same values must hash the same.
const native = loadNativeFrozen();

describe.skipIf(!native.frozen)(`checkpoints on a base with native-memory weights (${native.why})`, () => {
  let root: string;
  beforeAll(async () => {
    await initBackend({ backend: 'wasm', threads: 1 });
    root = mkdtempSync(join(tmpdir(), 'hl-native-base-'));
    const config = validateLlamaConfig({
      vocabSize: 96,
      hiddenSize: 64,
      intermediateSize: 128,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      maxPositionEmbeddings: 128,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      tieWordEmbeddings: false,
      bosTokenId: 1,
      eosTokenId: 2,
    });
    writeRandomLlamaDir(join(root, 'base'), config, { seed: 4, dtype: 'BF16', std: 0.1 });
  });
  afterAll(async () => {
    rmSync(root, { recursive: true, force: true });
    await disposeBackend();
  });

  it('hashes a bf16 base the same in the heap and as native fp32/bf16, differently as NF4; a heap-trained checkpoint loads onto the native base', () => {
    const base = join(root, 'base');
    const heap = loadLlama(base, { trainable: false });
    const hashes = Object.fromEntries(
      (['fp32', 'bf16', 'nf4'] as const).map((w) => {
        const m = loadLlama(base, { weights: w, trainable: false });
        const h = baseModelHash(m);
        m.dispose();
        return [w, h];
      }),
    );
    const heapHash = baseModelHash(heap);
    expect(hashes.fp32).toBe(heapHash);
    expect(hashes.bf16).toBe(heapHash);
    expect(hashes.nf4).not.toBe(heapHash);

    const hl = new HyperLlama(heap, { k: 2, hyper: { r: 4, alpha: 8 }, seed: 3 });
    for (const [n, v] of Object.entries(hl.trainableVariables()))
      if (n.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.2, 'float32', 9));
    saveHyperLlama(hl, join(root, 'ckpt'), { basePath: base });
    const hyper = {
      inputIds: [[1, 10, 20, 30, 96, 97]], // [BOS] examples… then the 2 gists (ids 96, 97)
      attentionMask: [[1, 1, 1, 1, 1, 1]],
      gistPositions: [[4, 5]],
      lengths: [6],
      numExamples: [1],
    };
    const keys = (h: HyperLlama) =>
      tf.tidy(() => {
        const prefix = h.encode(hyper);
        const k1 = prefix.keys[1].dataSync();
        prefix.dispose();
        return k1;
      });
    const expected = keys(hl);
    const nat = loadLlama(base, { weights: 'bf16', trainable: false });
    const { hyperllama } = loadHyperLlama(join(root, 'ckpt'), nat);
    const got = keys(hyperllama);
    let d = 0;
    for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i] - expected[i]));
    expect(d).toBeLessThan(1e-4);
    const q = loadLlama(base, { weights: 'nf4', trainable: false });
    expect(() => loadHyperLlama(join(root, 'ckpt'), q)).toThrowError(HypernetError);
    for (const m of [hl, hyperllama]) m.dispose();
    for (const m of [heap, nat, q]) m.dispose();
  });
});
