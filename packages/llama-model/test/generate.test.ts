import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@hyperllama/runtime';
import { loadTokenizer } from '@hyperllama/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ModelError,
  createLlama,
  generate,
  loadLlama,
  sampleToken,
  type LlamaConfig,
  type LlamaModel,
} from '../src/index.js';
import { STORIES } from './helpers.js';

const config: LlamaConfig = {
  vocabSize: 23,
  hiddenSize: 16,
  intermediateSize: 24,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
};

let model: LlamaModel;
beforeAll(async () => {
  await tf.setBackend('cpu');
  model = createLlama(config, { seed: 5, std: 0.5 });
});
afterAll(() => model.dispose());

describe('generate', () => {
  const prompts = [
    [1, 7, 3, 9, 12, 4],
    [1, 5],
    [1, 8, 8, 20],
  ];
  const tokensOf = async (ps: number[][], opts: Parameters<typeof generate>[2]) =>
    (await generate(model, ps, opts)).tokens;

  it('a left-padded batch generates what each prompt generates alone (greedy)', async () => {
    const opts = { maxNewTokens: 12, stopIds: [] };
    const batch = await generate(model, prompts, opts);
    for (const [row, p] of prompts.entries()) expect(batch.tokens[row]).toEqual((await tokensOf([p], opts))[0]);
    expect(batch.tokens.every((t) => t.length === 12)).toBe(true);
    expect(batch.finishReasons).toEqual(['length', 'length', 'length']);
  });

  it("when sampling, row r's stream depends only on (seed, r), not on the other rows", async () => {
    const opts = { maxNewTokens: 12, stopIds: [], temperature: 0.9, topK: 10, topP: 0.95, seed: 4 };
    const batch = await tokensOf(prompts, opts);
    expect(batch[0]).toEqual((await tokensOf([prompts[0]], opts))[0]);
    expect(batch[1]).toEqual((await tokensOf([prompts[2], prompts[1], prompts[0]], opts))[1]);
  });

  it('is reproducible for a seed and differs across seeds; topK 1 is greedy', async () => {
    const sample = async (seed: number) =>
      (await tokensOf([prompts[0]], { maxNewTokens: 20, temperature: 1.5, seed, stopIds: [] }))[0];
    expect(await sample(1)).toEqual(await sample(1));
    expect(await sample(1)).not.toEqual(await sample(2));
    const greedy = (await tokensOf([prompts[0]], { maxNewTokens: 20, stopIds: [] }))[0];
    expect(
      (await tokensOf([prompts[0]], { maxNewTokens: 20, temperature: 1.5, topK: 1, seed: 9, stopIds: [] }))[0],
    ).toEqual(greedy);
  });

  it('greedy decoding with the cache picks the argmax of a full forward at every step', async () => {
    const out = (await tokensOf([prompts[0]], { maxNewTokens: 8, stopIds: [] }))[0];
    const all = [...prompts[0], ...out];
    const logits = tf.tidy(
      () => model.forward({ inputIds: tf.tensor2d([all], undefined, 'int32') }).logits!.arraySync()[0],
    ) as number[][];
    out.forEach((tok, i) => {
      const row = logits[prompts[0].length - 1 + i];
      expect(row.indexOf(Math.max(...row))).toBe(tok);
    });
  });

  it('stops at a stop id (excluded from the output)', async () => {
    const free = (await tokensOf([prompts[0]], { maxNewTokens: 10, stopIds: [] }))[0];
    const stopAt = free[4];
    const first = free.indexOf(stopAt);
    const stopped = await generate(model, [prompts[0]], { maxNewTokens: 10, stopIds: [stopAt] });
    expect(stopped.tokens[0]).toEqual(free.slice(0, first));
    expect(stopped.finishReasons[0]).toBe('stop');
  });

  it("stops by default at any of the config's eos ids (Llama 3.1 instruct lists several)", async () => {
    const free = (await tokensOf([prompts[0]], { maxNewTokens: 10, stopIds: [] }))[0];
    const notEos = Array.from({ length: config.vocabSize }, (_, i) => i).find((i) => !free.includes(i))!;
    const stopAt = free[4];
    // The same weights (same seed) with a list of eos ids whose second entry is generated.
    const listed = createLlama({ ...config, eosTokenId: notEos, eosTokenIds: [notEos, stopAt] }, { seed: 5, std: 0.5 });
    const stopped = await generate(listed, [prompts[0]], { maxNewTokens: 10 });
    expect(stopped.tokens[0]).toEqual(free.slice(0, free.indexOf(stopAt)));
    expect(stopped.finishReasons[0]).toBe('stop');
    // With only the first id as eos it runs on.
    const single = createLlama({ ...config, eosTokenId: notEos }, { seed: 5, std: 0.5 });
    expect((await generate(single, [prompts[0]], { maxNewTokens: 10 })).tokens[0]).toEqual(free);
    listed.dispose();
    single.dispose();
  });

  it("conditioning on a prefix of the prompt's own K,V continues exactly like the whole prompt", async () => {
    const [head, tail] = [prompts[0].slice(0, 4), prompts[0].slice(4)];
    const out = model.forward({ inputIds: tf.tensor2d([head], undefined, 'int32'), returnKV: true });
    const prefix = { keys: out.kv!.map((l) => l.keys), values: out.kv!.map((l) => l.values), length: head.length };
    const whole = (await tokensOf([prompts[0]], { maxNewTokens: 10, stopIds: [] }))[0];
    expect(await tokensOf([tail, tail], { maxNewTokens: 10, stopIds: [], prefix })).toEqual([whole, whole]);
    tf.dispose([out.logits!, ...out.kv!.flatMap((l) => [l.keys, l.values, l.keysPreRope])]);
  });

  it('leaks no tensors and validates options', async () => {
    const before = tf.memory().numTensors;
    await generate(model, prompts, { maxNewTokens: 5, temperature: 1, seed: 3 });
    expect(tf.memory().numTensors).toBe(before);
    await expect(generate(model, [[1]], { maxNewTokens: -1 })).rejects.toThrow(ModelError);
    await expect(generate(model, [[1]], { maxNewTokens: 3, topP: 0 })).rejects.toThrow(/topP/);
    await expect(generate(model, ['text'], { maxNewTokens: 3 })).rejects.toThrow(/no tokenizer/);
    await expect(generate(model, [[]], { maxNewTokens: 3 })).rejects.toThrow(ModelError);
  });
});

