import oracle from 'llama3-tokenizer-js';
import { describe, expect, it } from 'vitest';
import {
  LLAMA3_BASE_VOCAB_SIZE,
  Tokenizer,
  TokenizerError,
  buildWordTokenizer,
  ggufTokenizerMetadata,
  llama3TokenizerConfig,
  llama3TokenizerJson,
  loadTokenizer,
} from '../src/index.js';
import { LLAMA2_MODEL, TOK512_BIN, TOK512_MODEL, missing, skipNote } from './helpers.js';

// llama.cpp itself reading these metadata is tested in @hyperllama/llama-model (test/gguf-llamacpp.test.ts).

function errorCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TokenizerError);
    return (e as TokenizerError).code;
  }
  return 'no error';
}

describe('ggufTokenizerMetadata', () => {
  const noLlama2 = missing(LLAMA2_MODEL);
  it.skipIf(noLlama2)(`Llama 2 SentencePiece → "llama": tokens, types, merge-rank scores${skipNote(noLlama2)}`, () => {
    const tok = loadTokenizer(LLAMA2_MODEL);
    const meta = ggufTokenizerMetadata(tok, { vocabSize: 32002 });
    const get = (k: string) => meta.get(k)!.value;
    expect(get('tokenizer.ggml.model')).toBe('llama');
    expect(meta.has('tokenizer.ggml.merges')).toBe(false);
    const tokens = get('tokenizer.ggml.tokens') as string[];
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(tokens[15043]).toBe('▁Hello');
    expect(tokens.slice(32000)).toEqual(['[PAD32000]', '[PAD32001]']); // padding up to the embedding rows
    const types = Array.from(get('tokenizer.ggml.token_type') as ArrayLike<number>);
    expect([types[0], types[1], types[2], types[3], types[258], types[259], types[15043], types[32000]]).toEqual([
      2, 3, 3, 6, 6, 1, 1, 5,
    ]);
    // Scores order merged pieces as the BPE merges do: the earlier merge, the higher score.
    const scores = get('tokenizer.ggml.scores') as Float32Array;
    const merges = (tok.toFiles().tokenizerJson.model.merges as Array<string | string[]>).map((m) =>
      Array.isArray(m) ? m.join('') : m.replace(' ', ''),
    );
    const first = tok.tokenToId(merges[0])!;
    expect(scores[first]).toBe(-1);
    expect(scores[tok.tokenToId(merges[1000])!]).toBeLessThan(scores[tok.tokenToId(merges[10])!]);
    expect(scores[3]).toBe(0); // a byte piece is made by no merge
    expect(get('tokenizer.ggml.bos_token_id')).toBe(1);
    expect(get('tokenizer.ggml.eos_token_id')).toBe(2);
    expect(get('tokenizer.ggml.unknown_token_id')).toBe(0);
    expect(get('tokenizer.ggml.add_bos_token')).toBe(true);
    expect(get('tokenizer.ggml.add_space_prefix')).toBe(true);
    expect(errorCode(() => ggufTokenizerMetadata(tok, { vocabSize: 31999 }))).toBe('TOKENIZER_VOCAB_MISMATCH');
  });

  it('Llama 3 byte-level BPE → "gpt2" with pre "llama-bpe", merges as "a b", special tokens as control', () => {
    const merges = [...oracle.merges.entries()].sort((a, b) => a[1] - b[1]).map(([m]) => m);
    const vocab = oracle.vocabById.slice(0, LLAMA3_BASE_VOCAB_SIZE);
    const tok = new Tokenizer(llama3TokenizerJson({ vocab, merges }), llama3TokenizerConfig());
    const meta = ggufTokenizerMetadata(tok);
    expect(meta.get('tokenizer.ggml.model')!.value).toBe('gpt2');
    expect(meta.get('tokenizer.ggml.pre')!.value).toBe('llama-bpe');
    expect(meta.get('tokenizer.ggml.tokens')!.value).toEqual(oracle.vocabById);
    expect(meta.get('tokenizer.ggml.merges')!.value).toEqual(merges);
    const types = meta.get('tokenizer.ggml.token_type')!.value as ArrayLike<number>;
    expect([types[0], types[128000], types[128255]]).toEqual([1, 3, 3]);
    expect(meta.get('tokenizer.ggml.bos_token_id')!.value).toBe(128000);
    expect(meta.has('tokenizer.ggml.scores')).toBe(false);
  });

  it("refuses, naming the reason, what llama.cpp cannot express: the word-level tokenizer's regex split", () => {
    const word = buildWordTokenizer({ texts: ['the cat sat on the mat'], vocabSize: 600 });
    expect(errorCode(() => ggufTokenizerMetadata(word))).toBe('TOKENIZER_NOT_GGUF');
    expect(() => ggufTokenizerMetadata(word)).toThrow(/pre-tokenizer .*Split/);
  });

  const noTok512 = missing(TOK512_MODEL, TOK512_BIN);
  it.skipIf(noTok512)(
    `refuses SentencePiece whitespace collapsing (tok512.model); llama2.c's tok512.bin keeps spaces and converts${skipNote(noTok512)}`,
    () => {
      expect(() => ggufTokenizerMetadata(loadTokenizer(TOK512_MODEL))).toThrow(/remove_extra_whitespaces/);
      const meta = ggufTokenizerMetadata(loadTokenizer(TOK512_BIN));
      expect(meta.get('tokenizer.ggml.model')!.value).toBe('llama');
      expect(meta.get('tokenizer.ggml.tokens')!.value).toHaveLength(512);
    },
  );
});
