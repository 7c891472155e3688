import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { createLlama, loadLlama, validateLlamaConfig, writeRandomLlamaDir } from '../src/index.js';
import { maxAbsDiff } from './helpers.js';

const config = validateLlamaConfig({
  vocabSize: 50,
  hiddenSize: 32,
  intermediateSize: 64,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 8,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
});

describe('writeRandomLlamaDir', () => {
  let root: string;
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    root = mkdtempSync(join(tmpdir(), 'hl-random-dir-'));
  });
  afterAll(async () => {
    rmSync(root, { recursive: true, force: true });
    await disposeBackend();
  });

  it('writes createLlama’s weights (same seed) as a sharded HF directory that loadLlama reads back exactly', () => {
    const dir = join(root, 'f32');
    const { files, bytes } = writeRandomLlamaDir(dir, config, { seed: 3, dtype: 'F32', shardBytes: 20_000 });
    expect(files.length).toBeGreaterThan(2);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
      weight_map: Record<string, string>;
      metadata: { total_size: number };
    };
    expect(index.metadata.total_size).toBe(bytes);
    expect(new Set(Object.values(index.weight_map)).size).toBe(files.length);
    const loaded = loadLlama(dir);
    const created = createLlama(config, { seed: 3 });
    const ids = tf.tensor2d([[1, 4, 9, 30, 49]], [1, 5], 'int32');
    const logits = (m: typeof loaded) => tf.tidy(() => m.forward({ inputIds: ids }).logits!.dataSync());
    expect(maxAbsDiff(logits(loaded), logits(created))).toBe(0);
    tf.dispose([ids]);
    loaded.dispose();
    created.dispose();
  });

  it('writes one model.safetensors when everything fits one shard, in bf16 by default (half the bytes)', () => {
    const dir = join(root, 'bf16');
    const { files, bytes } = writeRandomLlamaDir(dir, config, { seed: 3 });
    expect(files).toEqual([join(dir, 'model.safetensors')]);
    expect(existsSync(join(dir, 'model.safetensors.index.json'))).toBe(false);
    const f32 = writeRandomLlamaDir(join(root, 'f32b'), config, { seed: 3, dtype: 'F32' });
    expect(bytes * 2).toBe(f32.bytes);
    loadLlama(dir).dispose();
  });
});
