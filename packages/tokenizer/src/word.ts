import { addedToken, type TokenizerConfigJson, type TokenizerJson } from './convert.js';
import { TokenizerError } from './errors.js';
import { Tokenizer } from './tokenizer.js';

export interface WordTokenizerOptions {
  /** Corpus whose pre-tokens are counted (a simple regex scan; each string is scanned on its own). */
  texts: Iterable<string>;
  /** Total number of ids, including the special, byte and character pieces (e.g. 4096). */
  vocabSize: number;
  /**
   * Words that become single tokens whatever their frequency, each as written and, where that is also one pre-token,
   * with a leading space (`"dax"` gives `"dax"` and `" dax"`). Each must be one pre-token of {@link WORD_PRE_TOKENIZER_REGEX}
   * (a run of ASCII letters, a run of digits, one other character, optionally after one space, or a run of tabs and
   * newlines).
   */
  include?: readonly string[];
  /** The numbers `0 ... numbers - 1` become single tokens, with and without a leading space (default 100). */
  numbers?: number;
}

/**
 * The pre-tokenizer of {@link buildWordTokenizer}, one alternative per kind of pre-token:
 * - ` ?[A-Za-z]+` a run of ASCII letters, with the space before it;
 * - ` ?[0-9]+` a run of digits, with the space before it;
 * - ` ?[^A-Za-z0-9 \t\n\r]` any other single character (punctuation, a non-ASCII letter, an emoji's code point),
 *   with the space before it;
 * - ` +(?![^ \t\n\r])` a run of spaces, less the last one when a letter, digit or other character follows (that space
 *   goes with the next pre-token, so `"   if"` is `"  "`, `" if"`);
 * - `[\t\n\r]+` a run of tabs and line breaks.
 * Every character of every text falls in exactly one pre-token, so splitting loses nothing. The regex is the same in
 * JavaScript and in Oniguruma (Hugging Face `tokenizers`): no `\s`, `$` or Unicode classes, whose meanings differ.
 */
export const WORD_PRE_TOKENIZER_REGEX =
  ' ?[A-Za-z]+| ?[0-9]+| ?[^A-Za-z0-9 \\t\\n\\r]| +(?![^ \\t\\n\\r])|[\\t\\n\\r]+';

/** The characters that have a piece of their own: newline, tab, space and printable ASCII 33..126. */
export const WORD_TOKENIZER_CHARS: readonly string[] = [
  '\n',
  '\t',
  ' ',
  ...Array.from({ length: 126 - 33 + 1 }, (_, i) => String.fromCharCode(33 + i)),
];

const SPECIALS = ['<unk>', '<s>', '</s>'] as const;
/** `<unk>`, `<s>`, `</s>`, 256 bytes, the characters: ids every word tokenizer has, whatever the options. */
const FIXED = SPECIALS.length + 256 + WORD_TOKENIZER_CHARS.length;

/**
 * A word-level tokenizer: whole English words, label words and small numbers become single tokens, anything else is
 * spelled in characters and, for characters without a piece, in UTF-8 bytes, so every text encodes losslessly
 * (`decode(encode(x)) === x` for any string of valid Unicode; a lone surrogate cannot be written in UTF-8).
 *
 * Ids, in order:
 * - 0 `<unk>` (also padding), 1 `<s>` (BOS), 2 `</s>` (EOS);
 * - 3 ... 258: the byte pieces `<0x00>` ... `<0xFF>` (byte fallback);
 * - 259 ... 355: one piece per character: `\n`, `\t`, space, printable ASCII 33..126;
 * - the numbers `0 ... numbers - 1` as `"n"` and `" n"` (pieces already present, such as `"7"`, are not repeated);
 * - the `include` words, in the order given, each as written and with a leading space;
 * - the most frequent pre-tokens of `texts` that are not yet pieces (`" the"`, `"The"`, `" Congress"`, `"\n\n"`,
 *   `" ("`), by count, ties broken by code-unit order, until `vocabSize`;
 * - if the corpus runs out first, placeholder pieces `<unused_0>`, `<unused_1>`, ... that no text produces, so the
 *   vocabulary always has exactly `vocabSize` ids.
 *
 * As a tokenizer.json: no normalizer; a `Split` pre-tokenizer on {@link WORD_PRE_TOKENIZER_REGEX} (isolated); a BPE
 * model with no merges, `ignore_merges` (a pre-token that is a piece is one token; any other falls apart into its
 * characters) and `byte_fallback`; BOS added by the post-processor (for Hugging Face; `Tokenizer.encode` adds BOS
 * and EOS only when asked, as for every tokenizer of this package); a decoder `ByteFallback` + `Fuse`.
 */
