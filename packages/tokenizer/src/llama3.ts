import type { AddedTokenJson, TokenizerConfigJson, TokenizerJson } from './convert.js';
import { TokenizerError } from './errors.js';

/**
 * Llama 3's pre-tokenizer split (tiktoken's cl100k-style pattern, as in Meta's `tokenizer.json`): case-insensitive
 * English contractions, letter runs with one optional leading non-letter, digits in groups of at most 3, punctuation
 * runs with their line breaks, line-break runs, then other whitespace. Python syntax (`(?i:…)`); the tokenizers
 * engine rewrites it for JavaScript.
 */
export const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Ids of the 128,000 byte-level BPE tokens; the 256 special tokens follow. */
export const LLAMA3_BASE_VOCAB_SIZE = 128000;

/** Llama 3(.1/.2/.3)'s 256 special tokens, in id order from 128000. */
export const LLAMA3_SPECIAL_TOKENS: readonly string[] = [
  '<|begin_of_text|>',
  '<|end_of_text|>',
  '<|reserved_special_token_0|>',
  '<|reserved_special_token_1|>',
  '<|finetune_right_pad_id|>',
  '<|reserved_special_token_2|>',
  '<|start_header_id|>',
  '<|end_header_id|>',
  '<|eom_id|>',
  '<|eot_id|>',
  '<|python_tag|>',
  ...Array.from({ length: 245 }, (_, i) => `<|reserved_special_token_${i + 3}|>`),
];

export interface Llama3VocabOptions {
  /** Byte-level token strings by id (0 … 127999), or a token → id map. */
  vocab: readonly string[] | Readonly<Record<string, number>>;
  /** Merges in priority order: `"a b"` strings or `[a, b]` pairs. */
  merges: readonly string[] | ReadonlyArray<readonly [string, string]>;
  /** Special tokens from id `vocab size` on (default {@link LLAMA3_SPECIAL_TOKENS}). */
  specialTokens?: readonly string[];
}

/**
 * A Llama 3 `tokenizer.json` from its vocabulary and merges, laid out as Meta's: byte-level BPE with
 * `ignore_merges` (a pre-token that is itself a token is not split), the {@link LLAMA3_SPLIT_PATTERN} split then
 * byte-level mapping, the byte-level decoder, `<|begin_of_text|>` added by the post-processor, and the special
 * tokens as added tokens (not normalised, no stripping).
 */
export function llama3TokenizerJson(o: Llama3VocabOptions): TokenizerJson {
  const vocab: Record<string, number> = Array.isArray(o.vocab)
    ? Object.fromEntries((o.vocab as readonly string[]).map((t, i) => [t, i]))
    : { ...(o.vocab as Record<string, number>) };
  const size = Object.values(vocab).reduce((n, id) => Math.max(n, id + 1), 0);
  if (Object.keys(vocab).length !== size)
    throw new TokenizerError(
      'TOKENIZER_BAD_VOCAB',
      `llama3TokenizerJson: vocab has ${Object.keys(vocab).length} distinct tokens for ids 0…${size - 1}`,
      { field: 'vocab', expected: size, actual: Object.keys(vocab).length },
    );
  const merges = o.merges.map((m, i) => {
    const pair = typeof m === 'string' ? m.split(' ') : m;
    if (pair.length !== 2 || !(pair[0] in vocab) || !(pair[1] in vocab) || !(pair[0] + pair[1] in vocab))
      throw new TokenizerError(
        'TOKENIZER_BAD_VOCAB',
        `llama3TokenizerJson: merges[${i}] = ${JSON.stringify(m)} is not two tokens whose join is a token`,
        { field: `merges[${i}]`, actual: m },
      );
    return `${pair[0]} ${pair[1]}`;
  });
  const specials = o.specialTokens ?? LLAMA3_SPECIAL_TOKENS;
  const added: AddedTokenJson[] = specials.map((content, j) => ({
    id: size + j,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const bos = specials[0];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [size], tokens: [bos] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges,
    },
  };
}

/**
 * `tokenizer_config.json` for {@link llama3TokenizerJson}: BOS `<|begin_of_text|>`; EOS `<|end_of_text|>` for a base
 * model, `<|eot_id|>` for an instruction-tuned one (the end of a chat turn). `clean_up_tokenization_spaces` (default
 * false) makes decoding drop spaces before punctuation and contractions, as transformers does when a config sets it.
 */
export function llama3TokenizerConfig(
  o: { instruct?: boolean; cleanUpTokenizationSpaces?: boolean } = {},
): TokenizerConfigJson {
  return {
    bos_token: '<|begin_of_text|>',
    eos_token: o.instruct ? '<|eot_id|>' : '<|end_of_text|>',
    clean_up_tokenization_spaces: o.cleanUpTokenizationSpaces ?? false,
    model_input_names: ['input_ids', 'attention_mask'],
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
}
