import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Prefix } from '@hyperllama/gist-attention';
import type { LlamaConfig } from '@hyperllama/llama-model';
import { Rng } from '@hyperllama/runtime';
import { PrefixStore, PrefixStoreError, normalizeTask, prefixId } from '../src/store.js';

// The store on its own, with a small config and random prefixes: content addresses, atomic files that a restart (a new
// store on the directory) reads back bit for bit, refusal of another base's prefixes, the LRU byte budget, two stores
// sharing one directory, and a writer killed mid-write.
const here = dirname(fileURLToPath(import.meta.url));
const config = {
  vocabSize: 32,
  hiddenSize: 16,
  intermediateSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  numKeyValueHeads: 2,
  headDim: 8,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: true,
  bosTokenId: 1,
  eosTokenId: 2,
} as unknown as LlamaConfig;

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'hl-store-'));
  dirs.push(d);
  return d;
};

function randomPrefix(seed: number, k = 4): Prefix {
  const rng = new Rng(seed);
  const t = () =>
    tf.tensor4d(
      Float32Array.from({ length: 2 * k * 8 }, () => rng.normal()),
      [1, 2, k, 8],
    );
  return new Prefix({ keys: [t(), t()], values: [t(), t()] });
}
const bytesOf = (k: number) => 2 * 2 * (2 * k * 8) * 4; // layers × {keys, values} × floats × 4

const info = (id: string) => ({ id, k: 4, demonstrations: 3, promptTokensSaved: 20 });

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('prefix ids', () => {
  it('address the checkpoint and the normalised task', () => {
    const task = { definition: 'Name the fruit.', examples: [{ input: 'red', output: 'apple' }] };
    const id = prefixId('ck1', task);
    expect(id).toMatch(/^pfx-[0-9a-f]{32}$/);
    // Same task typed differently (whitespace, CRLF, NFD accents) → same id.
    const same = {
      definition: '  Name the fruit.\r\n',
      examples: [{ input: 'red ', output: '\tapple' }],
    };
    expect(prefixId('ck1', same)).toBe(id);
    expect(normalizeTask({ examples: [{ input: 'cafe\u0301', output: 'x' }] }).examples[0].input).toBe('caf\u00e9');
    // Any change of checkpoint, definition, an example or their order → another id.
    expect(prefixId('ck2', task)).not.toBe(id);
    expect(prefixId('ck1', { ...task, definition: 'Name it.' })).not.toBe(id);
    expect(prefixId('ck1', { examples: [{ input: 'red', output: 'pear' }] })).not.toBe(
      prefixId('ck1', { examples: [{ input: 'red', output: 'apple' }] }),
    );
    const two = [
      { input: 'a', output: '1' },
      { input: 'b', output: '2' },
    ];
    expect(prefixId('ck1', { examples: two })).not.toBe(prefixId('ck1', { examples: [...two].reverse() }));
  });
});

