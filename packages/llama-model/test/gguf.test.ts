import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readGguf, type GgufFile } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ModelError,
  createLlama,
  ggufTensorName,
  llamaGguf,
  readHfLlama,
  saveGguf,
  saveLlama,
  type HostWeights,
  type LlamaConfig,
  type LlamaModel,
} from '../src/index.js';

// GQA (4 query heads, 2 KV heads), head_dim 6 (3 rotary pairs), untied head.
const config: LlamaConfig = {
  vocabSize: 29,
  hiddenSize: 12,
  intermediateSize: 20,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 6,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-6,
  ropeTheta: 5000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
};

let dir: string;
let model: LlamaModel;
let hf: HostWeights;
let file: GgufFile;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'gguf-'));
  model = createLlama(config, { seed: 11, std: 0.5 });
  // The HF reference goes through saveLlama → safetensors → readHfLlama, not through the GGUF code.
  saveLlama(model, join(dir, 'hf'));
  hf = readHfLlama(join(dir, 'hf')).weights;
  saveGguf(model, join(dir, 'm.gguf'));
  file = readGguf(join(dir, 'm.gguf'));
});
afterAll(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const value = (key: string) => file.metadata.get(key)?.value;
const tensor = (name: string) => file.tensors.find((t) => t.name === name)!;

describe('saveGguf: a float32 GGUF v3 file in llama.cpp layout', () => {
  it('holds the llama hyper-parameters under llama.*', () => {
    expect(file.version).toBe(3);
    expect(value('general.architecture')).toBe('llama');
    expect(value('general.file_type')).toBe(0);
    expect(value('llama.vocab_size')).toBe(29);
    expect(value('llama.context_length')).toBe(64);
    expect(value('llama.embedding_length')).toBe(12);
    expect(value('llama.block_count')).toBe(2);
    expect(value('llama.feed_forward_length')).toBe(20);
    expect(value('llama.attention.head_count')).toBe(4);
    expect(value('llama.attention.head_count_kv')).toBe(2);
    expect(value('llama.rope.dimension_count')).toBe(6);
    expect(value('llama.rope.freq_base')).toBe(5000);
    expect(value('llama.attention.layer_norm_rms_epsilon')).toBe(Math.fround(1e-6));
  });

  it('without a tokenizer, writes the ids-only placeholder vocabulary (BOS and EOS control tokens)', () => {
    expect(value('tokenizer.ggml.model')).toBe('gpt2');
    const tokens = value('tokenizer.ggml.tokens') as string[];
    expect(tokens).toHaveLength(29);
    expect(tokens[7]).toBe('<id_7>');
    expect(Array.from(value('tokenizer.ggml.token_type') as ArrayLike<number>).slice(0, 4)).toEqual([1, 3, 3, 1]);
    expect(value('tokenizer.ggml.bos_token_id')).toBe(1);
    expect(value('tokenizer.ggml.add_bos_token')).toBe(false);
  });

  it('names, dims (innermost first), f32 type and 32-byte aligned offsets of every tensor', () => {
    const D = 12;
    const expected: Array<[string, number[]]> = [['token_embd.weight', [D, 29]]];
    for (const i of [0, 1]) {
      expected.push(
        [`blk.${i}.attn_norm.weight`, [D]],
        [`blk.${i}.attn_q.weight`, [D, 24]],
        [`blk.${i}.attn_k.weight`, [D, 12]],
        [`blk.${i}.attn_v.weight`, [D, 12]],
        [`blk.${i}.attn_output.weight`, [24, D]],
        [`blk.${i}.ffn_norm.weight`, [D]],
        [`blk.${i}.ffn_gate.weight`, [D, 20]],
        [`blk.${i}.ffn_up.weight`, [D, 20]],
        [`blk.${i}.ffn_down.weight`, [20, D]],
      );
    }
    expected.push(['output_norm.weight', [D]], ['output.weight', [D, 29]]);
    expect(file.tensors.map((t) => [t.name, t.dims])).toEqual(expected);
    for (const t of file.tensors) {
      expect(t.type).toBe(0);
      expect(t.offset % 32).toBe(0);
      expect((file.dataOffset + t.offset) % 32).toBe(0);
    }
    const size = readFileSync(join(dir, 'm.gguf')).byteLength;
    const last = file.tensors.at(-1)!;
    expect(size).toBeGreaterThanOrEqual(file.dataOffset + last.offset + 29 * D * 4);
  });

  it('stores every weight but q and k exactly as the HF checkpoint', () => {
    for (const [name, { data }] of hf) {
      if (/[qk]_proj/.test(name)) continue;
      expect(tensor(ggufTensorName(name)).data, name).toEqual(data);
    }
  });

  it('q and k rows: per head, llama.cpp row 2i+j is HF row j·headDim/2 + i (rotate_half → interleaved pairs)', () => {
    const hd = 6;
    const D = 12;
    for (const [proj, heads] of [
      ['q_proj', 4],
      ['k_proj', 2],
    ] as const) {
      for (const layer of [0, 1]) {
        const src = hf.get(`model.layers.${layer}.self_attn.${proj}.weight`)!.data;
        const dst = tensor(ggufTensorName(`model.layers.${layer}.self_attn.${proj}.weight`)).data!;
        expect(dst).not.toEqual(src); // the permutation moved rows
        for (let h = 0; h < heads; h++)
          for (let i = 0; i < hd / 2; i++)
            for (let j = 0; j < 2; j++) {
              const to = (h * hd + 2 * i + j) * D;
              const from = (h * hd + j * (hd / 2) + i) * D;
              expect(dst.subarray(to, to + D)).toEqual(src.subarray(from, from + D));
            }
      }
    }
  });

  it('an HF directory converts to the same bytes as the loaded model; a tied model has no output tensor', () => {
    saveGguf(readHfLlama(join(dir, 'hf')), join(dir, 'from-dir.gguf'));
    expect(readFileSync(join(dir, 'from-dir.gguf'))).toEqual(readFileSync(join(dir, 'm.gguf')));
    const tied = createLlama({ ...config, tieWordEmbeddings: true }, { seed: 1 });
    try {
      saveGguf(tied, join(dir, 'tied.gguf'));
      const names = readGguf(join(dir, 'tied.gguf')).tensors.map((t) => t.name);
      expect(names).not.toContain('output.weight');
      expect(names).toContain('token_embd.weight');
    } finally {
      tied.dispose();
    }
  });

  it('refuses what llama.cpp would misread, with typed errors', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ModelError);
        return (e as ModelError).code;
      }
      return 'no error';
    };
    const tokens = (n: number) =>
      new Map([
        ['tokenizer.ggml.tokens', { type: 'ARRAY' as const, itemType: 'STRING' as const, value: Array(n).fill('a') }],
      ]);
    expect(code(() => llamaGguf(config, hf, { tokenizer: tokens(30) }))).toBe('GGUF_VOCAB_MISMATCH');
    expect(code(() => llamaGguf(config, hf, { tokenizer: new Map([['llama.x', { type: 'UINT32', value: 1 }]]) }))).toBe(
      'GGUF_BAD_METADATA',
    );
    const llama3 = {
      ...config,
      ropeScaling: {
        type: 'llama3' as const,
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 32,
      },
    };
    expect(code(() => llamaGguf(llama3, hf))).toBe('GGUF_UNSUPPORTED_ROPE_SCALING');
    const partial = new Map(hf);
    partial.delete('model.norm.weight');
    expect(code(() => llamaGguf(config, partial))).toBe('BAD_WEIGHTS');
    expect(code(() => ggufTensorName('model.layers.0.self_attn.rotary_emb.weight'))).toBe('GGUF_UNKNOWN_TENSOR');
  });
});