export function buildWordTokenizer(opts: WordTokenizerOptions): Tokenizer {
  if (!opts || typeof opts !== 'object') badOption('opts', 'an options object', opts);
  const { vocabSize, include = [], numbers = 100 } = opts;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 1) badOption('vocabSize', 'a positive integer', vocabSize);
  if (!Number.isSafeInteger(numbers) || numbers < 0) badOption('numbers', 'a non-negative integer', numbers);
  if (!Array.isArray(include)) badOption('include', 'an array of strings', include);
  if (opts.texts == null || typeof (opts.texts as Iterable<string>)[Symbol.iterator] !== 'function') {
    badOption('texts', 'an iterable of strings', typeof opts.texts === 'string' ? 'a string' : opts.texts);
  }
  if (typeof opts.texts === 'string') badOption('texts', 'an iterable of strings, not one string', 'a string');

  const pieces: string[] = [...SPECIALS];
  for (let b = 0; b < 256; b++) pieces.push(bytePiece(b));
  pieces.push(...WORD_TOKENIZER_CHARS);
  const known = new Set(pieces);
  const add = (piece: string): void => {
    if (!known.has(piece)) {
      known.add(piece);
      pieces.push(piece);
    }
  };
  for (let n = 0; n < numbers; n++) {
    add(String(n));
    add(' ' + String(n));
  }
  include.forEach((word, i) => {
    if (typeof word !== 'string' || word.length === 0) badOption(`include[${i}]`, 'a non-empty string', word);
    if (!isOnePreToken(word)) {
      badOption(
        `include[${i}]`,
        'one pre-token (letters, digits, or one other character, after at most one space; or tabs and newlines)',
        word,
      );
    }
    add(word);
    if (isOnePreToken(' ' + word)) add(' ' + word);
  });
  if (pieces.length > vocabSize) {
    throw new TokenizerError(
      'TOKENIZER_BAD_OPTION',
      `buildWordTokenizer: vocabSize: expected at least ${pieces.length} (${FIXED} special, byte and character pieces, ${pieces.length - FIXED} for numbers and include), got ${vocabSize}`,
      { field: 'vocabSize', expected: `at least ${pieces.length}`, actual: vocabSize },
    );
  }

  const counts = countPreTokens(opts.texts);
  const corpus = [...counts].filter(([piece]) => !known.has(piece));
  corpus.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [piece] of corpus) {
    if (pieces.length >= vocabSize) break;
    add(piece);
  }
  const words = pieces.length - FIXED;
  for (let i = 0; pieces.length < vocabSize; i++) add(`<unused_${i}>`);

  return new Tokenizer(wordTokenizerJson(pieces), wordTokenizerConfig(), `word tokenizer (${words} words)`);
}

/** Counts of the pre-tokens of `texts` (the same pieces the tokenizer's pre-tokenizer cuts). */
function countPreTokens(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  const re = new RegExp(WORD_PRE_TOKENIZER_REGEX, 'gu');
  let i = 0;
  for (const text of texts) {
    if (typeof text !== 'string') badOption(`texts[${i}]`, 'a string', typeof text);
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const piece = m[0];
      counts.set(piece, (counts.get(piece) ?? 0) + 1);
    }
    i++;
  }
  return counts;
}

