import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  LLAMA3_BASE_VOCAB_SIZE,
  Tokenizer,
  ggufTokenizerMetadata,
  llama3TokenizerConfig,
  llama3TokenizerJson,
  loadTokenizer,
} from '@hyperllama/tokenizer';
import oracle from 'llama3-tokenizer-js';
import { LlamaLogLevel, getLlama, type Llama, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLlama, generate, loadLlama, saveGguf, type LlamaConfig, type LlamaModel } from '../src/index.js';
import { STORIES } from './helpers.js';

// llama.cpp (the prebuilt CPU binary node-llama-cpp ships) loads our GGUF export and must compute what we compute.

const config: LlamaConfig = {
  vocabSize: 97,
  hiddenSize: 64,
  intermediateSize: 96,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 16,
  maxPositionEmbeddings: 256,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
};
const PROMPT = [1, 5, 9, 13, 40, 22, 7, 3, 60, 61, 17, 4, 88, 90, 31, 2];
const storiesBin = join(STORIES, 'stories260K.bin');
/** Max |Δ logit| measured with float32 KV caches: 3e-6 on both models (logits up to 7 and 14 in magnitude). */
const LOGIT_TOLERANCE = 1e-4;

let dir: string;
let llama: Llama;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'gguf-llamacpp-'));
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
});
afterAll(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Greedy tokens after `prompt` and the logits after its last token, from llama.cpp with 2 threads. */
async function llamaCpp(path: string, ids: number[], newTokens: number, f32Cache = true) {
  const prompt = ids as Token[];
  const m = await llama.loadModel({ modelPath: path });
  const ctx = await m.createContext({
    contextSize: 256,
    threads: 2,
    flashAttention: false,
    ...(f32Cache ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } : {}),
  });
  try {
    const seq = ctx.getSequence();
    const out = await seq.controlledEvaluate(
      prompt.map((t, i) => (i === prompt.length - 1 ? ([t, { generateNext: { logits: true } }] as const) : t)),
    );
    const logits = out[prompt.length - 1]!.next!.logits!;
    await seq.clearHistory();
    const tokens: Token[] = [];
    for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
      tokens.push(t);
      if (tokens.length === newTokens) break;
    }
    return { tokens, logits };
  } finally {
    await ctx.dispose();
    await m.dispose();
  }
}

/** Max |ours − llama.cpp| over the vocabulary, after the whole prompt. */
function maxLogitDiff(model: LlamaModel, prompt: number[], theirs: Map<number, number>): number {
  const ours = tf.tidy(
    () =>
      model
        .forward({ inputIds: tf.tensor2d([prompt], undefined, 'int32'), lastLogitsOnly: true })
        .logits!.dataSync() as Float32Array,
  );
  expect(theirs.size).toBe(model.config.vocabSize);
  let max = 0;
  for (const [id, v] of theirs) max = Math.max(max, Math.abs(v - ours[id]));
  return max;
}

describe('llama.cpp runs our GGUF export as we run the model', () => {
  it('random GQA model, untied head: same 48 greedy tokens, logits within 1e-4', async () => {
    const model = createLlama(config, { seed: 3, std: 0.3 });
    try {
      saveGguf(model, join(dir, 'random.gguf'));
      const ours = await generate(model, [PROMPT], { maxNewTokens: 48, stopIds: [] });
      const theirs = await llamaCpp(join(dir, 'random.gguf'), PROMPT, 48);
      expect(theirs.tokens).toEqual(ours.tokens[0]);
      expect(new Set(ours.tokens[0]).size).toBeGreaterThan(10); // not a degenerate repeat
      expect(maxLogitDiff(model, PROMPT, theirs.logits)).toBeLessThan(LOGIT_TOLERANCE);
      // llama.cpp's default float16 KV cache rounds keys and values: measured 9e-3, still the same tokens.
      const f16 = await llamaCpp(join(dir, 'random.gguf'), PROMPT, 48, false);
      expect(f16.tokens).toEqual(ours.tokens[0]);
      expect(maxLogitDiff(model, PROMPT, f16.logits)).toBeLessThan(0.05);
    } finally {
      model.dispose();
    }
  });

  it.skipIf(!existsSync(storiesBin))(
    `stories260K (GQA, tied): same 64 greedy tokens (needs ${storiesBin})`,
    async () => {
      const model = loadLlama(storiesBin);
      try {
        saveGguf(model, join(dir, 'stories.gguf'));
        const ours = await generate(model, [[1]], { maxNewTokens: 64, stopIds: [] });
        const theirs = await llamaCpp(join(dir, 'stories.gguf'), [1], 64);
        expect(theirs.tokens).toEqual(ours.tokens[0]);
        expect(
          maxLogitDiff(
            model,
            PROMPT.slice(0, 12),
            (await llamaCpp(join(dir, 'stories.gguf'), PROMPT.slice(0, 12), 1)).logits,
          ),
        ).toBeLessThan(LOGIT_TOLERANCE);
      } finally {
        model.dispose();
      }
    },
  );
});

