import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fromFloat32, readSafetensors, toFloat32, writeSafetensors, type SafetensorsEntry } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ModelError,
  createLlama,
  expectedWeightShapes,
  llamaConfigToJson,
  loadLlama,
  parseLlamaConfig,
  saveLlama,
  validateLlamaConfig,
  type LlamaConfig,
  type LlamaModel,
} from '../src/index.js';
import { FIXTURES, maxAbsDiff } from './helpers.js';

let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = mkdtempSync(join(tmpdir(), 'llama-io-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const fixtureDir = join(FIXTURES, 'tiny-untied-padded');
const fixtureTensors = () => readSafetensors(join(fixtureDir, 'model.safetensors')).tensors;

function thrown(f: () => unknown): ModelError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelError);
    return e as ModelError;
  }
  throw new Error('expected a ModelError');
}

function modelDir(name: string, files: Record<string, Map<string, SafetensorsEntry> | string>): string {
  const dir = mkdtempSync(join(tmp, name));
  copyFileSync(join(fixtureDir, 'config.json'), join(dir, 'config.json'));
  for (const [file, content] of Object.entries(files)) {
    if (typeof content === 'string') writeFileSync(join(dir, file), content);
    else writeSafetensors(join(dir, file), content);
  }
  return dir;
}

function logits(model: LlamaModel): Float32Array {
  return tf.tidy(
    () =>
      model
        .forward({ inputIds: tf.tensor2d([[3, 1, 4, 1, 5, 9, 2, 6]], undefined, 'int32') })
        .logits!.dataSync() as Float32Array,
  );
}

