import { readFileSync } from 'node:fs';
import { Tokenizer as Engine } from '@huggingface/tokenizers';
import { Rng } from '@hyperllama/runtime';
import llamaTokenizerJs from 'llama-tokenizer-js';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadTokenizer, tokenizerJsonFromPieces, type Tokenizer } from '../src/index.js';
import { parseSentencePieceModel } from '../src/sentencepiece.js';
import { parseLlama2cVocab } from '../src/llama2c.js';
import {
  LLAMA2_BIN,
  LLAMA2_INP,
  LLAMA2_MODEL,
  LLAMA2_OUT,
  missing,
  skipNote,
  randomText,
  readLlamaCppVectors,
  sentencePieceFixture,
} from './helpers.js';

const absent = missing(LLAMA2_MODEL, LLAMA2_BIN, LLAMA2_INP, LLAMA2_OUT);

describe.skipIf(absent)(`Llama-2 vocabulary${skipNote(absent)}`, () => {
  let fromModel: Tokenizer;
  let fromBin: Tokenizer;
  beforeAll(() => {
    fromModel = loadTokenizer(LLAMA2_MODEL);
    fromBin = loadTokenizer(LLAMA2_BIN);
  });

  test('the .model and the .bin convert to the same tokenizer.json', () => {
    const a = tokenizerJsonFromPieces(parseSentencePieceModel(readFileSync(LLAMA2_MODEL), LLAMA2_MODEL));
    const b = tokenizerJsonFromPieces(parseLlama2cVocab(readFileSync(LLAMA2_BIN), LLAMA2_BIN, 32000));
    expect(b).toEqual(a);
    expect(Object.keys(a.model.vocab as object)).toHaveLength(32000);
  });

  test('special ids and vocabulary', () => {
    for (const tok of [fromModel, fromBin]) {
      expect([tok.vocabSize, tok.numTokens, tok.unkId, tok.bosId, tok.eosId]).toEqual([32000, 32000, 0, 1, 2]);
      // Llama-2 has no pad piece: padId falls back to <unk>.
      expect([tok.padId, tok.hasPadToken]).toEqual([0, false]);
      expect(tok.idToToken(15043)).toBe('\u2581Hello');
      expect(tok.tokenToId('<0x0A>')).toBe(13);
      expect(tok.gistIds).toEqual([]);
    }
    // Every piece maps back to its id (also pieces named like Object.prototype members).
    for (let id = 0; id < 32000; id++) expect(fromModel.tokenToId(fromModel.idToToken(id)!)).toBe(id);
    expect(fromModel.tokenToId('constructor')).toBeTypeOf('number');
  });

  test('"Hello world" with BOS is [1, 15043, 3186]', () => {
    expect(fromModel.encode('Hello world', { bos: true })).toEqual([1, 15043, 3186]);
    expect(fromBin.encode('Hello world', { bos: true, eos: true })).toEqual([1, 15043, 3186, 2]);
  });

  test('every llama.cpp test vector encodes exactly and decodes back (.model and .bin)', () => {
    const vectors = readLlamaCppVectors(LLAMA2_INP, LLAMA2_OUT);
    expect(vectors.length).toBe(46);
    for (const tok of [fromModel, fromBin]) {
      for (const { text, ids } of vectors) {
        expect(tok.encode(text), JSON.stringify(text)).toEqual(ids);
        expect(tok.decode(ids), JSON.stringify(text)).toBe(text);
      }
    }
  });

  test('matches the real SentencePiece library on 452 strings (space runs, varied text)', () => {
    for (const { text, ids } of sentencePieceFixture('llama2')) {
      expect(fromModel.encode(text), JSON.stringify(text)).toEqual(ids);
    }
  });

  test('matches llama-tokenizer-js on 2,000 seeded random strings, and decodes them back', () => {
    const rng = new Rng(20240227);
    let tokens = 0;
    for (let i = 0; i < 2000; i++) {
      const text = randomText(rng);
      const expected = text.length === 0 ? [] : llamaTokenizerJs.encode(text, false, true);
      const ids = (i % 2 ? fromBin : fromModel).encode(text);
      expect(ids, JSON.stringify(text)).toEqual(expected);
      expect(fromModel.decode(ids)).toBe(text);
      tokens += ids.length;
    }
    expect(tokens).toBeGreaterThan(2000 * 10);
  });

  test('our word-splitting path gives the same ids as the engine encoding the whole text', () => {
    const engine = new Engine(
      {
        ...tokenizerJsonFromPieces(parseSentencePieceModel(readFileSync(LLAMA2_MODEL), LLAMA2_MODEL)),
        added_tokens: [],
      },
      {},
    );
    const rng = new Rng(7);
    for (let i = 0; i < 300; i++) {
      const text = Array.from({ length: 1 + rng.int(4) }, () => randomText(rng)).join('\n');
      expect(fromModel.encode(text), JSON.stringify(text)).toEqual(
        engine.encode(text, { add_special_tokens: false }).ids,
      );
    }
  });

  test('literal special tokens: plain text by default, recognised with parseSpecial as the engine does', () => {
    const text = 'a<s>b </s> c<unk>';
    expect(fromModel.encode(text)).toEqual(llamaTokenizerJs.encode(text, false, true));
    expect(fromModel.encode(text)).not.toContain(1);
    const engine = new Engine(
      tokenizerJsonFromPieces(parseSentencePieceModel(readFileSync(LLAMA2_MODEL), LLAMA2_MODEL)),
      {},
    );
    const parsed = fromModel.encode(text, { parseSpecial: true });
    expect(parsed).toEqual(engine.encode(text, { add_special_tokens: false }).ids);
    expect(parsed.filter((id) => id < 3)).toEqual([1, 2, 0]);
  });

  test('decode skips special tokens on request', () => {
    const ids = fromModel.encode('Hi there', { bos: true, eos: true });
    expect(fromModel.decode(ids, { skipSpecial: true })).toBe('Hi there');
    expect(fromModel.decode(ids)).toBe('<s> Hi there</s>');
  });
});
