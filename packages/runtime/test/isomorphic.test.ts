import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Sha256, sha256Hex } from '../src/sha256.js';
import {
  MemoryFileSystem,
  basenamePath,
  dirnamePath,
  extnamePath,
  fileSystem,
  joinPath,
  nodeFileSystem,
  resolvePath,
  withFileSystem,
} from '../src/files.js';
import { readSafetensors, serializeSafetensors, fromFloat32 } from '../src/safetensors.js';

describe('sha256Hex', () => {
  it('matches node:crypto on the FIPS vectors and on random lengths around block boundaries', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    let seed = 7;
    for (const n of [1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4097]) {
      const bytes = new Uint8Array(n).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) & 0xff);
      expect(sha256Hex(bytes)).toBe(createHash('sha256').update(bytes).digest('hex'));
      // Fed in uneven pieces: the same digest.
      const h = new Sha256();
      for (let i = 0; i < n; i += 37) h.update(bytes.subarray(i, i + 37));
      expect(h.digestHex()).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
  });
});

describe('paths and file systems', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hl-files-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uses Node path rules under Node', () => {
    expect(joinPath('a/b', '../c', 'd.json')).toBe(path.join('a/b', '../c', 'd.json'));
    expect(dirnamePath('/x/y/z.txt')).toBe('/x/y');
    expect(basenamePath('/x/y/z.txt', '.txt')).toBe('z');
    expect(extnamePath('a/b.safetensors')).toBe('.safetensors');
  });

  it('the Node file system is the default and reads what fs wrote', () => {
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'sub', 'a.txt'), 'héllo');
    const fs = fileSystem();
    expect(fs).toBe(nodeFileSystem());
    expect(fs.isDirectory(path.join(dir, 'sub'))).toBe(true);
    expect(fs.readText(path.join(dir, 'sub', 'a.txt'))).toBe('héllo');
    expect(fs.list(dir)).toEqual(['sub']);
  });

  it('a memory file system answers like a directory tree and is used while installed', () => {
    const mem = new MemoryFileSystem([
      ['/m/base/config.json', '{"a":1}'],
      ['/m/ck/hyper/adapter_config.json', '{}'],
    ]);
    expect(mem.isDirectory('/m/ck')).toBe(true);
    expect(mem.exists('/m/ck/../base/config.json')).toBe(true);
    expect(mem.list('/m').sort()).toEqual(['base', 'ck']);
    expect(() => mem.readBytes('/m/base')).toThrow(/ENOENT.*directory/);
    const bytes = serializeSafetensors({ w: fromFloat32(new Float32Array([1, 2, 3]), [3]) }, { k: '1' });
    mem.set('/m/w.safetensors', bytes);
    // Loaders go through fileSystem(): with the memory one installed, a "path" is read from it.
    const read = withFileSystem(mem, () => readSafetensors(resolvePath('/m/w.safetensors')));
    expect(read.metadata.k).toBe('1');
    expect(fileSystem()).toBe(nodeFileSystem());
  });

  it('fromUrls fetches every path and names a failed request', async () => {
    const served: Record<string, string> = { 'http://x/a/config.json': '{}', 'http://x/a/t/tok.json': '[]' };
    const fetch = async (url: string) => ({
      ok: url in served,
      status: url in served ? 200 : 404,
      arrayBuffer: async () => new TextEncoder().encode(served[url] ?? '').buffer as ArrayBuffer,
    });
    const mem = await MemoryFileSystem.fromUrls('http://x/a', ['config.json', 't/tok.json'], { root: '/r', fetch });
    expect(mem.readText('/r/t/tok.json')).toBe('[]');
    await expect(MemoryFileSystem.fromUrls('http://x/a/', ['nope.json'], { fetch })).rejects.toThrow(
      /http:\/\/x\/a\/nope\.json: HTTP 404/,
    );
  });
});
