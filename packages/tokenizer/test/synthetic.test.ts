import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Tokenizer as Engine } from '@huggingface/tokenizers';
import { Rng } from '@hyperllama/runtime';
import { loadTokenizer, Tokenizer, tokenizerConfigFromPieces, tokenizerJsonFromPieces } from '../src/index.js';
import { parseSentencePieceModel } from '../src/sentencepiece.js';
import { mergesFromPieces } from '../src/convert.js';
import { llama2cBytes, randomText, sentencePieceModelBytes, syntheticPieces } from './helpers.js';

// A hand-made BPE vocabulary (ids 259...): the expected segmentations below are worked out by hand with SentencePiece's
// BPE rule (repeatedly merge the adjacent pair whose merged piece has the highest score; ties go left), and checked
// once against the SentencePiece library (0.1.97) loading the same bytes.
const NORMAL: Array<[string, number]> = [
  ['ab', -1], // 259
  ['\u2581ab', -2], // 260
  ['bc', -3], // 261
  ['\u2581c', -4], // 262
  ['\u2581', -5], // 263
  ['a', -6], // 264
  ['b', -7], // 265
  ['c', -8], // 266
  ['\ufeff', -9], // 267: a piece that starts like a UTF-8 byte-order mark
  ['constructor', -20], // 268: a piece named like an Object.prototype member
];
const PIECES = syntheticPieces(NORMAL);
const byte = (b: number): number => 3 + b;

function writeTemp(name: string, bytes: Uint8Array): string {
  const file = join(mkdtempSync(join(tmpdir(), 'tok-synthetic-')), name);
  writeFileSync(file, bytes);
  return file;
}

describe('a synthetic SentencePiece BPE model (no shared data needed)', () => {
  const modelFile = writeTemp('tokenizer.model', sentencePieceModelBytes(PIECES));
  const binFile = writeTemp('tokenizer.bin', llama2cBytes(PIECES));

  test('merges: every split into two normal pieces, by the merged piece score', () => {
    const vocab = parseSentencePieceModel(sentencePieceModelBytes(PIECES), 'x.model');
    expect(mergesFromPieces(vocab)).toEqual([
      ['a', 'b'],
      ['\u2581', 'ab'],
      ['b', 'c'],
      ['\u2581', 'c'],
    ]);
    expect(vocab.pieces[267].piece).toBe('\ufeff');
  });

  test.each([
    ['.model', modelFile],
    ['.bin', binFile],
  ])('segments by score, falls back to bytes and decodes back (%s)', (_kind, file) => {
    const tok = loadTokenizer(file);
    expect(tok.vocabSize).toBe(269);
    expect(tok.encode('ab abc bc')).toEqual([260, 260, 266, 263, 261]);
    expect(tok.encode('cab')).toEqual([262, 259]);
    expect(tok.encode('d')).toEqual([263, byte(0x64)]);
    expect(tok.encode('é')).toEqual([263, byte(0xc3), byte(0xa9)]);
    expect(tok.encode('\ufeff')).toEqual([263, 267]);
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('c', { bos: true, eos: true })).toEqual([1, 262, 2]);
    expect(tok.tokenToId('constructor')).toBe(268);
    for (const text of ['ab abc bc', ' d é\n\tab', '  leading and trailing  ', '\ufeffa\ufeff']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  test('remove_extra_whitespaces in a .model: ends stripped, runs collapsed', () => {
    const tok = loadTokenizer(writeTemp('ws.model', sentencePieceModelBytes(PIECES, { removeExtraWhitespaces: true })));
    expect(tok.encode('  ab   c ')).toEqual(tok.encode('ab c'));
    expect(tok.encode('ab c')).toEqual([260, 262]);
    expect(tok.encode('    ')).toEqual([]);
    // Newlines and tabs are not spaces for this rule.
    expect(tok.encode('ab\n c')).toEqual([260, byte(0x0a), 262]);
  });

  test('a pad_id in the model becomes padId', () => {
    const withPad = syntheticPieces([...NORMAL, ['<pad>', 0]]);
    withPad[withPad.length - 1].type = 3;
    const tok = loadTokenizer(writeTemp('pad.model', sentencePieceModelBytes(withPad, { padId: withPad.length - 1 })));
    expect([tok.padId, tok.hasPadToken]).toEqual([withPad.length - 1, true]);
  });

  test('formats are detected by content when the file name says nothing', () => {
    const noExt = writeTemp('tokenizer', sentencePieceModelBytes(PIECES));
    expect(loadTokenizer(noExt).encode('ab c')).toEqual([260, 262]);
    const binNoExt = writeTemp('vocab.dat', llama2cBytes(PIECES));
    expect(loadTokenizer(binNoExt, { format: 'llama2c' }).encode('ab c')).toEqual([260, 262]);
  });

  test('a tokenizer.json outside the SentencePiece layout is encoded by the engine as a whole', () => {
    const vocab = parseSentencePieceModel(sentencePieceModelBytes(PIECES), 'x.model');
    const json = tokenizerJsonFromPieces(vocab);
    // Same tokenizer with the dummy prefix done by a Metaspace pre-tokenizer instead of the normalizer.
    const metaspace = {
      ...json,
      normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false },
    };
    const tok = new Tokenizer(metaspace, tokenizerConfigFromPieces(vocab), 'metaspace.json');
    const engine = new Engine({ ...metaspace, added_tokens: [] }, {});
    const rng = new Rng(11);
    for (let i = 0; i < 100; i++) {
      const text = randomText(rng, { maxParts: 8 });
      expect(tok.encode(text), JSON.stringify(text)).toEqual(engine.encode(text, { add_special_tokens: false }).ids);
    }
    expect(tok.encode('ab abc bc')).toEqual([260, 260, 266, 263, 261]);
    expect(tok.encode('<s>ab', { parseSpecial: true, eos: true })).toEqual([1, 259, 2]);
  });
});
