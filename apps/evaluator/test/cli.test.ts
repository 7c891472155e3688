import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadLlama } from '@hyperllama/llama-model';
import { loadTokenizer } from '@hyperllama/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './helpers.js';

const STORIES = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  '..',
  'shared',
  'models',
  'stories260K',
);
const bin = join(STORIES, 'stories260K.bin');
const tokBin = join(STORIES, 'tok512.bin');

/** Run the CLI in-process, capturing its output. */
let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = mkdtempSync(join(tmpdir(), 'hyperllama-eval-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('hyperllama-eval dispatcher', () => {
  it('lists commands, and rejects unknown commands and bad options with exit code 2', async () => {
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/convert .*\n.*generate/);
    expect((await cli('frobnicate')).code).toBe(2);
    const missing = await cli('generate', '--prompt', 'hi');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('generate: --model is required');
    const badNumber = await cli('generate', '--model', 'x', '--max-new-tokens', 'lots');
    expect(badNumber.code).toBe(2);
    expect(badNumber.stderr).toContain('--max-new-tokens: expected an integer ≥ 1, got "lots"');
    expect((await cli('convert', '--from', 'a', '--wat')).code).toBe(2);
  });

  it('reports typed errors in one line with exit code 1', async () => {
    const r = await cli('generate', '--model', join(tmp, 'missing'), '--tokenizer', 'x', '--backend', 'cpu');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error NOT_FOUND: .*missing: no such file or directory/);
  });
});

describe.skipIf(!existsSync(bin) || !existsSync(tokBin))(`stories260K through the CLI (needs ${bin})`, () => {
  const expected = () => readFileSync(join(STORIES, 'expected_greedy.txt'), 'utf8');
  const greedy = [
    '--prompt',
    '',
    '--max-new-tokens',
    '256',
    '--temperature',
    '0',
    '--stop-ids',
    '1',
    '--backend',
    'cpu',
  ];

  it('convert writes an HF directory that loads to the same model and tokenizer', async () => {
    const out = join(tmp, 'stories-hf');
    const r = await cli('convert', '--from', bin, '--tokenizer', tokBin, '--out', out);
    expect(r.code).toBe(0);
    for (const f of [
      'config.json',
      'model.safetensors',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]) {
      expect(existsSync(join(out, f))).toBe(true);
    }
    const [a, b] = [loadLlama(bin), loadLlama(out)];
    for (const [name, v] of a.namedWeights())
      expect(Buffer.from(b.namedWeights().get(name)!.dataSync().buffer).equals(Buffer.from(v.dataSync().buffer))).toBe(
        true,
      );
    a.dispose();
    b.dispose();
    const text = 'Once upon a time, Lily saw a big red ball.';
    expect(loadTokenizer(out).encode(text, { bos: true })).toEqual(loadTokenizer(tokBin).encode(text, { bos: true }));
  });

  it('generate from the .bin prints exactly expected_greedy.txt', async () => {
    const r = await cli('generate', '--model', bin, '--tokenizer', tokBin, ...greedy);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(expected());
    expect(r.stderr).toMatch(/256 tokens in [\d.]+ s \([\d.]+ tokens\/s/);
  });

  it('generate from the converted directory (its own tokenizer) prints exactly expected_greedy.txt', async () => {
    const out = join(tmp, 'stories-hf');
    if (!existsSync(join(out, 'config.json')))
      expect((await cli('convert', '--from', bin, '--tokenizer', tokBin, '--out', out)).code).toBe(0);
    const r = await cli('generate', '--model', out, ...greedy);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(expected());
  });

  it('a prompt is continued (text after the prompt), and sampling is reproducible by seed', async () => {
    const args = [
      'generate',
      '--model',
      bin,
      '--tokenizer',
      tokBin,
      '--prompt',
      'Once upon a time',
      '--max-new-tokens',
      '20',
      '--backend',
      'cpu',
    ];
    const greedyRun = await cli(...args);
    expect(expected().startsWith('Once upon a time' + greedyRun.stdout.trimEnd())).toBe(true);
    const s1 = await cli(...args, '--temperature', '1', '--seed', '7');
    const s2 = await cli(...args, '--temperature', '1', '--seed', '7');
    expect(s1.stdout).toBe(s2.stdout);
  });
});
