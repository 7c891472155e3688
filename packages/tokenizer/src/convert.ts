import { PieceType, type SentencePieceVocab } from './sentencepiece.js';

/** The parts of a Hugging Face `tokenizer.json` this package reads and writes (other fields pass through). */
export interface TokenizerJson {
  version?: string;
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  model: { type?: string; vocab: Record<string, number> | unknown; merges?: unknown; [key: string]: unknown };
  post_processor: unknown;
  decoder: unknown;
  [key: string]: unknown;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** `tokenizer_config.json`, as written by Hugging Face `transformers` (only the fields used here are typed). */
export type TokenizerConfigJson = Record<string, unknown>;

const SPACE_MARK = '\u2581';

export function addedToken(id: number, content: string, special: boolean): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

/**
 * BPE merges of a SentencePiece BPE vocabulary, as Hugging Face's Llama converter derives them: every split of a
 * piece into two pieces that both exist, ordered by the merged piece's score (higher first), then by the merged
 * piece's id, then by the ids of the two halves. Only normal pieces take part (SentencePiece never merges into or
 * out of control, unknown, byte or unused pieces). Splits fall on code-point boundaries.
 */
export function mergesFromPieces(vocab: SentencePieceVocab): Array<[string, string]> {
  const normalIds = new Map<string, number>();
  vocab.pieces.forEach((p, id) => {
    if (p.type === PieceType.Normal) normalIds.set(p.piece, id);
  });
  // One row per merge: [merged id, left id, right id].
  const rows: Array<[number, number, number]> = [];
  for (const [piece, id] of normalIds) {
    for (let cut = 1; cut < piece.length; cut++) {
      if (isLowSurrogate(piece.charCodeAt(cut))) continue;
      const left = normalIds.get(piece.slice(0, cut));
      if (left === undefined) continue;
      const right = normalIds.get(piece.slice(cut));
      if (right !== undefined) rows.push([id, left, right]);
    }
  }
  const score = (id: number): number => vocab.pieces[id].score;
  rows.sort((a, b) => score(b[0]) - score(a[0]) || a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return rows.map(([, l, r]) => [vocab.pieces[l].piece, vocab.pieces[r].piece]);
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * The Hugging Face `tokenizer.json` equivalent to a SentencePiece BPE vocabulary (the layout of HF's Llama converter):
 * a BPE model over the pieces with byte fallback, `<unk>` as the unknown token, merges by score; a normalizer that
 * prepends `▁` (when the model adds a dummy prefix) and replaces spaces by `▁`; no pre-tokenizer; BOS added by the
 * post-processor; a decoder that undoes all of it. Unknown and control pieces become special added tokens.
 */
export function tokenizerJsonFromPieces(vocab: SentencePieceVocab): TokenizerJson {
  // Null prototype: pieces such as "constructor" or "__proto__" must be plain keys.
  const modelVocab: Record<string, number> = Object.create(null);
  vocab.pieces.forEach((p, id) => {
    if (!Object.hasOwn(modelVocab, p.piece)) modelVocab[p.piece] = id;
  });
  const unk = vocab.pieces[vocab.unkId].piece;
  const bos = vocab.bosId >= 0 ? vocab.pieces[vocab.bosId].piece : null;
  const special = (name: string): unknown => ({ SpecialToken: { id: name, type_id: 0 } });
  const sequence = (id: 'A' | 'B'): unknown => ({ Sequence: { id, type_id: 0 } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: vocab.pieces.flatMap((p, id) =>
      p.type === PieceType.Unknown || p.type === PieceType.Control ? [addedToken(id, p.piece, true)] : [],
    ),
    normalizer: sentencePieceNormalizer(vocab),
    pre_tokenizer: null,
    post_processor:
      bos === null
        ? null
        : {
            type: 'TemplateProcessing',
            single: [special(bos), sequence('A')],
            pair: [special(bos), sequence('A'), special(bos), sequence('B')],
            special_tokens: { [bos]: { id: bos, ids: [vocab.bosId], tokens: [bos] } },
          },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE_MARK }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(vocab.addDummyPrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: vocab.byteFallback,
      ignore_merges: false,
      vocab: modelVocab,
      merges: mergesFromPieces(vocab),
    },
  };
}

/**
 * The normalizer of a SentencePiece model with the identity rule: optionally SentencePiece's
 * `remove_extra_whitespaces` (drop leading and trailing spaces, collapse runs of spaces), then the dummy prefix `▁`,
 * then spaces to `▁`. Llama's model uses the prefix without whitespace removal.
 */
export function sentencePieceNormalizer(o: { addDummyPrefix: boolean; removeExtraWhitespaces: boolean }): unknown {
  const steps: unknown[] = [];
  if (o.removeExtraWhitespaces) {
    steps.push({ type: 'Replace', pattern: { Regex: '\\A +| +\\z' }, content: '' });
    steps.push({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' });
  }
  if (o.addDummyPrefix) steps.push({ type: 'Prepend', prepend: SPACE_MARK });
  steps.push({ type: 'Replace', pattern: { String: ' ' }, content: SPACE_MARK });
  return steps.length === 1 ? steps[0] : { type: 'Sequence', normalizers: steps };
}

/** The `tokenizer_config.json` that goes with {@link tokenizerJsonFromPieces}. */
export function tokenizerConfigFromPieces(vocab: SentencePieceVocab): TokenizerConfigJson {
  const name = (id: number): string | null => (id >= 0 ? vocab.pieces[id].piece : null);
  return {
    tokenizer_class: 'LlamaTokenizerFast',
    add_bos_token: true,
    add_eos_token: false,
    bos_token: name(vocab.bosId),
    eos_token: name(vocab.eosId),
    unk_token: name(vocab.unkId),
    pad_token: name(vocab.padId),
    clean_up_tokenization_spaces: false,
    legacy: true,
  };
}
