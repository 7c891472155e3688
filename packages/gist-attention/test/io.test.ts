import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '@hyperllama/llama-model';
import { HyperLlamaError, Rng, fromFloat32, readSafetensors, writeSafetensors } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GistAttentionError } from '../src/errors.js';
import { configHash } from '../src/io.js';
import { Prefix } from '../src/prefix.js';

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
  dir = mkdtempSync(join(tmpdir(), 'gist-prefix-'));
  const rng = new Rng(7);
  const make = () => tf.tensor4d(rng.normalArray(2 * 2 * 3 * 4), [2, 2, 3, 4]);
  prefix = new Prefix({
    keys: [make(), make()],
    values: [make(), make()],
    length: 3,
    scheme: 'continue',
    positionOffsets: [9, 12],
  });
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

describe('Prefix.save / Prefix.load', () => {
  it('round trip is exact, with k, scheme, offsets, config hash and the caller’s metadata', () => {
    const path = join(dir, 'task.safetensors');
    prefix.save(path, { config, meta: { task: 'copy-task', model: 'tiny' } });
    const back = Prefix.load(path, config);
    expect(readSafetensors(path).metadata.config_hash).toBe(configHash(config));
    expect(back.meta).toEqual({ task: 'copy-task', model: 'tiny' });
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
    expect([...raw.tensors.keys()].sort()).toEqual([
      'layers.0.keys',
      'layers.0.values',
      'layers.1.keys',
      'layers.1.values',
    ]);
    expect(raw.metadata.k).toBe('3');
    expect(raw.metadata.scheme).toBe('continue');
    back.dispose();
  });

  it('loading a prefix made for another model config is a typed error', () => {
    const path = join(dir, 'other.safetensors');
    prefix.save(path, { config });
    const other = { ...config, ropeTheta: 500000 };
    let err: unknown;
    try {
      Prefix.load(path, other);
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
    const md = {
      format: 'hyperllama-kv-prefix',
      format_version: '1',
      k: '3',
      scheme: 'restart',
      config_hash: configHash(config),
      num_layers: '2',
      position_offsets: '[3]',
    };
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t, 'layers.1.keys': t }, md);
    expect(codeOf(() => Prefix.load(path))).toBe('GIST_BAD_PREFIX_FILE'); // layers.1.values missing
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t }, { ...md, num_layers: '1', k: '2' });
    expect(codeOf(() => Prefix.load(path))).toBe('GIST_BAD_PREFIX_FILE'); // tensors hold 3 positions, not k = 2
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t }, { ...md, num_layers: '1', scheme: 'middle' });
    expect(codeOf(() => Prefix.load(path))).toBe('GIST_BAD_PREFIX_FILE');
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t }, { ...md, num_layers: '1', format: 'other' });
    expect(codeOf(() => Prefix.load(path))).toBe('GIST_BAD_PREFIX_FILE');
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t }, { ...md, num_layers: '1' });
    expect(codeOf(() => Prefix.load(path, config))).toBe('GIST_CONFIG_MISMATCH'); // one layer, the config has two
    expect(codeOf(() => prefix.save(path, { config, meta: { k: '9' } }))).toBe('GIST_BAD_META');
    expect(codeOf(() => Prefix.load(join(dir, 'missing.safetensors')))).toBe('SAFETENSORS_UNREADABLE');
  });

  it('NaN in a stored prefix is GIST_BAD_PREFIX_FILE naming the file and the tensor', () => {
    const path = join(dir, 'nan.safetensors');
    const values = new Float32Array(2 * 3 * 4);
    values[7] = NaN;
    const t = fromFloat32(values, [1, 2, 3, 4]);
    const md = {
      format: 'hyperllama-kv-prefix',
      format_version: '1',
      k: '3',
      scheme: 'restart',
      config_hash: configHash(config),
      num_layers: '1',
      position_offsets: '[3]',
    };
    writeSafetensors(
      path,
      { 'layers.0.keys': fromFloat32(new Float32Array(24), [1, 2, 3, 4]), 'layers.0.values': t },
      md,
    );
    expect(() => Prefix.load(path)).toThrow(`${path}: layers.0.values: expected finite values, got "NaN at index 7"`);
  });

  it('a file written by hand in the format (as older versions wrote it) loads, its extra metadata in meta', () => {
    const path = join(dir, 'old.safetensors');
    const values = Float32Array.from({ length: 24 }, (_, i) => i / 10);
    const md = {
      format: 'hyperllama-kv-prefix',
      format_version: '1',
      k: '3',
      scheme: 'restart',
      config_hash: configHash(config),
      num_layers: '2',
      position_offsets: '[3]',
      task: 'old',
    };
    const t = fromFloat32(values, [1, 2, 3, 4]);
    writeSafetensors(path, { 'layers.0.keys': t, 'layers.0.values': t, 'layers.1.keys': t, 'layers.1.values': t }, md);
    const p = Prefix.load(path, config);
    expect([p.length, p.scheme, p.positionOffsets, p.meta, p.batch]).toEqual([3, 'restart', [3], { task: 'old' }, 1]);
    expect(p.values[1].dataSync()).toEqual(values);
    p.dispose();
  });
});