describe('PrefixStore', () => {
  it('writes prefix files that a restarted store reads back exactly, and refuses another base', async () => {
    const dir = tempDir();
    const a = new PrefixStore({ dir, config, baseHash: 'base-A' });
    const original = randomPrefix(1);
    const expected = await Promise.all(original.keys.map((t) => t.data()));
    const id = prefixId('ck', { examples: [{ input: 'x', output: 'y' }] });
    const stored = a.put(original, info(id));
    expect(stored.bytes).toBe(bytesOf(4));
    expect(readdirSync(dir)).toEqual([`${id}.safetensors`]); // no temporary file left behind
    a.dispose();

    const restarted = new PrefixStore({ dir, config, baseHash: 'base-A' });
    expect(restarted.scan()).toEqual({ ours: 1, others: 0, removedTemporary: 0 });
    const held = restarted.acquire(id);
    expect(held.info).toMatchObject({ id, k: 4, demonstrations: 3, promptTokensSaved: 20 });
    const got = await Promise.all(held.prefix.keys.map((t) => t.data()));
    expect(got).toEqual(expected);
    held.release();
    restarted.dispose();

    const other = new PrefixStore({ dir, config, baseHash: 'base-B' });
    expect(other.scan()).toEqual({ ours: 0, others: 1, removedTemporary: 0 });
    expect(() => other.acquire(id)).toThrow(expect.objectContaining({ code: 'PREFIX_OTHER_BASE' }));
    const otherArch = new PrefixStore({ dir, config: { ...config, headDim: 4 } as LlamaConfig, baseHash: 'base-A' });
    expect(() => otherArch.acquire(id)).toThrow(expect.objectContaining({ code: 'PREFIX_OTHER_BASE' }));
    expect(() => other.acquire('pfx-' + '0'.repeat(32))).toThrow(PrefixStoreError);
    expect(() => other.acquire('../etc/passwd')).toThrow(expect.objectContaining({ code: 'PREFIX_NOT_FOUND' }));
  });

  it('keeps at most its byte budget in memory, least recently used out first, never freeing one in use', () => {
    const dir = tempDir();
    const store = new PrefixStore({ dir, config, baseHash: 'b', cacheBytes: 2 * bytesOf(4) });
    const ids = [0, 1, 2].map((i) => prefixId('ck', { examples: [{ input: String(i), output: 'o' }] }));
    store.put(randomPrefix(10), info(ids[0]));
    store.put(randomPrefix(11), info(ids[1]));
    const held = store.acquire(ids[0]); // ids[0] becomes the most recently used, and is in use
    expect(store.cachedIds()).toEqual([ids[1], ids[0]]);
    store.put(randomPrefix(12), info(ids[2])); // over budget: ids[1] goes
    expect(store.cachedIds()).toEqual([ids[0], ids[2]]);
    expect(store.bytesInMemory).toBe(2 * bytesOf(4));
    store.put(randomPrefix(13), info(ids[1])); // ids[0] is evicted while held: still usable until released
    expect(store.cachedIds()).toEqual([ids[2], ids[1]]);
    expect(held.prefix.keys[0].isDisposed).toBe(false);
    held.release();
    expect(held.prefix.keys[0].isDisposed).toBe(true);
    // Evicted prefixes are still on disk: a miss reads them back.
    const misses = store.counters.misses;
    store.acquire(ids[0]).release();
    expect(store.counters.misses).toBe(misses + 1);
    store.acquire(ids[0]).release();
    expect(store.counters.hits).toBeGreaterThan(0);
    store.dispose();
  });

  it('lets two stores share a directory: what one writes the other reads, what one deletes the other loses', () => {
    const dir = tempDir();
    const a = new PrefixStore({ dir, config, baseHash: 'b' });
    const b = new PrefixStore({ dir, config, baseHash: 'b' });
    const id = prefixId('ck', { examples: [{ input: 'shared', output: 'o' }] });
    a.put(randomPrefix(20), info(id));
    b.acquire(id).release();
    expect(b.has(id)).toBe(true);
    expect(a.delete(id)).toBe(true);
    expect(() => b.acquire(id)).toThrow(expect.objectContaining({ code: 'PREFIX_NOT_FOUND' }));
    expect(b.delete(id)).toBe(false);
    a.dispose();
    b.dispose();
  });

  it('stays readable when a writer is killed (SIGKILL) in the middle of writing', async () => {
    const dir = tempDir();
    // A prefix written before the crash must survive it.
    const before = new PrefixStore({ dir, config, baseHash: 'b' });
    const keep = prefixId('ck', { examples: [{ input: 'keep', output: 'o' }] });
    before.put(randomPrefix(30), info(keep));
    before.dispose();
    // The child writes large prefixes (16 MiB each) in a loop and is killed mid-write.
    const writer = join(here, 'fixtures', 'prefix-writer.mts');
    const child = spawn(process.execPath, ['--import', 'tsx', writer, dir, JSON.stringify(config)], {
      cwd: join(here, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => resolve());
      child.on('exit', () => reject(new Error(`the writer exited early: ${err}`)));
    });
    // Kill it while a temporary file exists (a write in progress).
    const deadline = Date.now() + 20_000;
    while (!readdirSync(dir).some((n) => n.endsWith('.tmp')) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 1));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const leftovers = readdirSync(dir).filter((n) => n.endsWith('.tmp'));
    expect(leftovers.length, 'a temporary file was left by the kill').toBeGreaterThan(0);

    const after = new PrefixStore({ dir, config, baseHash: 'b', cacheBytes: 1 });
    const scan = after.scan();
    expect(scan.removedTemporary).toBe(leftovers.length);
    expect(scan.others).toBe(0); // every complete file reads
    expect(scan.ours).toBeGreaterThanOrEqual(2);
    for (const id of after.list()) after.acquire(id).release();
    expect(existsSync(join(dir, `${keep}.safetensors`))).toBe(true);
    after.dispose();
  }, 60_000);
});
