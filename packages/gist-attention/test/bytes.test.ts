import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '@hyperllama/llama-model';
import { HyperLlamaError, Rng } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configHash } from '../src/io.js';
import { Prefix } from '../src/prefix.js';

/** A prefix as bytes (a browser download or upload) is the file `save` writes, and loads back as `load` does. */
const config: LlamaConfig = {
  vocabSize: 64,
  hiddenSize: 16,
  intermediateSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: true,
  bosTokenId: 1,
  eosTokenId: 2,
};

let dir: string;
let prefix: Prefix;

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'gist-bytes-'));
  const rng = new Rng(3);
  const make = () => tf.tensor4d(rng.normalArray(1 * 2 * 4 * 4), [1, 2, 4, 4]);
  prefix = new Prefix({
    keys: [make(), make()],
    values: [make(), make()],
    length: 4,
    scheme: 'restart',
    positionOffsets: [4],
  });
});

afterAll(() => {
  prefix.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('Prefix.toBytes / Prefix.fromBytes', () => {
  it('toBytes is the saved file, byte for byte', async () => {
    const path = join(dir, 'p.safetensors');
    const meta = { task: 't', shots: '16' };
    prefix.save(path, { config, meta });
    expect(Buffer.from(await prefix.toBytes({ config, meta })).equals(readFileSync(path))).toBe(true);
  });

  it('fromBytes gives back the tensors and metadata, and checks the config', async () => {
    const bytes = await prefix.toBytes({ config, meta: { task: 't' } });
    const back = Prefix.fromBytes(bytes, config, 'upload.safetensors');
    try {
      expect(back.meta).toEqual({ task: 't' });
      expect(back.positionOffsets).toEqual([4]);
      for (let l = 0; l < 2; l++)
        expect(Array.from(back.keys[l].dataSync())).toEqual(Array.from(prefix.keys[l].dataSync()));
    } finally {
      back.dispose();
    }
    let err: unknown;
    try {
      Prefix.fromBytes(bytes, { ...config, hiddenSize: 32, headDim: 8 }, 'upload.safetensors');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HyperLlamaError);
    expect((err as HyperLlamaError).code).toBe('GIST_CONFIG_MISMATCH');
    expect((err as Error).message).toContain('upload.safetensors');
  });

  it('configHash (pure TypeScript SHA-256) equals node:crypto on the same canonical text', () => {
    const fields = [
      'vocabSize',
      'hiddenSize',
      'intermediateSize',
      'numHiddenLayers',
      'numAttentionHeads',
      'numKeyValueHeads',
      'headDim',
      'maxPositionEmbeddings',
      'rmsNormEps',
      'ropeTheta',
      'tieWordEmbeddings',
    ] as const;
    const canonical = JSON.stringify(fields.map((f) => [f, config[f]]));
    expect(configHash(config)).toBe(createHash('sha256').update(canonical).digest('hex').slice(0, 16));
  });
});
