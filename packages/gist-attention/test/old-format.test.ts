import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors, toFloat32 } from '@hyperllama/runtime';
import { GistAttentionError, Prefix } from '../src/index.js';
import { tinyConfig } from './helpers.js';

// Prefix files written before the one `Prefix` class, by `saveKVPrefix` as of commit 58a8897~1
// (fixtures/prefix-v1/make.mjs regenerates them from git history): they must load unchanged, and today's `save`
// must write the same file format (the same tensors and metadata).
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'prefix-v1');
const config = tinyConfig(2);

/** The generator's values: sin(1000·layer + 100·kind + i), kind 0 for keys and 1 for values, i the flat index. */
const expected = (layer: number, kind: number, batch: number) =>
  Float32Array.from({ length: batch * 2 * 3 * 4 }, (_, i) => Math.sin(1000 * layer + 100 * kind + i));

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'prefix-v1-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cases: { file: string; scheme: string; batch: number; offsets: number[]; meta: Record<string, string> }[] = [
  { file: 'restart.safetensors', scheme: 'restart', batch: 1, offsets: [3], meta: { task: 'demo_restart' } },
  {
    file: 'continue.safetensors',
    scheme: 'continue',
    batch: 2,
    offsets: [5, 7],
    meta: { task: 'demo_continue', kind: 'hyperllama' },
  },
];

describe.each(cases)('a $scheme prefix file written before the redesign', ({ file, scheme, batch, offsets, meta }) => {
  const path = join(FIXTURES, file);

  it('loads with its tensors, scheme, offsets and metadata', () => {
    const p = Prefix.load(path, config);
    expect(p.length).toBe(3);
    expect(p.scheme).toBe(scheme);
    expect(p.positionOffsets).toEqual(offsets);
    expect(p.meta).toMatchObject(meta);
    for (let l = 0; l < 2; l++) {
      expect(p.keys[l].shape).toEqual([batch, 2, 3, 4]);
      expect(p.keys[l].dataSync()).toEqual(expected(l, 0, batch));
      expect(p.values[l].dataSync()).toEqual(expected(l, 1, batch));
    }
    p.dispose();
  });

  it('is refused for another model config', () => {
    const other = { ...config, headDim: 8, hiddenSize: 32 };
    expect(() => Prefix.load(path, other)).toThrow(GistAttentionError);
  });

  it("today's save writes the same tensors and metadata", () => {
    const p = Prefix.load(path, config);
    const again = join(dir, file);
    p.save(again, { config, meta });
    p.dispose();
    const [a, b] = [readSafetensors(path), readSafetensors(again)];
    expect(b.metadata).toEqual(a.metadata);
    expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
    expect(a.tensors.size).toBe(4);
    for (const [name, entry] of a.tensors) {
      const mine = b.tensors.get(name)!;
      expect(mine.dtype, name).toBe(entry.dtype);
      expect(mine.shape, name).toEqual(entry.shape);
      expect(toFloat32(mine), name).toEqual(toFloat32(entry));
    }
  });
});
