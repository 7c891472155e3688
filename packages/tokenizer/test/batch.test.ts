import { describe, expect, test } from 'vitest';
import { Tokenizer, TokenizerError, tokenizerConfigFromPieces, tokenizerJsonFromPieces } from '../src/index.js';
import { parseSentencePieceModel } from '../src/sentencepiece.js';
import { sentencePieceModelBytes, syntheticPieces } from './helpers.js';

const PIECES = syntheticPieces([
  ['ab', -1],
  ['\u2581ab', -2],
  ['\u2581', -3],
  ['a', -4],
  ['b', -5],
  ['c', -6],
]);
const vocab = parseSentencePieceModel(sentencePieceModelBytes(PIECES), 'synthetic.model');
const tok = new Tokenizer(tokenizerJsonFromPieces(vocab), tokenizerConfigFromPieces(vocab), 'synthetic.model');
const texts = ['ab', 'ab ab ab c', ''];
const P = tok.padId;

describe('encodeBatch', () => {
  test('padId falls back to <unk> (0) when the model has no pad token', () => {
    expect([tok.padId, tok.hasPadToken, tok.unkId]).toEqual([0, false, 0]);
  });

  test('right padding (default) and left padding to the longest row; mask marks real tokens', () => {
    const rows = texts.map((t) => tok.encode(t, { bos: true }));
    const width = Math.max(...rows.map((r) => r.length));
    const right = tok.encodeBatch(texts, { bos: true });
    const left = tok.encodeBatch(texts, { bos: true, padSide: 'left' });
    rows.forEach((row, b) => {
      const pad = width - row.length;
      expect(right.ids[b]).toEqual([...row, ...Array(pad).fill(P)]);
      expect(right.attentionMask[b]).toEqual([...Array(row.length).fill(1), ...Array(pad).fill(0)]);
      expect(left.ids[b]).toEqual([...Array(pad).fill(P), ...row]);
      expect(left.attentionMask[b]).toEqual([...Array(pad).fill(0), ...Array(row.length).fill(1)]);
    });
    expect(right.ids[2]).toEqual([1, ...Array(width - 1).fill(P)]);
  });

  test('truncation keeps BOS/EOS and cuts the text ids on the chosen side', () => {
    const body = tok.encode(texts[1]);
    expect(body.length).toBeGreaterThan(4);
    const r = tok.encodeBatch(texts, { bos: true, eos: true, maxLength: 4, truncation: true });
    expect(r.ids[1]).toEqual([1, ...body.slice(0, 2), 2]);
    const l = tok.encodeBatch(texts, { bos: true, eos: true, maxLength: 4, truncation: 'left' });
    expect(l.ids[1]).toEqual([1, ...body.slice(-2), 2]);
    expect(r.ids.every((row) => row.length === 4)).toBe(true);
  });

  test('padToMaxLength pads every row to maxLength', () => {
    const r = tok.encodeBatch(['ab'], { maxLength: 6, padToMaxLength: true, padSide: 'left' });
    expect(r.ids).toEqual([[P, P, P, P, P, ...tok.encode('ab')]]);
    expect(r.attentionMask).toEqual([[0, 0, 0, 0, 0, 1]]);
  });

  test('rows longer than maxLength without truncation, and bad options, throw', () => {
    expect(() => tok.encodeBatch(texts, { maxLength: 3 })).toThrow(/texts\[1\] has \d+ tokens, maxLength is 3/);
    expect(() => tok.encodeBatch(texts, { padSide: 'middle' as 'left' })).toThrow(TokenizerError);
    expect(() => tok.encodeBatch(texts, { maxLength: 0 })).toThrow(TokenizerError);
    expect(() => tok.encodeBatch(texts, { padToMaxLength: true })).toThrow(TokenizerError);
    expect(() => tok.encodeBatch(texts, { bos: true, eos: true, maxLength: 1, truncation: true })).toThrow(
      TokenizerError,
    );
  });

  test('an empty batch is empty', () => {
    expect(tok.encodeBatch([])).toEqual({ ids: [], attentionMask: [] });
  });
});
