import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HyperLlamaError } from '@hyperllama/runtime';
import { describe, expect, test } from 'vitest';
import { Tokenizer, TokenizerError, loadTokenizer } from '../src/index.js';
import {
  LLAMA2_BIN,
  LLAMA2_MODEL,
  llama2cBytes,
  missing,
  skipNote,
  sentencePieceModelBytes,
  syntheticPieces,
} from './helpers.js';

const PIECES = syntheticPieces([
  ['ab', -1],
  ['a', -2],
  ['b', -3],
  ['\u2581', -4],
]);

function writeTemp(name: string, bytes: Uint8Array | string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'tok-errors-')), name);
  writeFileSync(file, bytes);
  return file;
}

/** Loading `file` throws a TokenizerError (a HyperLlamaError) with `code` whose message and details name the file. */
function expectLoadError(file: string, code: string, opts = {}): TokenizerError {
  let caught: unknown;
  try {
    loadTokenizer(file, opts);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TokenizerError);
  expect(caught).toBeInstanceOf(HyperLlamaError);
  const err = caught as TokenizerError;
  expect(err.code).toBe(code);
  expect(err.message).toContain(file);
  expect(err.details.file).toBe(file);
  return err;
}

describe('malformed inputs throw a typed error naming the file', () => {
  const model = sentencePieceModelBytes(PIECES);
  const bin = llama2cBytes(PIECES);

  test('truncated protobuf', () => {
    for (const cut of [1, 7, Math.floor(model.length / 2), model.length - 3]) {
      expectLoadError(writeTemp('cut.model', model.subarray(0, cut)), 'TOKENIZER_BAD_PROTOBUF');
    }
  });

  test('truncated llama2.c .bin', () => {
    expect(
      expectLoadError(writeTemp('cut.bin', bin.subarray(0, bin.length - 2)), 'TOKENIZER_BAD_LLAMA2C').message,
    ).toMatch(/truncated/);
    expectLoadError(writeTemp('cut.bin', bin.subarray(0, 2)), 'TOKENIZER_BAD_LLAMA2C');
    expectLoadError(writeTemp('cut.bin', bin.subarray(0, 4 + 5)), 'TOKENIZER_BAD_LLAMA2C');
    // Cut exactly between two tokens: only the expected size can tell.
    const cut = writeTemp('short.bin', bin.subarray(0, 4 + 8 + 5));
    expect(expectLoadError(cut, 'TOKENIZER_BAD_LLAMA2C', { vocabSize: PIECES.length }).message).toMatch(
      /at least|expected vocab_size/,
    );
  });

  test.skipIf(missing(LLAMA2_MODEL, LLAMA2_BIN))(
    `truncated genuine Llama-2 files${skipNote(missing(LLAMA2_MODEL, LLAMA2_BIN))}`,
    () => {
      const m = readFileSync(LLAMA2_MODEL);
      expectLoadError(writeTemp('tokenizer.model', m.subarray(0, 123457)), 'TOKENIZER_BAD_PROTOBUF');
      const b = readFileSync(LLAMA2_BIN);
      expectLoadError(writeTemp('tokenizer.bin', b.subarray(0, 200001)), 'TOKENIZER_BAD_LLAMA2C');
    },
  );

  test('a JSON file that is not a tokenizer, and one that is not JSON', () => {
    expect(
      expectLoadError(writeTemp('tokenizer.json', '{"name": "a package.json"}'), 'TOKENIZER_BAD_JSON').message,
    ).toMatch(/model/);
    expectLoadError(writeTemp('tokenizer.json', '[1, 2, 3]'), 'TOKENIZER_BAD_JSON');
    expectLoadError(writeTemp('tokenizer.json', '{"model": {"vocab": {"a": "zero"}}}'), 'TOKENIZER_BAD_JSON');
    expectLoadError(
      writeTemp('tokenizer.json', '{"model": {"type": "Nonsense", "vocab": {"<s>": 0}}}'),
      'TOKENIZER_BAD_JSON',
    );
    expectLoadError(writeTemp('tokenizer.json', '{"model": '), 'TOKENIZER_BAD_JSON');
  });

  test('unknown format, missing path, unsupported SentencePiece models', () => {
    expectLoadError(
      writeTemp('weights', Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0])),
      'TOKENIZER_UNKNOWN_FORMAT',
    );
    expectLoadError('/nonexistent/tokenizer.model', 'TOKENIZER_NOT_FOUND');
    expectLoadError(mkdtempSync(join(tmpdir(), 'tok-empty-')), 'TOKENIZER_NOT_FOUND');
    const unigram = writeTemp('unigram.model', sentencePieceModelBytes(PIECES, { modelType: 1 }));
    expect(expectLoadError(unigram, 'TOKENIZER_UNSUPPORTED').message).toMatch(/UNIGRAM/);
    const withUserDefined = syntheticPieces([
      ['a', -1],
      ['<sep>', 0],
    ]);
    withUserDefined[withUserDefined.length - 1].type = 4;
    const userDefined = writeTemp('user.model', sentencePieceModelBytes(withUserDefined));
    expect(expectLoadError(userDefined, 'TOKENIZER_UNSUPPORTED').message).toMatch(
      /user-defined pieces \(first: "<sep>"\)/,
    );
  });

  test('bad arguments to the tokenizer', () => {
    const tok = loadTokenizer(writeTemp('ok.model', model));
    expect(() => tok.decode([0, 1, PIECES.length])).toThrow(TokenizerError);
    expect(() => tok.decode([1.5])).toThrow(/ids\[0\]/);
    expect(() => tok.encode(42 as unknown as string)).toThrow(TokenizerError);
    expect(() => tok.withGistTokens(0)).toThrow(TokenizerError);
    expect(() => tok.withGistTokens(2).withGistTokens(2)).toThrow(/already has 2 gist tokens/);
    expect(() => new Tokenizer({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] } } as never, {}, 'mem')).toThrow(
      /no bos_token/,
    );
  });
});
