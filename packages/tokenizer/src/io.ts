import {
  tokenizerConfigFromPieces,
  tokenizerJsonFromPieces,
  type TokenizerConfigJson,
  type TokenizerJson,
} from './convert.js';
import { TokenizerError } from './errors.js';
import { parseLlama2cVocab } from './llama2c.js';
import { parseSentencePieceModel, type SentencePieceVocab } from './sentencepiece.js';
import { Tokenizer } from './tokenizer.js';
import {
  basenamePath as basename,
  dirnamePath as dirname,
  extnamePath as extname,
  fileSystem,
  joinPath as join,
  nodeWriteFs,
} from '@hyperllama/runtime';

export type TokenizerFormat = 'tokenizer.json' | 'sentencepiece' | 'llama2c';

export interface LoadTokenizerOptions {
  /** Skip detection (by extension, then by content). */
  format?: TokenizerFormat;
  /** For llama2.c `.bin` files, which do not store their size: the expected number of tokens. */
  vocabSize?: number;
}

/**
 * Loads a tokenizer from:
 * - a directory with `tokenizer.json` (plus `tokenizer_config.json` and `special_tokens_map.json` when present),
 *   or failing that a `tokenizer.model`;
 * - a `tokenizer.json` file (its sibling config files are read too when it is named `tokenizer.json`);
 * - a SentencePiece `.model` or a llama2.c `tokenizer.bin`, converted to the equivalent tokenizer.json.
 * Anything unreadable throws a {@link TokenizerError} naming the file.
 */
export function loadTokenizer(path: string, opts: LoadTokenizerOptions = {}): Tokenizer {
  if (!fileSystem().exists(path))
    throw new TokenizerError('TOKENIZER_NOT_FOUND', `${path}: no such file or directory`, { file: path });
  if (fileSystem().isDirectory(path)) {
    for (const name of ['tokenizer.json', 'tokenizer.model']) {
      if (fileSystem().exists(join(path, name))) return loadTokenizer(join(path, name), opts);
    }
    throw new TokenizerError(
      'TOKENIZER_NOT_FOUND',
      `${path}: directory has neither tokenizer.json nor tokenizer.model`,
      { file: path },
    );
  }
  const bytes = fileSystem().readBytes(path);
  const format = opts.format ?? detectFormat(path, bytes);
  if (format === 'tokenizer.json')
    return new Tokenizer(parseJson(bytes, path) as TokenizerJson, siblingConfig(path), path);
  const vocab: SentencePieceVocab =
    format === 'sentencepiece' ? parseSentencePieceModel(bytes, path) : parseLlama2cVocab(bytes, path, opts.vocabSize);
  return new Tokenizer(tokenizerJsonFromPieces(vocab), tokenizerConfigFromPieces(vocab), path);
}

/**
 * Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (created if needed); `loadTokenizer(dir)` gives back
 * a tokenizer with the same ids, special tokens and gist tokens.
 */
export function saveTokenizer(tokenizer: Tokenizer, dir: string): void {
  const { tokenizerJson, tokenizerConfig } = tokenizer.toFiles();
  nodeWriteFs().mkdirSync(dir, { recursive: true });
  nodeWriteFs().writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson, null, 2) + '\n');
  nodeWriteFs().writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
}

function detectFormat(path: string, bytes: Uint8Array): TokenizerFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.json') return 'tokenizer.json';
  if (ext === '.model') return 'sentencepiece';
  if (ext === '.bin') return 'llama2c';
  const first = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first === 0x7b) return 'tokenizer.json'; // '{'
  // A ModelProto starts with field 1 (pieces), length-delimited: tag byte 0x0a.
  if (bytes[0] === 0x0a) return 'sentencepiece';
  throw new TokenizerError(
    'TOKENIZER_UNKNOWN_FORMAT',
    `${path}: unknown tokenizer format (expected tokenizer.json, a SentencePiece .model or a llama2.c .bin; name the format with { format })`,
    { file: path },
  );
}

function parseJson(bytes: Uint8Array, path: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new TokenizerError(
      'TOKENIZER_BAD_JSON',
      `${path}: not valid JSON: ${(e as Error).message}`,
      { file: path },
      { cause: e },
    );
  }
}

/** tokenizer_config.json over special_tokens_map.json, from the directory of a file named tokenizer.json. */
function siblingConfig(path: string): TokenizerConfigJson {
  if (basename(path) !== 'tokenizer.json') return {};
  const read = (name: string): TokenizerConfigJson => {
    const file = join(dirname(path), name);
    if (!fileSystem().exists(file)) return {};
    const value = parseJson(fileSystem().readBytes(file), file);
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      throw new TokenizerError('TOKENIZER_BAD_JSON', `${file}: expected a JSON object`, { file });
    }
    return value as TokenizerConfigJson;
  };
  return { ...read('special_tokens_map.json'), ...read('tokenizer_config.json') };
}
