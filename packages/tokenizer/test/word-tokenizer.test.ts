import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as Engine } from '@huggingface/tokenizers';
import { Rng } from '@hyperllama/runtime';
import { describe, expect, test } from 'vitest';
import { detectSentencePieceLayout } from '../src/fast-path.js';
import {
  buildWordTokenizer,
  extendWordTokenizer,
  loadTokenizer,
  saveTokenizer,
  Tokenizer,
  TokenizerError,
  type WordTokenizerOptions,
} from '../src/index.js';
import { WORD_PRE_TOKENIZER_REGEX } from '../src/word.js';
import { randomText } from './helpers.js';

/** `<unk>`, `<s>`, `</s>`, 256 bytes, 97 characters. */
const FIXED = 3 + 256 + 97;
/** The fixed part plus `" 0"` ... `" 9"` and `"10"`, `" 10"`, ... `"99"`, `" 99"`. */
const WITH_NUMBERS = FIXED + 10 + 2 * 90;

/**
 * A small corpus with known counts: `FREQUENT[k]` appears `60 - k` times, each of `FILLER` twice, `RARE` once (each
 * followed by a full stop, a character that already has a piece).
 */
const FREQUENT = [
  ' the',
  ' cat',
  ' dog',
  'The',
  ' sat',
  ' on',
  ' mat',
  ' Congress',
  'Input',
  'Output',
  ' [',
  ' and',
  ' a',
  ' of',
  ' to',
  ' was',
];
const FILLER = [' gamma', ' alpha', ' epsilon', ' delta', ' beta'];
const RARE = ' zyzzyva';

function corpus(): string[] {
  const texts: string[] = [];
  FREQUENT.forEach((w, k) => {
    for (let i = 0; i < 60 - k; i++) texts.push(`${w}.`);
  });
  for (const w of FILLER) texts.push(`${w}.`, `${w}.`);
  texts.push(`${RARE}.`);
  return texts;
}

/** Room for `include`, the frequent words and three fillers: not for the other fillers and the rare word. */
const OPTS: WordTokenizerOptions = {
  texts: corpus(),
  vocabSize: WITH_NUMBERS + 2 * 2 + FREQUENT.length + 3,
  include: ['dax', 'wug'],
};
const tok = buildWordTokenizer(OPTS);

const tokens = (t: Tokenizer, text: string): string[] => t.encode(text).map((id) => t.idToToken(id)!);

const ALPHABET = [
  ' ',
  ' ',
  ' ',
  '\t',
  '\n',
  '\n',
  '\r',
  'a',
  'the',
  'Z',
  'cat',
  ' dog',
  '0',
  '7',
  '42',
  '.',
  ',',
  '[',
  ']',
  ':',
  '<',
  '>',
  '<s>',
  '</s>',
  '<0x41>',
  '<GIST_0>',
  '<unk>',
  'é',
  'e\u0301',
  'ß',
  'Я',
  '日本',
  '😀',
  '👨‍👩‍👧',
  '🇫🇷',
  '\u00a0',
  '\u3000',
  '\ufeff',
  '\u200b',
  '\u2581',
  '\u0000',
  '\u007f',
  '\\',
  '"',
  "'",
];

/** Random strings over {@link ALPHABET} and random code points of every plane (no lone surrogates). */
function alphabetText(rng: Rng): string {
  const n = rng.int(24);
  let s = '';
  for (let i = 0; i < n; i++) {
    if (rng.next() < 0.85) s += rng.pick(ALPHABET);
    else {
      let cp = rng.int(0x110000);
      if (cp >= 0xd800 && cp <= 0xdfff) cp -= 0x800;
      s += String.fromCodePoint(cp);
    }
  }
  return s;
}

/** 1,000 strings of the shared fuzz generator, 1,000 over {@link ALPHABET}, and hand-picked edge cases. */
function fuzzStrings(seed: number): string[] {
  const rng = new Rng(seed);
  const out = [
    '',
    ' ',
    '  ',
    '  a',
    'a  ',
    ' a ',
    '\n',
    '\n\n',
    '\n\n\n',
    '\t',
    '\t\t a',
    '\r\n',
    ' \n ',
    '...',
    '?!?!',
    '", (',
    '))',
    ' 99',
    '099',
    '100',
    'dax',
    ' dax',
    'daxes',
  ];
  for (let i = 0; i < 1000; i++) out.push(randomText(rng));
  for (let i = 0; i < 1000; i++) out.push(alphabetText(rng));
  return out;
}
const FUZZ = fuzzStrings(20240601);

