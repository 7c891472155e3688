import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { disposeBackend, initBackend, setWebGPUMatMul } from '@hyperllama/runtime';
import { loadTokenizer } from '@hyperllama/tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findWebGPUAdapter } from '../../../tools/scripts/webgpu-adapter.mjs';
import { createLlama, generate, loadLlama } from '../src/index.js';
import { attend, causalMask } from '../src/attention.js';
import { FIXTURES, STORIES, maxAbsDiff, readReference } from './helpers.js';

// Generation on the webgpu backend (on a machine without a GPU: Mesa's llvmpipe through OpenGL ES), which in Node
// can only read tensors asynchronously: logits and greedy tokens must equal the reference and the cpu backend's.
// Whether an adapter exists is asked of Dawn directly, before our code runs: only its absence skips; any error from
// initBackend itself fails.
const found = await findWebGPUAdapter();
if (!found.adapter) console.warn(`[webgpu.test] skipped: ${found.why}`);

const dir = join(FIXTURES, 'tiny-untied-padded');
const ref = readReference(join(dir, 'reference.safetensors'));
const prompts = [ref.ids[0], ref.ids[1].filter((_, t) => ref.mask[1][t] === 1)];

describe.skipIf(!found.adapter)(`on the webgpu backend (${found.adapter ?? found.why})`, () => {
  let cpuTokens: number[][];
  beforeAll(async () => {
    expect((await initBackend({ backend: 'webgpu' })).name).toBe('webgpu');
    void tf.setBackend('cpu');
    const model = loadLlama(dir, { trainable: false });
    cpuTokens = (await generate(model, prompts, { maxNewTokens: 10, stopIds: [] })).tokens;
    model.dispose();
    void tf.setBackend('webgpu');
  });
  afterAll(async () => {
    await disposeBackend();
  });

  it('logits match the NumPy reference to 1e-4 and a left-padded batch decodes as on cpu', async () => {
    const model = loadLlama(dir, { trainable: false });
    const [B, T] = [ref.ids.length, ref.ids[0].length];
    const inputs = [
      tf.tensor2d(ref.ids, [B, T], 'int32'),
      tf.tensor2d(ref.mask, [B, T], 'int32'),
      tf.tensor2d(ref.positions, [B, T], 'int32'),
    ];
    const logits = model.forward({ inputIds: inputs[0], attentionMask: inputs[1], positionIds: inputs[2] }).logits!;
    const values = (await logits.array()) as number[][][];
    let worst = 0;
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        if (ref.mask[b][t] === 1) worst = Math.max(worst, maxAbsDiff(values[b][t], ref.logits[b][t]));
    expect(worst).toBeLessThan(1e-4);
    const { tokens } = await generate(model, prompts, { maxNewTokens: 10, stopIds: [] });
    expect(tokens).toEqual(cpuTokens);
    tf.dispose([logits, ...inputs]);
    model.dispose();
  });

  it("with the tiled matMul opted in, the forward pass runs its products on it and its logits equal tfjs-webgpu's", async () => {
    const model = loadLlama(dir, { trainable: false });
    const [B, T] = [ref.ids.length, ref.ids[0].length];
    const inputIds = tf.tensor2d(ref.ids, [B, T], 'int32');
    const attentionMask = tf.tensor2d(ref.mask, [B, T], 'int32');
    const backend = tf.findBackend('webgpu') as unknown as {
      runWebGPUProgram(program: { shaderKey: string }, ...rest: unknown[]): unknown;
    };
    const original = backend.runWebGPUProgram;
    let launches = 0;
    backend.runWebGPUProgram = function (program, ...rest) {
      if (program.shaderKey.startsWith('hyperllama_matmul')) launches++;
      return original.call(this, program, ...rest);
    };
    const logits = async () => {
      const out = model.forward({ inputIds, attentionMask }).logits!;
      const values = await out.data();
      out.dispose();
      return values;
    };
    try {
      const tfjs = await logits();
      expect(launches).toBe(0);
      setWebGPUMatMul('tiled');
      const tiled = await logits();
      // Per layer q, k, v, o, gate, up, down and RoPE's rotate_half of q and k, then the LM head (attention itself is
      // one fused kernel).
      expect(launches).toBe(9 * model.config.numHiddenLayers + 1);
      expect(maxAbsDiff(Array.from(tiled), Array.from(tfjs))).toBeLessThan(1e-4);
    } finally {
      setWebGPUMatMul('tfjs');
      backend.runWebGPUProgram = original;
      tf.dispose([inputIds, attentionMask]);
      model.dispose();
    }
  });

  it('attention over more than the adapter binds at once runs in chunks of query rows and equals cpu', async () => {
    // A real GPU binds GiBs; on a device that binds 128 MiB (WebGPU's default) the scores below exceed it cheaply.
    await initBackend({ backend: 'webgpu', webgpuLimits: { maxStorageBufferBindingSize: 2 ** 27 } });
    const limit = (tf.backend() as unknown as { device: { limits: { maxStorageBufferBindingSize: number } } }).device
      .limits.maxStorageBufferBindingSize;
    expect(limit).toBe(2 ** 27);
    const config = {
      vocabSize: 64,
      hiddenSize: 32,
      intermediateSize: 48,
      numHiddenLayers: 1,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 8,
      maxPositionEmbeddings: 4096,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      tieWordEmbeddings: true,
      bosTokenId: 1,
      eosTokenId: 2,
    };
    const [B, H] = [4, config.numAttentionHeads];
    const T = Math.ceil(Math.sqrt(limit / (4 * B * H))) + 32; // [B, H, T, T] float32 scores just over the limit
    const ids = Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => 3 + ((b * 7 + t * 13) % 60)));
    const lastLogits = async (backend: string) => {
      void tf.setBackend('cpu');
      const model = createLlama(config, { seed: 5, std: 0.2 });
      void tf.setBackend(backend);
      const inputIds = tf.tensor2d(ids, [B, T], 'int32');
      const out = model.forward({ inputIds, lastLogitsOnly: true }).logits!;
      const values = await out.data();
      tf.dispose([inputIds, out]);
      model.dispose();
      return values;
    };
    const cpu = await lastLogits('cpu');
    const gpu = await lastLogits('webgpu');
    expect(maxAbsDiff(Array.from(gpu), Array.from(cpu))).toBeLessThan(1e-4);
  });

  it('attention runs as one WGSL kernel and equals the cpu backend, forward and gradient (GQA, padding, causal)', async () => {
    const cases: [number, number, number, number, number, number][] = [
      [2, 4, 2, 5, 7, 8], // B, H, nKv, T, S, hd: a short decode-like block after 2 cached keys
      [1, 2, 1, 70, 100, 16], // more keys than the kernel's 64 lanes
    ];
    for (const [B, H, nKv, T, S, hd] of cases) {
      const rand = (n: number, seed: number) =>
        Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3));
      const qv = rand(B * H * T * hd, 1);
      const kv = rand(B * nKv * S * hd, 2);
      const vv = rand(B * nKv * S * hd, 3);
      const dyv = rand(B * T * H * hd, 4);
      const real = Array.from({ length: B }, (_, b) => Array.from({ length: S }, (_, j) => (b === 1 && j < 2 ? 0 : 1)));
      const run = async (backend: string) => {
        await tf.setBackend(backend);
        const [q, k, v] = [
          tf.tensor4d(qv, [B, H, T, hd]),
          tf.tensor4d(kv, [B, nKv, S, hd]),
          tf.tensor4d(vv, [B, nKv, S, hd]),
        ];
        const dy = tf.tensor2d(dyv, [B * T, H * hd]);
        const mask = causalMask(T, S - T, tf.tensor2d(real, [B, S], 'int32'));
        const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.sum(tf.mul(attend(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, mask), dy));
        const outs = [attend(q, k, v, mask), ...tf.grads(f)([q, k, v])];
        const values = await Promise.all(outs.map((t) => t.data()));
        tf.dispose([q, k, v, dy, mask, ...outs]);
        return values;
      };
      const cpu = await run('cpu');
      const gpu = await run('webgpu');
      const keys = Object.keys((tf.backend() as unknown as { pipelineCache: object }).pipelineCache);
      expect(keys.some((key) => key.startsWith('hyperllama_attention'))).toBe(true);
      ['output', 'd q', 'd k', 'd v'].forEach((what, i) =>
        expect(maxAbsDiff(Array.from(gpu[i]), Array.from(cpu[i])), `${what} ${[B, H, nKv, T, S, hd]}`).toBeLessThan(
          1e-4,
        ),
      );
    }
  });

  it('greedy decoding keeps the tokens on the device and stops each row where the cpu backend does', async () => {
    void tf.setBackend('cpu');
    const model = loadLlama(dir, { trainable: false });
    // A stop id that row 0 meets mid-way; 19 new tokens, not a multiple of the device path's read interval (8).
    const free = await generate(model, prompts, { maxNewTokens: 19, stopIds: [] });
    const stopIds = [free.tokens[0][5]];
    const cpu = await generate(model, prompts, { maxNewTokens: 19, stopIds });
    expect(cpu.finishReasons[0]).toBe('stop');
    void tf.setBackend('webgpu');
    const before = tf.memory().numTensors;
    const gpu = await generate(model, prompts, { maxNewTokens: 19, stopIds });
    expect(tf.memory().numTensors).toBe(before);
    expect(gpu.tokens).toEqual(cpu.tokens);
    expect(gpu.finishReasons).toEqual(cpu.finishReasons);
    expect((await generate(model, prompts, { maxNewTokens: 19, stopIds: [] })).tokens).toEqual(free.tokens);
    expect((await generate(model, prompts, { maxNewTokens: 0 })).tokens).toEqual([[], []]);
    model.dispose();
  });

  it('sampling on the device (temperature, top-k, top-p, seeded) draws what the cpu backend draws', async () => {
    void tf.setBackend('cpu');
    const model = loadLlama(dir, { trainable: false });
    const settings = [
      { temperature: 1.5, seed: 3 },
      { temperature: 0.8, topK: 5, seed: 4 },
      { temperature: 1.2, topP: 0.7, seed: 5 },
    ];
    // Every cpu run first: once the weights have moved to the GPU, the cpu backend cannot read them back.
    const cpu = [];
    for (const s of settings) cpu.push(await generate(model, prompts, { maxNewTokens: 12, stopIds: [], ...s }));
    void tf.setBackend('webgpu');
    for (const [i, s] of settings.entries()) {
      const gpu = await generate(model, prompts, { maxNewTokens: 12, stopIds: [], ...s });
      expect(gpu.tokens, JSON.stringify(s)).toEqual(cpu[i].tokens);
      expect(new Set(cpu[i].tokens.flat()).size, 'the draws vary').toBeGreaterThan(3);
    }
    model.dispose();
  });

  const storiesBin = join(STORIES, 'stories260K.bin');
  it.skipIf(!existsSync(storiesBin))(
    `stories260K decodes llama2.c's greedy text exactly (needs ${storiesBin})`,
    async () => {
      const stories = loadLlama(storiesBin);
      const tokenizer = loadTokenizer(join(STORIES, 'tok512.bin'));
      const result = await generate(stories, [[1]], { maxNewTokens: 256, stopIds: [1], tokenizer });
      expect(result.texts![0] + '\n').toBe(readFileSync(join(STORIES, 'expected_greedy.txt'), 'utf8'));
      stories.dispose();
    },
  );
});
