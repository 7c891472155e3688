import { readFileSync } from 'node:fs';
import { Rng } from '@hyperllama/runtime';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadTokenizer, tokenizerJsonFromPieces, type Tokenizer } from '../src/index.js';
import { parseSentencePieceModel } from '../src/sentencepiece.js';
import { parseLlama2cVocab } from '../src/llama2c.js';
import { TOK512_BIN, TOK512_MODEL, missing, skipNote, randomText, sentencePieceFixture } from './helpers.js';

const absent = missing(TOK512_MODEL, TOK512_BIN);

const STORY_WORDS = [
  'Once',
  'upon',
  'a',
  'time',
  'there',
  'was',
  'little',
  'girl',
  'named',
  'Lily',
  'She',
  'loved',
  'to',
  'play',
  'with',
  'her',
  'big',
  'red',
  'ball',
  'in',
  'the',
  'park',
  'One',
  'day',
  'saw',
  'dog',
  'and',
  'said',
  '"Hi!"',
  'happy',
  'they',
  'were',
  'friends',
  'Tom',
  'Ben',
  'tree',
  'sun',
  'jumped',
  'ran',
  "didn't",
  "Mom's",
];

/** A TinyStories-like corpus line: sentences of words, single spaces, newlines between paragraphs. */
function story(rng: Rng): string {
  const sentences = Array.from({ length: 1 + rng.int(5) }, () => {
    const words = Array.from({ length: 2 + rng.int(10) }, () => rng.pick(STORY_WORDS));
    return words.join(' ') + rng.pick(['.', '!', '?', '.']);
  });
  return sentences.join(rng.next() < 0.2 ? '\n' : ' ');
}

describe.skipIf(absent)(`stories260K tok512${skipNote(absent)}`, () => {
  let fromModel: Tokenizer;
  let fromBin: Tokenizer;
  beforeAll(() => {
    fromModel = loadTokenizer(TOK512_MODEL);
    fromBin = loadTokenizer(TOK512_BIN, { vocabSize: 512 });
  });

  test('both files load as a 512-token BPE vocabulary with the same pieces and merges', () => {
    for (const tok of [fromModel, fromBin])
      expect([tok.vocabSize, tok.bosId, tok.eosId, tok.unkId]).toEqual([512, 1, 2, 0]);
    const a = tokenizerJsonFromPieces(parseSentencePieceModel(readFileSync(TOK512_MODEL), TOK512_MODEL));
    const b = tokenizerJsonFromPieces(parseLlama2cVocab(readFileSync(TOK512_BIN), TOK512_BIN));
    expect(b.model).toEqual(a.model);
    // A BPE-trained vocabulary: every multi-character piece is the result of some merge, and only those are.
    const merged = new Set((a.model.merges as Array<[string, string]>).map(([l, r]) => l + r));
    const multi = Object.keys(a.model.vocab as object).filter((p) => [...p].length > 1 && !/^<.*>$/.test(p));
    expect([...merged].sort()).toEqual(multi.sort());
  });

  test('the .model matches the real SentencePiece library (whitespace runs included)', () => {
    for (const { text, ids } of sentencePieceFixture('tok512')) {
      expect(fromModel.encode(text), JSON.stringify(text)).toEqual(ids);
    }
  });

  test('the .model and the .bin give identical ids on the same corpus', () => {
    const rng = new Rng(260);
    let tokens = 0;
    for (let i = 0; i < 500; i++) {
      // Stories, and varied text whose spaces are single and not at the ends (see the next test).
      const text =
        i % 2
          ? story(rng)
          : randomText(rng, { spaces: [' ', '\n', '\t', '\n\n'] })
              .replace(/ {2,}/g, ' ')
              .trim();
      const ids = fromModel.encode(text, { bos: true });
      expect(fromBin.encode(text, { bos: true }), JSON.stringify(text)).toEqual(ids);
      expect(fromModel.decode(ids, { skipSpecial: true })).toBe(text);
      tokens += ids.length;
    }
    expect(tokens).toBeGreaterThan(5000);
  });

  test('documented difference: only the .model removes extra spaces (its remove_extra_whitespaces flag)', () => {
    expect(fromModel.encode('  Lily  ran. ')).toEqual(fromModel.encode('Lily ran.'));
    expect(fromModel.encode('   ')).toEqual([]);
    expect(fromBin.encode('  Lily  ran. ')).not.toEqual(fromBin.encode('Lily ran.'));
    expect(fromBin.decode(fromBin.encode('  Lily  ran. '))).toBe('  Lily  ran. ');
  });
});