describe('buildWordTokenizer', () => {
  test('returns a Tokenizer with the documented layout', () => {
    expect(tok).toBeInstanceOf(Tokenizer);
    expect(tok.vocabSize).toBe(OPTS.vocabSize);
    expect(tok.numTokens).toBe(OPTS.vocabSize);
    expect(tok.source).toBe(`word tokenizer (${OPTS.vocabSize - FIXED} words)`);
    expect([tok.unkId, tok.bosId, tok.eosId, tok.padId]).toEqual([0, 1, 2, 0]);
    expect(
      ['<unk>', '<s>', '</s>', '<0x00>', '<0xFF>', '\n', '\t', ' ', '!', '~'].map((t) => tok.tokenToId(t)),
    ).toEqual([0, 1, 2, 3, 258, 259, 260, 261, 262, 355]);
    expect(['0', '9', ' 0', ' 9', '10', ' 10', '99', ' 99'].map((t) => tok.tokenToId(t))).toEqual([
      262 + 15,
      262 + 24,
      FIXED,
      FIXED + 9,
      FIXED + 10,
      FIXED + 11,
      WITH_NUMBERS - 2,
      WITH_NUMBERS - 1,
    ]);
    expect(['dax', ' dax', 'wug', ' wug'].map((t) => tok.tokenToId(t))).toEqual([
      WITH_NUMBERS,
      WITH_NUMBERS + 1,
      WITH_NUMBERS + 2,
      WITH_NUMBERS + 3,
    ]);
    // Then the corpus pre-tokens by count: the most frequent first.
    expect(tok.tokenToId('.')).toBe(262 + 13); // the most frequent pre-token, but a character: not repeated
    expect(tok.idToToken(WITH_NUMBERS + 4)).toBe(' the');
    expect(tok.idToToken(WITH_NUMBERS + 5)).toBe(' cat');
    // Fillers tie (2 each): code-unit order decides which three fit.
    expect([...FREQUENT, ' alpha', ' beta', ' delta'].map((t) => tok.tokenToId(t))).toEqual(
      Array.from({ length: FREQUENT.length + 3 }, (_, i) => WITH_NUMBERS + 4 + i),
    );
    expect(tok.tokenToId(' epsilon')).toBeUndefined();
  });

  test('encodes a task line into the hand-written pieces', () => {
    expect(tokens(tok, 'Input: cat dog\nOutput: [dax]')).toEqual([
      'Input',
      ':',
      ' cat',
      ' dog',
      '\n',
      'Output',
      ':',
      ' [',
      'dax',
      ']',
    ]);
    expect(tokens(tok, 'The cat  sat\n\n\tdaxes, 7 wugs 123  \n')).toEqual([
      'The',
      ' cat',
      ' ',
      ' sat',
      '\n',
      '\n',
      '\t',
      'd',
      'a',
      'x',
      'e',
      's',
      ',',
      ' 7',
      ' ',
      'w',
      'u',
      'g',
      's',
      ' ',
      '1',
      '2',
      '3',
      ' ',
      ' ',
      '\n',
    ]);
    expect(tokens(tok, '   the [dax]')).toEqual([' ', ' ', ' the', ' [', 'dax', ']']);
    expect(tokens(tok, 'é😀')).toEqual(['<0xC3>', '<0xA9>', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>']);
  });

  test('is lossless on fuzzed strings (unicode, emoji, whitespace runs, literal special tokens)', () => {
    expect(FUZZ.length).toBeGreaterThanOrEqual(2000);
    for (const text of FUZZ) {
      const ids = tok.encode(text);
      expect(tok.decode(ids), JSON.stringify(text)).toBe(text);
      expect(ids.every((id) => id > 2 && id < tok.vocabSize)).toBe(true);
    }
  });

  test('gives the ids of @huggingface/tokenizers itself (no fast path assumes the SentencePiece layout)', () => {
    const { tokenizerJson, tokenizerConfig } = tok.toFiles();
    expect(detectSentencePieceLayout(tokenizerJson)).toBeNull();
    // Without the special added tokens, the engine reads "<s>" in a text as text, as Tokenizer.encode does.
    const plain = new Engine({ ...tokenizerJson, added_tokens: [] }, tokenizerConfig);
    const full = new Engine(tokenizerJson, tokenizerConfig);
    for (const text of FUZZ) {
      expect(tok.encode(text, { bos: true })).toEqual(plain.encode(text).ids);
      expect(tok.encode(text, { bos: true, parseSpecial: true })).toEqual(full.encode(text).ids);
    }
  });

  test('its pre-tokenizer cuts every text into pieces that join back to it, the same as the regex scan', () => {
    const engine = new Engine(tok.toFiles().tokenizerJson, {});
    const re = new RegExp(WORD_PRE_TOKENIZER_REGEX, 'gu');
    for (const text of FUZZ) {
      const pieces = engine.pre_tokenizer!(text) as string[];
      expect(pieces.join('')).toBe(text);
      expect(pieces).toEqual(text.match(re) ?? []);
    }
  });

  test('BOS and EOS follow the encode contract of the other tokenizers', () => {
    const body = tok.encode('The cat');
    expect(tok.encode('The cat', { bos: true, eos: true })).toEqual([1, ...body, 2]);
    expect(tok.encode('<s>The cat</s>', { parseSpecial: true })).toEqual([1, ...body, 2]);
    expect(tokens(tok, '<s>')).toEqual(['<', 's', '>']);
    expect(tok.decode([1, ...body, 2], { skipSpecial: true })).toBe('The cat');
    const batch = tok.encodeBatch(['The cat', 'a'], { bos: true, padSide: 'left' });
    expect(batch.ids[1][0]).toBe(tok.padId);
  });

  test('forced include words and the numbers 0..99 are single tokens, with and without a leading space', () => {
    for (const w of ['dax', 'wug']) {
      expect(tok.encode(w)).toHaveLength(1);
      expect(tok.encode(' ' + w)).toHaveLength(1);
    }
    for (let n = 0; n < 100; n++) {
      expect(tokens(tok, String(n))).toEqual([String(n)]);
      expect(tokens(tok, ` ${n}`)).toEqual([` ${n}`]);
    }
    expect(tok.encode('100')).toHaveLength(3);
    const custom = buildWordTokenizer({ texts: [], vocabSize: 2400, numbers: 1000, include: [' zig', '\n\n', '€'] });
    expect(tokens(custom, ' 999')).toEqual([' 999']);
    expect(tokens(custom, ' zig zig')).toEqual([' zig', ' zig']);
    expect(tokens(custom, 'zig')).toEqual(['z', 'i', 'g']); // " zig" was asked for, not "zig"
    expect(tokens(custom, '\n\n€ €')).toEqual(['\n\n', '€', ' €']); // no " \n\n": a space before a newline is its own pre-token
  });

  test('the most frequent corpus words are single tokens, a rare word is spelled in characters', () => {
    for (const w of FREQUENT) expect(tokens(tok, w)).toEqual([w]);
    expect(tokens(tok, RARE)).toEqual([...RARE]);
    // A larger vocabulary takes the rare word too.
    const big = buildWordTokenizer({ ...OPTS, vocabSize: OPTS.vocabSize + 50 });
    expect(tokens(big, RARE)).toEqual([RARE]);
  });

  test('fills the vocabulary with unused pieces when the corpus runs out, which no text produces', () => {
    const small = buildWordTokenizer({ texts: ['a b c'], vocabSize: WITH_NUMBERS + 10 });
    expect(small.vocabSize).toBe(WITH_NUMBERS + 10);
    expect(small.source).toBe(`word tokenizer (${WITH_NUMBERS + 2 - FIXED} words)`);
    expect(small.idToToken(WITH_NUMBERS + 2)).toBe('<unused_0>');
    expect(small.encode('<unused_0>')).toHaveLength(10);
    const minimal = buildWordTokenizer({ texts: [], vocabSize: FIXED, numbers: 0 });
    expect(minimal.vocabSize).toBe(FIXED);
    for (const text of FUZZ.slice(0, 300)) expect(minimal.decode(minimal.encode(text))).toBe(text);
  });

  test('ids are deterministic for the same inputs (arrays or generators)', () => {
    const again = buildWordTokenizer({
      ...OPTS,
      texts: (function* () {
        yield* corpus();
      })(),
    });
    expect(again.toFiles()).toEqual(tok.toFiles());
    for (const text of FUZZ.slice(0, 300)) expect(again.encode(text)).toEqual(tok.encode(text));
    // Ties in count are broken by code-unit order, not by order of appearance.
    const a = buildWordTokenizer({ texts: ['xx yy', 'yy xx'], vocabSize: WITH_NUMBERS + 3 });
    const b = buildWordTokenizer({ texts: ['yy xx', 'xx yy'], vocabSize: WITH_NUMBERS + 3 });
    expect(a.toFiles()).toEqual(b.toFiles());
    expect([a.idToToken(WITH_NUMBERS), a.idToToken(WITH_NUMBERS + 1), a.idToToken(WITH_NUMBERS + 2)]).toEqual([
      ' xx',
      ' yy',
      'xx',
    ]);
  });

  test('save then load gives identical ids, also with gist tokens', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tok-word-'));
    const gist = tok.withGistTokens(3);
    saveTokenizer(gist, dir);
    const loaded = loadTokenizer(dir);
    expect([loaded.vocabSize, loaded.numTokens, loaded.bosId, loaded.eosId, loaded.padId, loaded.unkId]).toEqual([
      gist.vocabSize,
      gist.numTokens,
      gist.bosId,
      gist.eosId,
      gist.padId,
      gist.unkId,
    ]);
    expect(loaded.gistIds).toEqual(gist.gistIds);
    for (const text of FUZZ) {
      const ids = tok.encode(text);
      expect(loaded.encode(text)).toEqual(ids);
      expect(gist.encode(text)).toEqual(ids);
      expect(loaded.decode(ids)).toBe(text);
    }
  });

  test('gist tokens appended at vocabSize are never produced from ordinary text', () => {
    const gist = tok.withGistTokens(4);
    expect(gist.gistIds).toEqual([tok.vocabSize, tok.vocabSize + 1, tok.vocabSize + 2, tok.vocabSize + 3]);
    for (const text of [...FUZZ, '<GIST_0>', ' <GIST_1> <GIST_3>', 'x<GIST_2>']) {
      const ids = gist.encode(text);
      expect(ids.every((id) => id < tok.vocabSize)).toBe(true);
      expect(gist.decode(ids)).toBe(text);
    }
    expect(gist.encode('a<GIST_1>', { parseSpecial: true }).at(-1)).toBe(gist.gistIds[1]);
    expect(gist.decode([...gist.encode('dax'), ...gist.gistIds], { skipSpecial: true })).toBe('dax');
  });

  test('bad options throw a TokenizerError naming the option', () => {
    const cases: Array<[unknown, string]> = [
      [{ texts: [], vocabSize: FIXED - 1, numbers: 0 }, 'vocabSize'],
      [{ texts: [], vocabSize: WITH_NUMBERS - 1 }, 'vocabSize'],
      [{ texts: [], vocabSize: WITH_NUMBERS + 1, include: ['dax'] }, 'vocabSize'],
      [{ texts: [], vocabSize: 4096.5 }, 'vocabSize'],
      [{ texts: [], vocabSize: '4096' }, 'vocabSize'],
      [{ texts: [] }, 'vocabSize'],
      [{ texts: [], vocabSize: 4096, numbers: -1 }, 'numbers'],
      [{ texts: [], vocabSize: 4096, numbers: 2.5 }, 'numbers'],
      [{ texts: [], vocabSize: 4096, include: 'dax' }, 'include'],
      [{ texts: [], vocabSize: 4096, include: ['dax', ''] }, 'include[1]'],
      [{ texts: [], vocabSize: 4096, include: [7] }, 'include[0]'],
      [{ texts: [], vocabSize: 4096, include: ['New York'] }, 'include[0]'],
      [{ texts: [], vocabSize: 4096, include: ['->'] }, 'include[0]'],
      [{ vocabSize: 4096 }, 'texts'],
      [{ texts: 'one string', vocabSize: 4096 }, 'texts'],
      [{ texts: ['ok', 3], vocabSize: 4096 }, 'texts[1]'],
      [null, 'opts'],
    ];
    for (const [opts, field] of cases) {
      let caught: unknown;
      try {
        buildWordTokenizer(opts as WordTokenizerOptions);
      } catch (e) {
        caught = e;
      }
      expect(caught, JSON.stringify(opts)).toBeInstanceOf(TokenizerError);
      const err = caught as TokenizerError;
      expect(err.code).toBe('TOKENIZER_BAD_OPTION');
      expect(err.details.field).toBe(field);
      expect(err.message).toContain(field);
    }
  });
});

describe('extendWordTokenizer', () => {
  const { tokenizer: grown, added } = extendWordTokenizer(tok, [' quokka', ' cat', ' zebra', ' quokka', ' 123']);

  test('appends only new pieces, in order, after every existing id; existing ids keep their pieces', () => {
    expect(added).toEqual([' quokka', ' zebra', ' 123']);
    expect(grown.vocabSize).toBe(tok.vocabSize + 3);
    for (let id = 0; id < tok.vocabSize; id++) expect(grown.idToToken(id)).toBe(tok.idToToken(id));
    expect(added.map((p) => grown.tokenToId(p))).toEqual([tok.vocabSize, tok.vocabSize + 1, tok.vocabSize + 2]);
    // Before: spelled in characters; after: one token each, and an old word is unchanged.
    expect(tokens(tok, ' quokka').length).toBe(7);
    expect(tokens(grown, 'a quokka, a zebra and a cat')).toEqual([
      'a',
      ' quokka',
      ',',
      ' a',
      ' zebra',
      ' and',
      ' a',
      ' cat',
    ]);
    // Without the leading space the word is still spelled.
    expect(tokens(grown, '[quokka]').length).toBe(8);
  });

  test('stays lossless, and survives saveTokenizer / loadTokenizer and the Hugging Face engine', () => {
    const rng = new Rng(11);
    for (let i = 0; i < 100; i++) {
      const text = randomText(rng) + ' quokka zebra';
      expect(grown.decode(grown.encode(text))).toBe(text);
    }
    const dir = mkdtempSync(join(tmpdir(), 'word-grown-'));
    saveTokenizer(grown, dir);
    const back = loadTokenizer(dir);
    const { tokenizerJson, tokenizerConfig } = grown.toFiles();
    const engine = new Engine(tokenizerJson, tokenizerConfig);
    for (const text of ['a quokka sat on the zebra', ' 123 zebras', 'Quokka']) {
      expect(back.encode(text)).toEqual(grown.encode(text));
      expect(engine.encode(text, { add_special_tokens: false }).ids).toEqual(grown.encode(text));
    }
  });

  test('refuses pieces that are not one pre-token, and tokenizers it did not make, with typed errors', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as TokenizerError;
      }
      throw new Error('expected a throw');
    };
    const twoWords = err(() => extendWordTokenizer(tok, [' ok', ' two words']));
    expect(twoWords).toBeInstanceOf(TokenizerError);
    expect(twoWords.message).toMatch(/pieces\[1\]: expected one pre-token, got " two words"/);
    expect(err(() => extendWordTokenizer(tok, ['']))).toBeInstanceOf(TokenizerError);
    const withGists = err(() => extendWordTokenizer(tok.withGistTokens(2), [' quokka']));
    expect(withGists.message).toMatch(/without gist tokens/);
    const { tokenizerJson, tokenizerConfig } = tok.toFiles();
    const merged = new Tokenizer(
      {
        ...tokenizerJson,
        pre_tokenizer: { type: 'Split', pattern: { Regex: ' ' }, behavior: 'Isolated', invert: false },
      },
      tokenizerConfig,
      'other',
    );
    expect(err(() => extendWordTokenizer(merged, [' quokka'])).message).toMatch(
      /tokenizer: expected a word tokenizer \(buildWordTokenizer\), got "other"/,
    );
  });
});