describe('llama.cpp tokenizes with the exported tokenizer metadata as the reference does', () => {
  const tiny = (vocabSize: number, bos: number, eos: number) =>
    createLlama({
      ...config,
      vocabSize,
      hiddenSize: 8,
      intermediateSize: 8,
      numHiddenLayers: 1,
      numAttentionHeads: 1,
      numKeyValueHeads: 1,
      headDim: 8,
      tieWordEmbeddings: true,
      bosTokenId: bos,
      eosTokenId: eos,
    });

  const llama2 = join(STORIES, '..', '..', 'tokenizers', 'llama2');
  it.skipIf(!existsSync(join(llama2, 'tokenizer.model')))(
    `Llama 2 SentencePiece ("llama"): llama.cpp's own test vectors (needs ${llama2})`,
    async () => {
      const tok = loadTokenizer(join(llama2, 'tokenizer.model'));
      const model = tiny(32000, 1, 2);
      const path = join(dir, 'llama2-vocab.gguf');
      saveGguf(model, path, { tokenizer: ggufTokenizerMetadata(tok, { vocabSize: 32000 }) });
      model.dispose();
      const texts = readFileSync(join(llama2, 'llama-spm.inp'), 'utf8').split('\n__ggml_vocab_test__\n');
      const lines = readFileSync(join(llama2, 'llama-spm.out'), 'utf8').split('\n');
      texts.pop(); // both files end with a separator / newline
      lines.pop();
      expect(texts.length).toBe(lines.length);
      const m = await llama.loadModel({ modelPath: path });
      try {
        texts.forEach((text, i) => {
          const expected = lines[i].trim() === '' ? [] : lines[i].trim().split(/\s+/).map(Number);
          expect([...m.tokenize(text, false)], JSON.stringify(text)).toEqual(expected);
          expect(m.detokenize(expected as Token[])).toBe(tok.decode(expected));
        });
        expect([...m.tokenize('Hello world', false)]).toEqual([15043, 3186]);
        expect(m.tokens.shouldPrependBosToken).toBe(true);
      } finally {
        await m.dispose();
      }
    },
  );

  const tok512 = join(STORIES, 'tok512.bin');
  it.skipIf(!existsSync(storiesBin) || !existsSync(tok512))(
    `stories260K with llama2.c's tok512.bin ("llama", every space kept): ids and text as ours (needs ${tok512})`,
    async () => {
      const tok = loadTokenizer(tok512);
      const model = loadLlama(storiesBin);
      const path = join(dir, 'stories-tok512.gguf');
      saveGguf(model, path, { tokenizer: ggufTokenizerMetadata(tok, { vocabSize: 512 }) });
      model.dispose();
      const llama2 = join(STORIES, '..', '..', 'tokenizers', 'llama2', 'llama-spm.inp');
      const texts = [
        'Once upon a time, there was a little girl named Lily.',
        '  two leading spaces,   three inside and one trailing ',
        'Ünïcödé → byte fallback 🦙\n\tnew line',
        ...(existsSync(llama2) ? readFileSync(llama2, 'utf8').split('\n__ggml_vocab_test__\n') : []),
      ];
      const m = await llama.loadModel({ modelPath: path });
      try {
        for (const text of texts) {
          const ids = tok.encode(text);
          expect([...m.tokenize(text, false)], JSON.stringify(text)).toEqual(ids);
          expect(m.detokenize(ids as Token[])).toBe(tok.decode(ids));
        }
      } finally {
        await m.dispose();
      }
    },
  );

  it('Llama 3 byte-level BPE ("gpt2", pre "llama-bpe"): the ids of llama3-tokenizer-js', async () => {
    const merges = [...oracle.merges.entries()].sort((a, b) => a[1] - b[1]).map(([m]) => m);
    const vocab = oracle.vocabById.slice(0, LLAMA3_BASE_VOCAB_SIZE);
    const tok = new Tokenizer(llama3TokenizerJson({ vocab, merges }), llama3TokenizerConfig());
    const model = tiny(tok.numTokens, tok.bosId, tok.eosId);
    const path = join(dir, 'llama3-vocab.gguf');
    saveGguf(model, path, { tokenizer: ggufTokenizerMetadata(tok) });
    model.dispose();
    const m = await llama.loadModel({ modelPath: path });
    try {
      const texts = [
        'Hello world',
        " Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
        '3 33 333 3333 33333 3.3 3...3',
        '\n \n\n \t\t\t  spaces   and\ttabs\r\n',
        "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
        'нещо на Български ------======= ``````""""......!!!!!!??????',
      ];
      for (const text of texts) {
        const expected = oracle.encode(text, { bos: false, eos: false });
        expect([...m.tokenize(text, false)], JSON.stringify(text)).toEqual(expected);
      }
      // tokenizer.ggml.add_bos_token: the post-processor adds <|begin_of_text|>, and llama.cpp is told to.
      expect(m.tokens.shouldPrependBosToken).toBe(true);
      expect(m.tokens.bos).toBe(oracle.getSpecialTokenId('<|begin_of_text|>'));
    } finally {
      await m.dispose();
    }
  });
});
