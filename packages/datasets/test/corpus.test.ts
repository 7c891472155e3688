import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompressionSampler, DEFAULT_CORPUS, defaultCorpus, readCorpus, readTextFolder } from '../src/index.js';
import { CharEncoder, tempDir } from './helpers.js';

describe('default corpus', () => {
  const docs = defaultCorpus();
  const dataDir = join(
    dirname(createRequire(import.meta.url).resolve(`${DEFAULT_CORPUS.package}/package.json`)),
    'data',
  );

  it('reads every text of the installed package from node_modules: over 1 MB of English prose', () => {
    expect(dataDir).toContain('node_modules');
    const files = readdirSync(dataDir)
      .filter((f) => f.endsWith('.txt'))
      .sort();
    expect(docs.map((d) => d.name)).toEqual(files);
    expect(docs.length).toBeGreaterThan(200);
    const total = docs.reduce((n, d) => n + d.text.length, 0);
    expect(total).toBeGreaterThan(1_000_000);
    expect(docs[0].text).toBe(readFileSync(join(dataDir, files[0]), 'utf8'));
    // Prose: mostly letters and spaces, common English words present.
    const sample = docs
      .map((d) => d.text)
      .join(' ')
      .slice(0, 200_000);
    expect((sample.match(/[A-Za-z ]/g) ?? []).length / sample.length).toBeGreaterThan(0.9);
    expect(sample.split(/\s+/).filter((w) => w === 'the').length).toBeGreaterThan(1000);
  });

  it('feeds the compression sampler', () => {
    const s = new CompressionSampler(docs, new CharEncoder(), { seed: 1, lengths: { a: 64, b: 32, c: 32, d: 16 } });
    for (let i = 0; i < 5; i++) expect(s.next().c.length).toBe(32);
  });
});

describe('text files and folders', () => {
  it('reads a folder recursively in path order, filtered by extension, and a single file', () => {
    const dir = tempDir('corpus');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'b.txt'), 'second\r\nline');
    writeFileSync(join(dir, 'a.md'), 'first');
    writeFileSync(join(dir, 'sub', 'c.txt'), 'third');
    writeFileSync(join(dir, 'skip.bin'), 'x');
    expect(readTextFolder(dir)).toEqual([
      { name: 'a.md', text: 'first' },
      { name: 'b.txt', text: 'second\nline' },
      { name: join('sub', 'c.txt'), text: 'third' },
    ]);
    expect(readCorpus(join(dir, 'b.txt'))).toEqual([{ name: 'b.txt', text: 'second\nline' }]);
    expect(readCorpus(dir, ['.txt']).map((d) => d.name)).toEqual(['b.txt', join('sub', 'c.txt')]);
  });

  it('gives typed errors for a missing path and a folder without text', () => {
    const dir = tempDir('corpus-empty');
    writeFileSync(join(dir, 'x.bin'), 'x');
    expect(() => readTextFolder(dir)).toThrow(
      expect.objectContaining({ code: 'NO_DOCUMENTS', details: expect.objectContaining({ file: dir }) }),
    );
    expect(() => readCorpus(join(dir, 'nope'))).toThrow(expect.objectContaining({ code: 'MISSING_FILE' }));
  });
});