describe('saveLlama / loadLlama', () => {
  const small: LlamaConfig = {
    vocabSize: 30,
    hiddenSize: 16,
    intermediateSize: 20,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 4,
    maxPositionEmbeddings: 32,
    rmsNormEps: 1e-5,
    ropeTheta: 5000,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 0,
  };

  for (const tied of [false, true]) {
    it(`load(save(m)) is bit-identical (${tied ? 'tied' : 'untied'} head) and uses LlamaForCausalLM names and shapes`, () => {
      const model = createLlama({ ...small, tieWordEmbeddings: tied }, { seed: 3, std: 0.5 });
      const dir = join(tmp, `roundtrip-${tied}`);
      saveLlama(model, dir);
      const saved = readSafetensors(join(dir, 'model.safetensors')).tensors;
      const expected = expectedWeightShapes(model.config);
      expect([...saved.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [name, shape] of expected) expect(saved.get(name)!.shape).toEqual(shape);
      const back = loadLlama(dir);
      expect(back.config).toEqual(model.config);
      const a = model.namedWeights();
      const b = back.namedWeights();
      expect([...b.keys()]).toEqual([...a.keys()]);
      for (const [name, v] of a)
        expect(Buffer.from(b.get(name)!.dataSync().buffer).equals(Buffer.from(v.dataSync().buffer))).toBe(true);
      expect(JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'))).toEqual({
        bos_token_id: 1,
        eos_token_id: 2,
        pad_token_id: 0,
      });
      model.dispose();
      back.dispose();
    });
  }

  it('saving a model loaded from a Python-written file reproduces its tensors byte for byte ([out, in] layout)', () => {
    const model = loadLlama(fixtureDir);
    const dir = join(tmp, 'resave');
    saveLlama(model, dir);
    const original = fixtureTensors();
    const saved = readSafetensors(join(dir, 'model.safetensors')).tensors;
    expect([...saved.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [name, e] of original) expect(Buffer.from(saved.get(name)!.data).equals(Buffer.from(e.data))).toBe(true);
    model.dispose();
  });

  it('reads a sharded checkpoint (model.safetensors.index.json)', () => {
    const tensors = [...fixtureTensors()];
    const half = Math.floor(tensors.length / 2);
    const shards = {
      'model-00001-of-00002.safetensors': new Map(tensors.slice(0, half)),
      'model-00002-of-00002.safetensors': new Map(tensors.slice(half)),
    };
    const weightMap = Object.fromEntries(
      Object.entries(shards).flatMap(([file, m]) => [...m.keys()].map((k) => [k, file])),
    );
    const dir = modelDir('sharded-', {
      ...shards,
      'model.safetensors.index.json': JSON.stringify({ metadata: {}, weight_map: weightMap }),
    });
    const a = loadLlama(fixtureDir);
    const b = loadLlama(dir);
    expect(maxAbsDiff(logits(a), logits(b))).toBe(0);
    a.dispose();
    b.dispose();
  });

  for (const dtype of ['F16', 'BF16'] as const) {
    it(`reads ${dtype} weights and computes in float32`, () => {
      const converted = new Map([...fixtureTensors()].map(([k, e]) => [k, fromFloat32(toFloat32(e), e.shape, dtype)]));
      const dir = modelDir(`${dtype}-`, { 'model.safetensors': converted });
      const model = loadLlama(dir);
      const q = model.namedWeights().get('model.layers.1.self_attn.q_proj.weight')!; // [in, out]
      const hf = toFloat32(converted.get('model.layers.1.self_attn.q_proj.weight')!); // [out, in], the rounded values
      const [inF, outF] = q.shape;
      const data = q.dataSync();
      for (const [o, i] of [
        [0, 0],
        [5, 7],
        [outF - 1, inF - 1],
      ])
        expect(data[i * outF + o]).toBe(hf[o * inF + i]);
      const reference = loadLlama(fixtureDir);
      expect(maxAbsDiff(logits(model), logits(reference))).toBeLessThan(dtype === 'F16' ? 0.02 : 0.2);
      model.dispose();
      reference.dispose();
    });
  }

  it('lists every missing, unexpected and mis-shaped tensor in one ModelError', () => {
    const tensors = fixtureTensors();
    tensors.delete('model.layers.2.mlp.up_proj.weight');
    tensors.delete('model.norm.weight');
    tensors.set('model.layers.7.self_attn.q_proj.weight', fromFloat32(new Float32Array(4), [2, 2]));
    tensors.set('model.layers.0.self_attn.k_proj.weight', fromFloat32(new Float32Array(24 * 32), [32, 24]));
    const err = thrown(() => loadLlama(modelDir('broken-', { 'model.safetensors': tensors })));
    expect(err.code).toBe('BAD_WEIGHTS');
    expect(err.details.missing).toEqual(['model.layers.2.mlp.up_proj.weight', 'model.norm.weight']);
    expect(err.details.unexpected).toEqual(['model.layers.7.self_attn.q_proj.weight']);
    expect(err.message).toContain('model.layers.0.self_attn.k_proj.weight: expected [24,32], got [32,24]');
  });

  it('NaN or Infinity in loaded weights is NON_FINITE_WEIGHT naming the file and the tensor', () => {
    const tensors = fixtureTensors();
    const name = 'model.layers.1.self_attn.v_proj.weight';
    const values = toFloat32(tensors.get(name)!, name).slice();
    values[5] = NaN;
    tensors.set(name, fromFloat32(values, tensors.get(name)!.shape));
    const dir = modelDir('nan-', { 'model.safetensors': tensors });
    const err = thrown(() => loadLlama(dir));
    expect(err.code).toBe('NON_FINITE_WEIGHT');
    expect(err.message).toBe(`${join(dir, 'model.safetensors')}: tensor "${name}" holds NaN at index 5`);
    // llama2.c: the header's 7 int32s, then the embedding table first
    const bin = Buffer.from(readFileSync(join(FIXTURES, 'tiny-llama2c-untied.bin')));
    bin.writeFloatLE(-Infinity, 28 + 4 * 3);
    const file = join(tmp, 'inf.bin');
    writeFileSync(file, bin);
    const e2 = thrown(() => loadLlama(file));
    expect(e2.code).toBe('NON_FINITE_WEIGHT');
    expect(e2.message).toBe(`${file}: llama2.c array "embed" holds -Infinity at index 3`);
  });

  it('rejects missing files and truncated llama2.c checkpoints with ModelError', () => {
    expect(thrown(() => loadLlama(join(tmp, 'nope'))).code).toBe('NOT_FOUND');
    expect(thrown(() => loadLlama(modelDir('empty-', {}))).code).toBe('NO_WEIGHTS');
    const bin = readFileSync(join(FIXTURES, 'tiny-llama2c-untied.bin'));
    const truncated = join(tmp, 'truncated.bin');
    writeFileSync(truncated, bin.subarray(0, bin.byteLength - 4));
    const err = thrown(() => loadLlama(truncated));
    expect(err.code).toBe('BAD_LLAMA2C');
    expect(err.message).toContain(`needs ${bin.byteLength} bytes, file has ${bin.byteLength - 4}`);
  });
});

describe('parseLlamaConfig', () => {
  const base = {
    vocab_size: 100,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 8,
  };

  it("fills Hugging Face's defaults", () => {
    expect(parseLlamaConfig(base)).toEqual({
      vocabSize: 100,
      hiddenSize: 64,
      intermediateSize: 128,
      numHiddenLayers: 2,
      numAttentionHeads: 8,
      numKeyValueHeads: 8,
      headDim: 8,
      maxPositionEmbeddings: 2048,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      tieWordEmbeddings: false,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: undefined,
    });
    expect(parseLlamaConfig({ ...base, eos_token_id: [2, 7], pad_token_id: 0 }).eosTokenId).toBe(2);
    // Llama 3.1 instruct: every eos id is kept (generation stops at any) and written back as a list.
    const l31 = parseLlamaConfig({ ...base, eos_token_id: [128001, 128008, 128009] });
    expect([l31.eosTokenId, l31.eosTokenIds]).toEqual([128001, [128001, 128008, 128009]]);
    expect(llamaConfigToJson(l31).eos_token_id).toEqual([128001, 128008, 128009]);
    expect(parseLlamaConfig(llamaConfigToJson(l31))).toEqual(l31);
    expect(parseLlamaConfig({ ...base, eos_token_id: [2] }).eosTokenIds).toBeUndefined();
    expect(() => validateLlamaConfig({ ...l31, eosTokenIds: [128009, 128001] })).toThrow(/eosTokenIds/);
    expect(() => parseLlamaConfig({ ...base, eos_token_id: [2, -1] })).toThrow(/eos_token_id\[1\]/);
  });

  it.each([
    [{ ...base, hidden_size: undefined }, /hidden_size.*required/],
    [{ ...base, num_attention_heads: 7 }, /num_attention_heads.*divisor of hidden_size 64/],
    [{ ...base, num_key_value_heads: 3 }, /num_key_value_heads.*divisor of num_attention_heads 8/],
    [{ ...base, vocab_size: -3 }, /vocab_size.*positive integer/],
    [{ ...base, rope_scaling: { type: 'linear' } }, /rope_scaling\.factor/],
    [{ ...base, hidden_act: 'gelu' }, /hidden_act/],
    [{ ...base, model_type: 'mistral' }, /model_type/],
    [{ ...base, tie_word_embeddings: 'yes' }, /tie_word_embeddings/],
  ])('rejects %j', (json, pattern) => {
    const err = thrown(() => parseLlamaConfig(json, 'my/config.json'));
    expect(err.code).toBe('BAD_CONFIG');
    expect(err.message).toMatch(/^my\/config\.json: /);
    expect(err.message).toMatch(pattern);
  });
});
