import type { GgufMetadata, GgufValue } from '@hyperllama/runtime';
import { TokenizerError } from './errors.js';
import { detectSentencePieceLayout } from './fast-path.js';
import { LLAMA3_SPLIT_PATTERN } from './llama3.js';
import type { Tokenizer } from './tokenizer.js';

/** llama.cpp's token types (`llama_token_type`). */
const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Options of `ggufTokenizerMetadata` (the model's vocabulary size). */
export interface GgufTokenizerOptions {
  /**
   * Rows of the model's embedding: llama.cpp needs exactly that many tokens. Ids the tokenizer lacks become unused
   * `[PAD<id>]` tokens, as llama.cpp's converter pads; a tokenizer with more tokens is refused. Default: its own count.
   */
  vocabSize?: number;
}

function notGguf(tokenizer: Tokenizer, why: string): never {
  throw new TokenizerError(
    'TOKENIZER_NOT_GGUF',
    `${tokenizer.source}: GGUF (llama.cpp) cannot express this tokenizer: ${why}. Export ids only instead.`,
    { file: tokenizer.source },
  );
}

/** The merges of a BPE tokenizer.json as `[left, right]` pairs (they are `"a b"` strings or pairs on disk). */
function mergePairs(merges: unknown): Array<[string, string]> {
  if (!Array.isArray(merges)) return [];
  return merges.map((m: unknown) =>
    Array.isArray(m) ? [String(m[0]), String(m[1])] : (String(m).split(' ', 2) as [string, string]),
  );
}

/** llama.cpp's `tokenizer.ggml.pre` for a byte-level BPE pre-tokenizer, or null when it knows none that matches. */
function bytePreTokenizer(pre: unknown): string | null {
  const p = pre as { type?: string; use_regex?: boolean; pretokenizers?: unknown[] } | null;
  if (p?.type === 'ByteLevel' && p.use_regex !== false) return 'gpt-2';
  const steps = p?.type === 'Sequence' ? (p.pretokenizers as Array<Record<string, unknown>>) : [];
  const [split, bytes] = steps;
  if (
    steps.length === 2 &&
    split.type === 'Split' &&
    (split.pattern as { Regex?: string } | undefined)?.Regex === LLAMA3_SPLIT_PATTERN &&
    bytes.type === 'ByteLevel' &&
    bytes.use_regex === false
  )
    return 'llama-bpe';
  return null;
}

/**
 * The `tokenizer.ggml.*` metadata of a GGUF file for `tokenizer`, as llama.cpp's converter writes it, or a
 * `TOKENIZER_NOT_GGUF` error when llama.cpp cannot express it.
 * - a SentencePiece-layout BPE (Llama 1/2, our SentencePiece conversions) becomes `llama` (llama.cpp's SentencePiece
 *   tokenizer). A tokenizer.json carries merges, not SentencePiece's scores, so each piece's score is minus the rank of
 *   its first merge: llama.cpp then merges in the same order as the BPE merges;
 * - a byte-level BPE with GPT-2's or Llama 3's pre-tokenizer becomes `gpt2` with merges and `tokenizer.ggml.pre`
 *   `gpt-2` or `llama-bpe`.
 * Special ids (BOS, EOS, unknown, padding when the config names one), whether BOS/EOS are added, and token types
 * (control, unknown, byte, user-defined, normal) come along. Anything else throws a `TokenizerError`
 * `TOKENIZER_NOT_GGUF` naming what llama.cpp lacks: e.g. `buildWordTokenizer`'s regex pre-tokenizer, or SentencePiece's
 * whitespace collapsing (stories260K's `tok512.model`). llama.cpp's `llama-bpe` decoder always drops spaces before punctuation
 * (as `clean_up_tokenization_spaces` does); token ids are unaffected.
 */
export function ggufTokenizerMetadata(tokenizer: Tokenizer, opts: GgufTokenizerOptions = {}): GgufMetadata {
  const { tokenizerJson: json, tokenizerConfig: config } = tokenizer.toFiles();
  const model = json.model;
  if (model.type !== 'BPE') notGguf(tokenizer, `its model is ${model.type ?? 'untyped'}, not BPE`);
  const layout = detectSentencePieceLayout(json);
  const pre = layout ? null : bytePreTokenizer(json.pre_tokenizer);
  if (!layout && !pre) {
    notGguf(
      tokenizer,
      `its pre-tokenizer ${JSON.stringify(json.pre_tokenizer)?.slice(0, 200)} is neither SentencePiece's layout nor GPT-2's or Llama 3's byte-level split`,
    );
  }
  if (layout?.removeExtraWhitespaces) {
    notGguf(
      tokenizer,
      "its normalizer removes extra whitespace (SentencePiece's remove_extra_whitespaces), which llama.cpp's SentencePiece tokenizer does not: leading, trailing and repeated spaces would tokenize differently",
    );
  }
  const n = opts.vocabSize ?? tokenizer.numTokens;
  if (tokenizer.numTokens > n) {
    throw new TokenizerError(
      'TOKENIZER_VOCAB_MISMATCH',
      `${tokenizer.source}: ${tokenizer.numTokens} tokens do not fit a model with ${n} embedding rows`,
      { file: tokenizer.source, expected: n, actual: tokenizer.numTokens },
    );
  }
  const special = new Set(json.added_tokens.filter((t) => t.special).map((t) => t.id));
  const userDefined = new Set(json.added_tokens.filter((t) => !t.special).map((t) => t.id));
  const merges = mergePairs(model.merges);
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < n; id++) {
    const text = tokenizer.idToToken(id);
    tokens.push(text ?? `[PAD${id}]`);
    if (text === undefined) types.push(TokenType.UNUSED);
    else if (id === tokenizer.unkId) types.push(TokenType.UNKNOWN);
    else if (special.has(id) || id === tokenizer.bosId || id === tokenizer.eosId) types.push(TokenType.CONTROL);
    else if (userDefined.has(id)) types.push(TokenType.USER_DEFINED);
    else if (layout && model.byte_fallback === true && /^<0x[0-9A-F]{2}>$/.test(text)) types.push(TokenType.BYTE);
    else types.push(TokenType.NORMAL);
  }
  // Without add_bos_token in the config, BOS is added when a post-processor is there (it is what adds it).
  const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : json.post_processor != null;
  const meta: GgufMetadata = new Map<string, GgufValue>();
  meta.set('tokenizer.ggml.model', { type: 'STRING', value: layout ? 'llama' : 'gpt2' });
  if (pre) meta.set('tokenizer.ggml.pre', { type: 'STRING', value: pre });
  meta.set('tokenizer.ggml.tokens', { type: 'ARRAY', itemType: 'STRING', value: tokens });
  if (layout) {
    // Score = −(1 + rank of the first merge that makes the piece), 0 for pieces no merge makes: llama.cpp merges the
    // highest-scoring pair first.
    const scores = new Float32Array(n);
    const rankOf = new Map<string, number>();
    merges.forEach(([a, b], rank) => {
      if (!rankOf.has(a + b)) rankOf.set(a + b, rank);
    });
    tokens.forEach((t, id) => {
      const rank = rankOf.get(t);
      scores[id] = rank === undefined ? 0 : -(rank + 1);
    });
    meta.set('tokenizer.ggml.scores', { type: 'ARRAY', itemType: 'FLOAT32', value: scores });
  }
  meta.set('tokenizer.ggml.token_type', { type: 'ARRAY', itemType: 'INT32', value: types });
  if (!layout)
    meta.set('tokenizer.ggml.merges', { type: 'ARRAY', itemType: 'STRING', value: merges.map((m) => m.join(' ')) });
  meta.set('tokenizer.ggml.bos_token_id', { type: 'UINT32', value: tokenizer.bosId });
  meta.set('tokenizer.ggml.eos_token_id', { type: 'UINT32', value: tokenizer.eosId });
  if (tokenizer.unkId !== undefined)
    meta.set('tokenizer.ggml.unknown_token_id', { type: 'UINT32', value: tokenizer.unkId });
  if (tokenizer.hasPadToken) meta.set('tokenizer.ggml.padding_token_id', { type: 'UINT32', value: tokenizer.padId });
  meta.set('tokenizer.ggml.add_bos_token', { type: 'BOOL', value: addBos });
  meta.set('tokenizer.ggml.add_eos_token', { type: 'BOOL', value: config.add_eos_token === true });
  if (layout) meta.set('tokenizer.ggml.add_space_prefix', { type: 'BOOL', value: layout.addDummyPrefix });
  return meta;
}