function isOnePreToken(s: string): boolean {
  const m = new RegExp(WORD_PRE_TOKENIZER_REGEX, 'uy').exec(s);
  return m !== null && m[0].length === s.length;
}

function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

function wordTokenizerJson(pieces: readonly string[]): TokenizerJson {
  // Null prototype: pieces such as "constructor" must be plain keys.
  const vocab: Record<string, number> = Object.create(null);
  pieces.forEach((p, id) => {
    vocab[p] = id;
  });
  const [unk, bos] = SPECIALS;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s, id) => addedToken(id, s, true)),
    normalizer: null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: WORD_PRE_TOKENIZER_REGEX }, behavior: 'Isolated', invert: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [1], tokens: [bos] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: true,
      ignore_merges: true,
      vocab,
      merges: [],
    },
  };
}

function wordTokenizerConfig(): TokenizerConfigJson {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
  };
}

function badOption(field: string, expected: string, actual: unknown): never {
  throw new TokenizerError(
    'TOKENIZER_BAD_OPTION',
    `buildWordTokenizer: ${field}: expected ${expected}, got ${JSON.stringify(actual)}`,
    {
      field,
      expected,
      actual,
    },
  );
}

/**
 * A word tokenizer (made by {@link buildWordTokenizer}) with more pieces: each of `pieces` that is not yet a piece
 * gets the next id, in the order given, after every existing id, so every existing id keeps its piece and a model
 * trained on `tokenizer` only needs new embedding rows. Each piece must be one pre-token of
 * {@link WORD_PRE_TOKENIZER_REGEX} (e.g. `" window"`); `added` lists the new pieces in id order.
 * A tokenizer of another kind, or with gist tokens, is refused (`TOKENIZER_BAD_OPTION`).
 */
export function extendWordTokenizer(
  tokenizer: Tokenizer,
  pieces: readonly string[],
): { tokenizer: Tokenizer; added: string[] } {
  const fail = (field: string, expected: string, actual: unknown): never => {
    throw new TokenizerError(
      'TOKENIZER_BAD_OPTION',
      `extendWordTokenizer: ${field}: expected ${expected}, got ${JSON.stringify(actual)}`,
      { field, expected, actual },
    );
  };
  if (!(tokenizer instanceof Tokenizer)) fail('tokenizer', 'a Tokenizer', typeof tokenizer);
  if (!Array.isArray(pieces)) fail('pieces', 'an array of strings', pieces);
  const { tokenizerJson, tokenizerConfig } = tokenizer.toFiles();
  const model = tokenizerJson.model as { type?: string; ignore_merges?: boolean; merges?: unknown[]; vocab?: unknown };
  const pre = tokenizerJson.pre_tokenizer as { type?: string; pattern?: { Regex?: string } } | null;
  const isWordTokenizer =
    model.type === 'BPE' &&
    model.ignore_merges === true &&
    Array.isArray(model.merges) &&
    model.merges.length === 0 &&
    pre?.type === 'Split' &&
    pre.pattern?.Regex === WORD_PRE_TOKENIZER_REGEX;
  if (!isWordTokenizer) fail('tokenizer', 'a word tokenizer (buildWordTokenizer)', tokenizer.source);
  if (tokenizer.gistIds.length > 0) fail('tokenizer', 'a tokenizer without gist tokens', tokenizer.source);
  const vocab: Record<string, number> = Object.assign(Object.create(null), model.vocab);
  let next = tokenizer.vocabSize;
  const added: string[] = [];
  pieces.forEach((piece, i) => {
    if (typeof piece !== 'string' || !isOnePreToken(piece)) fail(`pieces[${i}]`, 'one pre-token', piece);
    if (piece in vocab) return;
    vocab[piece] = next++;
    added.push(piece);
  });
  model.vocab = vocab;
  const words = Object.keys(vocab).length - FIXED;
  return { tokenizer: new Tokenizer(tokenizerJson, tokenizerConfig, `word tokenizer (${words} words)`), added };
}
