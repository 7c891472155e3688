import { syntheticVocabulary, type TextDocument } from '@hyperllama/datasets';
import {
  PieceType,
  Tokenizer,
  buildWordTokenizer,
  tokenizerConfigFromPieces,
  tokenizerJsonFromPieces,
  type SentencePieceVocab,
} from '@hyperllama/tokenizer';

/**
 * The built-in offline tokenizer of the tiny default: a character-level SentencePiece-style BPE vocabulary with
 * byte fallback. Ids: 0 `<unk>` (also padding), 1 `<s>`, 2 `</s>`, 3..258 the byte pieces `<0x00>`..`<0xFF>`, then
 * one piece per character: `\n`, `\t`, `▁` (space) and printable ASCII 33..126 (356 in all). Any other character is
 * spelled in UTF-8 bytes. No merges: every character is one token, which keeps synthetic tasks easy to learn.
 */
export function charTokenizer(): Tokenizer {
  const pieces: SentencePieceVocab['pieces'] = [
    { piece: '<unk>', score: 0, type: PieceType.Unknown },
    { piece: '<s>', score: 0, type: PieceType.Control },
    { piece: '</s>', score: 0, type: PieceType.Control },
  ];
  for (let b = 0; b < 256; b++)
    pieces.push({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: PieceType.Byte });
  const chars = ['\n', '\t', '\u2581', ...Array.from({ length: 126 - 33 + 1 }, (_, i) => String.fromCharCode(33 + i))];
  chars.forEach((c, i) => pieces.push({ piece: c, score: -i, type: PieceType.Normal }));
  const vocab: SentencePieceVocab = {
    pieces,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    byteFallback: true,
    addDummyPrefix: false,
    removeExtraWhitespaces: false,
  };
  return new Tokenizer(
    tokenizerJsonFromPieces(vocab),
    tokenizerConfigFromPieces(vocab),
    'built-in character tokenizer',
  );
}

/** Default vocabulary size of the built-in word tokenizer. */
export const WORD_VOCAB_SIZE = 4096;

/**
 * The built-in word tokenizer (`model.tokenizer: builtin:word`): whole words as single tokens — every word the
 * synthetic tasks use, the numbers 0-99, then the corpus's most frequent words — up to `vocabSize` ids, with
 * characters and UTF-8 bytes as the fallback, so any text encodes losslessly. Deterministic for the same corpus.
 * A size too small for the tasks' words is the tokenizer package's typed error.
 */
export function wordTokenizer(corpus: readonly TextDocument[], vocabSize = WORD_VOCAB_SIZE): Tokenizer {
  return buildWordTokenizer({
    texts: corpus.map((d) => d.text),
    vocabSize,
    include: ['Input', 'Output', ...syntheticVocabulary()],
  });
}

/** Names `model.tokenizer` accepts for the built-in tokenizers. */
export const BUILTIN_TOKENIZERS = ['builtin:char', 'builtin:word'] as const;