describe('Prefix: defaults, views, rows and batches', () => {
  const layer = (b: number, start: number) =>
    tf.tensor4d(
      Float32Array.from({ length: b * 2 * 3 * 4 }, (_, i) => start + i),
      [b, 2, 3, 4],
    );

  it('defaults: length from the tensors, restart, offsets [length], no mask, empty meta', () => {
    const p = new Prefix({ keys: [layer(1, 0)], values: [layer(1, 100)] });
    expect([p.length, p.scheme, p.positionOffsets, p.attentionMask, p.meta, p.batch]).toEqual([
      3,
      'restart',
      [3],
      undefined,
      {},
      1,
    ]);
    p.dispose();
    expect(p.keys[0].isDisposed && p.values[0].isDisposed).toBe(true);
  });

  it('row(i) and stack(...) are inverse: tensors, offsets and visible columns per row', () => {
    const a = new Prefix({
      keys: [layer(2, 0)],
      values: [layer(2, 100)],
      scheme: 'continue',
      positionOffsets: [7, 9],
      attentionMask: [
        [1, 1, 1],
        [0, 1, 1],
      ],
    });
    const r1 = a.row(1);
    expect([r1.batch, r1.positionOffsets, r1.attentionMask, r1.scheme]).toEqual([1, [9], [[0, 1, 1]], 'continue']);
    expect(r1.keys[0].dataSync()).toEqual(a.keys[0].dataSync().slice(24));
    const r0 = a.row(0);
    const back = Prefix.stack([r0, r1]);
    expect([back.batch, back.positionOffsets, back.attentionMask]).toEqual([
      2,
      [7, 9],
      [
        [1, 1, 1],
        [0, 1, 1],
      ],
    ]);
    expect(back.values[0].dataSync()).toEqual(a.values[0].dataSync());
    expect(codeOf(() => a.row(2))).toBe('GIST_BAD_SHAPE');
    expect(
      codeOf(() => Prefix.stack([r0, new Prefix({ keys: [layer(1, 0)], values: [layer(1, 0)], scheme: 'restart' })])),
    ).toBe('GIST_BAD_SCHEME');
    for (const p of [a, r0, r1, back]) p.dispose();
  });

  it('with(...) shares the tensors; bad parts are typed errors', () => {
    const a = new Prefix({ keys: [layer(1, 0)], values: [layer(1, 100)] });
    const b = a.with({ positionOffsets: [5] });
    expect(b.keys[0]).toBe(a.keys[0]);
    expect([a.positionOffsets, b.positionOffsets]).toEqual([[3], [5]]);
    expect(codeOf(() => new Prefix({ keys: [layer(1, 0)], values: [] }))).toBe('GIST_BAD_SHAPE');
    expect(
      codeOf(() => new Prefix({ keys: [layer(1, 0)], values: [layer(1, 0)], scheme: 'middle' as 'restart' })),
    ).toBe('GIST_BAD_SCHEME');
    a.dispose();
  });
});
