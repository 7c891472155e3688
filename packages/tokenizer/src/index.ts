export { TokenizerError } from './errors.js';
export {
  Tokenizer,
  gistToken,
  type BatchEncodeOptions,
  type BatchEncoding,
  type DecodeOptions,
  type EncodeOptions,
} from './tokenizer.js';
export { buildWordTokenizer, extendWordTokenizer, type WordTokenizerOptions } from './word.js';
export { loadTokenizer, saveTokenizer, type LoadTokenizerOptions, type TokenizerFormat } from './io.js';
export {
  tokenizerConfigFromPieces,
  tokenizerJsonFromPieces,
  type TokenizerConfigJson,
  type TokenizerJson,
} from './convert.js';
export { PieceType, type SentencePieceVocab, type VocabPiece } from './sentencepiece.js';
export {
  LLAMA3_BASE_VOCAB_SIZE,
  LLAMA3_SPECIAL_TOKENS,
  LLAMA3_SPLIT_PATTERN,
  llama3TokenizerConfig,
  llama3TokenizerJson,
  type Llama3VocabOptions,
} from './llama3.js';
export { llama3ChatIds, renderLlama3Chat, type ChatMessage, type ChatTemplateOptions } from './chat.js';
export { ggufTokenizerMetadata, type GgufTokenizerOptions } from './gguf.js';