describe('sampleToken', () => {
  const logits = new Float32Array([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  const counts = (opts: Parameters<typeof sampleToken>[1], n = 20000) => {
    const rng = new Rng(1);
    const c = [0, 0, 0];
    for (let i = 0; i < n; i++) c[sampleToken(logits, opts, rng)]++;
    return c.map((x) => x / n);
  };

  it('samples the softmax at temperature 1 and sharpens it below 1', () => {
    const freq = counts({ temperature: 1 });
    [0.5, 0.3, 0.2].forEach((p, i) => expect(Math.abs(freq[i] - p)).toBeLessThan(0.015));
    const cold = counts({ temperature: 0.5 }); // p² normalised: 0.658, 0.237, 0.105
    [0.658, 0.237, 0.105].forEach((p, i) => expect(Math.abs(cold[i] - p)).toBeLessThan(0.015));
  });

  it('top-k and top-p keep the most likely tokens and renormalise', () => {
    const k2 = counts({ temperature: 1, topK: 2 });
    expect(k2[2]).toBe(0);
    expect(Math.abs(k2[0] - 0.625)).toBeLessThan(0.015);
    expect(counts({ temperature: 1, topP: 0.7 })[2]).toBe(0); // 0.5 + 0.3 reaches 0.7
    expect(counts({ temperature: 1, topP: 0.5 })).toEqual([1, 0, 0]);
    expect(sampleToken(logits, { temperature: 0 }, new Rng(0))).toBe(0);
  });
});

const storiesBin = join(STORIES, 'stories260K.bin');
describe.skipIf(!existsSync(storiesBin))(`stories260K greedy (needs ${storiesBin})`, () => {
  it("reproduces llama2.c's documented greedy output from BOS, stopping at BOS", async () => {
    const stories = loadLlama(storiesBin);
    const tokenizer = loadTokenizer(join(STORIES, 'tok512.bin'));
    // run.c with steps=256 runs forward at positions 0..255 and prints each step's token: 256 new tokens, then "\n".
    const result = await generate(stories, [[1]], { maxNewTokens: 256, stopIds: [1], tokenizer });
    const expected = readFileSync(join(STORIES, 'expected_greedy.txt'), 'utf8');
    expect(result.texts![0] + '\n').toBe(expected);
    expect(result.finishReasons[0]).toBe('length');
    stories.dispose();
  });
});
