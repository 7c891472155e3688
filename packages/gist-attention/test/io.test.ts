import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '@hyperllama/llama-model';
import { HyperLlamaError, Rng, fromFloat32, readSafetensors, writeSafetensors } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GistAttentionError } from '../src/errors.js';
import { configHash, loadKVPrefix, saveKVPrefix } from '../src/io.js';
import type { GistPrefix } from '../src/prefix.js';

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
let prefix: GistPrefix;

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'gist-prefix-'));
  const rng = new Rng(7);
  const make = () => tf.tensor4d(rng.normalArray(2 * 2 * 3 * 4), [2, 2, 3, 4]);
  prefix = { keys: [make(), make()], values: [make(), make()], length: 3, scheme: 'continue', positionOffsets: [9, 12] };
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HyperLlamaError);
    return (e as HyperLlamaError).code;
  }
  return 'no error';
};

describe('saveKVPrefix / loadKVPrefix', () => {
  it('round trip is exact, with k, scheme, offsets, config hash and the caller’s metadata', () => {
    const path = join(dir, 'task.safetensors');
    saveKVPrefix(path, prefix, { config, meta: { task: 'copy-task', model: 'tiny' } });
    const { prefix: back, configHash: hash, meta } = loadKVPrefix(path, config);
    expect(hash).toBe(configHash(config));
    expect(meta).toEqual({ task: 'copy-task', model: 'tiny' });
    expect(back.length).toBe(3);
    expect(back.scheme).toBe('continue');
    expect(back.positionOffsets).toEqual([9, 12]);
    for (let l = 0; l < 2; l++) {
      expect(back.keys[l].shape).toEqual([2, 2, 3, 4]);
      expect(back.keys[l].dataSync()).toEqual(prefix.keys[l].dataSync());
      expect(back.values[l].dataSync()).toEqual(prefix.values[l].dataSync());
    }
    // the file is plain safetensors that any reader understands
    const raw = readSafetensors(path);
    expect([...raw.tensors.keys()].sort()).toEqual(['layers.0.keys', 'layers.0.values', 'layers.1.keys', 'layers.1.values']);
    expect(raw.metadata.k).toBe('3');
    expect(raw.metadata.scheme).toBe('continue');
    tf.dispose([...back.keys, ...back.values]);
  });

  it('loading a prefix made for another model config is a typed error', () => {
    const path = join(dir, 'other.safetensors');
    saveKVPrefix(path, prefix, { config });
    const other = { ...config, ropeTheta: 500000 };
    let err: unknown;
    try {
      loadKVPrefix(path, other);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GistAttentionError);
    expect((err as GistAttentionError).code).toBe('GIST_CONFIG_MISMATCH');
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain(configHash(other));
  });

  it('configHash changes with every architecture field and ignores token ids', () => {
    const base = configHash(config);
    expect(configHash({ ...config })).toBe(base);
    expect(configHash({ ...config, bosTokenId: 5, eosTokenId: 6, padTokenId: 0 })).toBe(base);
    const changes: Partial<LlamaConfig>[] = [
      { vocabSize: 65 },
      { hiddenSize: 32 },
      { intermediateSize: 64 },
      { numHiddenLayers: 3 },
      { numAttentionHeads: 2 },
      { numKeyValueHeads: 4 },
      { headDim: 8 },
      { maxPositionEmbeddings: 128 },
      { rmsNormEps: 1e-6 },
      { ropeTheta: 20000 },
      { tieWordEmbeddings: false },
    ];
    const hashes = new Set(changes.map((c) => configHash({ ...config, ...c })));
    expect(hashes.size).toBe(changes.length);
    expect(hashes.has(base)).toBe(false);
    expect(base).toMatch(/^[0-9a-f]{16}$/);
  });

  it('malformed prefix files and reserved metadata keys are typed errors', () => {
    const path = join(dir, 'bad.safetensors');
    const t = fromFloat32(new Float32Array(2 * 3 * 4), [1, 2, 3, 4]);
    const md = { format: 'hyperllama-kv-prefix', format_version: '1', k: '3', scheme: 'restart', config_hash: configHash(config), num_layers: '2', position_offsets: '[3]' };
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t, 'layers.1.keys': t }, md);
    expect(codeOf(() => loadKVPrefix(path))).toBe('GIST_BAD_PREFIX_FILE'); // layers.1.values missing
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t }, { ...md, num_layers: '1', k: '2' });
    expect(codeOf(() => loadKVPrefix(path))).toBe('GIST_BAD_PREFIX_FILE'); // tensors hold 3 positions, not k = 2
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t }, { ...md, num_layers: '1', scheme: 'middle' });
    expect(codeOf(() => loadKVPrefix(path))).toBe('GIST_BAD_PREFIX_FILE');
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t }, { ...md, num_layers: '1', format: 'other' });
    expect(codeOf(() => loadKVPrefix(path))).toBe('GIST_BAD_PREFIX_FILE');
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t }, { ...md, num_layers: '1' });
    expect(codeOf(() => loadKVPrefix(path, config))).toBe('GIST_CONFIG_MISMATCH'); // one layer, the config has two
    expect(codeOf(() => saveKVPrefix(path, prefix, { config, meta: { k: '9' } }))).toBe('GIST_BAD_META');
    expect(codeOf(() => loadKVPrefix(join(dir, 'missing.safetensors')))).toBe('SAFETENSORS_UNREADABLE');
  });

  it('NaN in a stored prefix is GIST_BAD_PREFIX_FILE naming the file and the tensor', () => {
    const path = join(dir, 'nan.safetensors');
    const values = new Float32Array(2 * 3 * 4);
    values[7] = NaN;
    const t = fromFloat32(values, [1, 2, 3, 4]);
    const md = { format: 'hyperllama-kv-prefix', format_version: '1', k: '3', scheme: 'restart', config_hash: configHash(config), num_layers: '1', position_offsets: '[3]' };
    writeSafetensors(path, { 'layers.0.keys': fromFloat32(new Float32Array(24), [1, 2, 3, 4]), 'layers.0.values': t }, md);
    expect(() => loadKVPrefix(path)).toThrow(`${path}: layers.0.values: expected finite values, got "NaN at index 7"`);
  });
});
