import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  LlamaModel,
  ModelError,
  llamaConfigToJson,
  loadLlama,
  parseLlamaConfig,
  parseRopeScaling,
  readHfLlama,
  ropeCosSin,
  ropeFrequencies,
  type LlamaConfig,
} from '../src/index.js';
import { FIXTURES, maxAbsDiff, readReference } from './helpers.js';

const ROPE = join(FIXTURES, 'rope');

beforeAll(async () => {
  await tf.setBackend('cpu');
});

interface InvFreqCase {
  name: string;
  config: Record<string, unknown>;
  seq_len: number | null;
  inv_freq: number[];
  attention_scaling: number;
}

const relDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.abs(b[i]));
  return m;
};

describe('RoPE scaling: inverse frequencies match the NumPy reference (tools/reference/rope_reference.py)', () => {
  const cases = JSON.parse(readFileSync(join(ROPE, 'inv-freq.json'), 'utf8')) as InvFreqCase[];
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const config = parseLlamaConfig(c.config, c.name);
    const { invFreq, attentionScaling } = ropeFrequencies(config, c.seq_len ?? undefined);
    expect(invFreq).toHaveLength(c.inv_freq.length);
    // float32 values of float64 references: within float32 rounding.
    expect(relDiff(invFreq, c.inv_freq)).toBeLessThan(1e-6);
    expect(attentionScaling).toBeCloseTo(c.attention_scaling, 12);
  });

  it('the cases differ from plain RoPE where they should (the fixture tests something)', () => {
    for (const c of cases) {
      const config = parseLlamaConfig(c.config, c.name);
      const plain = ropeFrequencies({ ...config, ropeScaling: undefined }).invFreq;
      const same = relDiff(plain, c.inv_freq) < 1e-6;
      const expectSame = c.name === 'default-explicit' || c.name === 'dynamic-below-max' || c.name === 'dynamic-at-max';
      expect(same, c.name).toBe(expectSame);
    }
    // llama3 keeps the highest frequency, divides the lowest by the factor and smooths between.
    const l3 = cases.find((c) => c.name === 'llama3.2-1b')!;
    const plain = ropeFrequencies({ ...parseLlamaConfig(l3.config), ropeScaling: undefined }).invFreq;
    expect(l3.inv_freq[0]).toBeCloseTo(plain[0], 12);
    expect(l3.inv_freq.at(-1)! / plain.at(-1)!).toBeCloseTo(1 / 32, 6);
    const ratios = l3.inv_freq.map((f, i) => f / plain[i]);
    expect(ratios.some((r) => r > 1 / 32 + 1e-6 && r < 1 - 1e-6)).toBe(true);
  });
});

/** Logits of the reference batch at real (unpadded) positions: the worst absolute difference. */
function worstDiff(model: LlamaModel, referencePath: string): number {
  const ref = readReference(referencePath);
  const B = ref.ids.length;
  const T = ref.ids[0].length;
  const logits = tf.tidy(() =>
    model
      .forward({
        inputIds: tf.tensor2d(ref.ids, [B, T], 'int32'),
        attentionMask: tf.tensor2d(ref.mask, [B, T], 'int32'),
        positionIds: tf.tensor2d(ref.positions, [B, T], 'int32'),
      })
      .logits!.arraySync(),
  ) as number[][][];
  let worst = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      if (ref.mask[b][t] === 1) worst = Math.max(worst, maxAbsDiff(logits[b][t], ref.logits[b][t]));
  return worst;
}

/** The same weights with the config's rope_scaling removed (plain RoPE). */
function unscaled(dir: string): LlamaModel {
  const { config, weights } = readHfLlama(dir);
  const c: LlamaConfig = { ...config, ropeScaling: undefined };
  return new LlamaModel(c, weights);
}

describe('Llama 3-style models with rope_scaling: logits match the NumPy reference to 1e-4', () => {
  for (const type of ['llama3', 'linear', 'yarn', 'dynamic'] as const) {
    it(`${type}: loads from config.json and matches; without the scaling it does not`, () => {
      const dir = join(ROPE, `tiny-${type}`);
      const model = loadLlama(dir);
      expect(model.config.ropeScaling?.type).toBe(type);
      const diff = worstDiff(model, join(dir, 'reference.safetensors'));
      model.dispose();
      expect(diff).toBeLessThan(1e-4);
      const plain = unscaled(dir);
      expect(worstDiff(plain, join(dir, 'reference.safetensors'))).toBeGreaterThan(1e-2);
      plain.dispose();
    });
  }

  it('dynamic: a batch within max_position_embeddings is plain RoPE; the length comes from the positions of the call', () => {
    const dir = join(ROPE, 'tiny-dynamic');
    const model = loadLlama(dir);
    const plain = unscaled(dir);
    expect(worstDiff(model, join(dir, 'reference-short.safetensors'))).toBeLessThan(1e-4);
    expect(worstDiff(plain, join(dir, 'reference-short.safetensors'))).toBeLessThan(1e-4);
    // Row 0 of the long batch is unpadded: without position ids (positions 0..T-1, length T) it gives the same logits.
    const ref = readReference(join(dir, 'reference.safetensors'));
    const T = ref.ids[0].length;
    const row = tf.tidy(
      () => model.forward({ inputIds: tf.tensor2d([ref.ids[0]], [1, T], 'int32') }).logits!.arraySync() as number[][][],
    );
    for (let t = 0; t < T; t++) expect(maxAbsDiff(row[0][t], ref.logits[0][t])).toBeLessThan(1e-4);
    model.dispose();
    plain.dispose();
  });

  it('yarn multiplies cos and sin by its attention factor', () => {
    const c = parseLlamaConfig(JSON.parse(readFileSync(join(ROPE, 'tiny-yarn', 'config.json'), 'utf8')));
    const { attentionScaling } = ropeFrequencies(c);
    expect(attentionScaling).toBeCloseTo(0.1 * Math.log(4) + 1, 12);
    const { cos, sin } = ropeCosSin(tf.tensor2d([[0, 5]], [1, 2], 'int32'), c.ropeTheta, c.headDim, {
      scaling: c.ropeScaling,
      maxPositionEmbeddings: c.maxPositionEmbeddings,
    });
    const cs = cos.arraySync()[0][0];
    const sn = sin.arraySync()[0][0];
    cs[0].forEach((v) => expect(v).toBeCloseTo(attentionScaling, 6)); // position 0: cos = 1 · factor
    cs[1].forEach((v, i) => expect(v * v + sn[1][i] ** 2).toBeCloseTo(attentionScaling ** 2, 5));
    cos.dispose();
    sin.dispose();
  });
});

describe('published Llama 3.x config.json files load (their field values as released)', () => {
  const llama32_1b = {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 128000,
    eos_token_id: 128001,
    head_dim: 64,
    hidden_act: 'silu',
    hidden_size: 2048,
    initializer_range: 0.02,
    intermediate_size: 8192,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: 32,
    num_hidden_layers: 16,
    num_key_value_heads: 8,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: {
      factor: 32.0,
      high_freq_factor: 4.0,
      low_freq_factor: 1.0,
      original_max_position_embeddings: 8192,
      rope_type: 'llama3',
    },
    rope_theta: 500000.0,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.45.0.dev0',
    use_cache: true,
    vocab_size: 128256,
  };
  const llama31_8b_instruct = {
    ...llama32_1b,
    eos_token_id: [128001, 128008, 128009],
    head_dim: undefined,
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    rope_scaling: { ...llama32_1b.rope_scaling, factor: 8.0 },
    tie_word_embeddings: false,
  };
  const cases = JSON.parse(readFileSync(join(ROPE, 'inv-freq.json'), 'utf8')) as InvFreqCase[];

  it('Llama 3.2 1B: shapes, tied head, llama3 scaling with the reference frequencies', () => {
    const c = parseLlamaConfig(llama32_1b);
    expect(c).toMatchObject({ headDim: 64, numKeyValueHeads: 8, tieWordEmbeddings: true, bosTokenId: 128000 });
    const ref = cases.find((x) => x.name === 'llama3.2-1b')!;
    expect(relDiff(ropeFrequencies(c).invFreq, ref.inv_freq)).toBeLessThan(1e-6);
  });

  it('Llama 3.1 8B Instruct: head_dim from hidden/heads, three eos ids, llama3 scaling with the reference frequencies', () => {
    const c = parseLlamaConfig(JSON.parse(JSON.stringify(llama31_8b_instruct)));
    expect(c).toMatchObject({ headDim: 128, eosTokenId: 128001, eosTokenIds: [128001, 128008, 128009] });
    const ref = cases.find((x) => x.name === 'llama3.1-8b')!;
    expect(relDiff(ropeFrequencies(c).invFreq, ref.inv_freq)).toBeLessThan(1e-6);
  });
});

describe('rope_scaling in config.json: parsing, round trip, typed errors', () => {
  const base = {
    vocab_size: 32,
    hidden_size: 64,
    intermediate_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    max_position_embeddings: 1024,
  };
  const err = (rope_scaling: unknown): ModelError => {
    try {
      parseLlamaConfig({ ...base, rope_scaling }, 'cfg.json');
    } catch (e) {
      expect(e).toBeInstanceOf(ModelError);
      return e as ModelError;
    }
    throw new Error(`accepted ${JSON.stringify(rope_scaling)}`);
  };

  it('reads every supported type; default and null are no scaling; config.json round-trips', () => {
    expect(parseLlamaConfig({ ...base, rope_scaling: null }).ropeScaling).toBeUndefined();
    expect(parseLlamaConfig({ ...base, rope_scaling: { rope_type: 'default' } }).ropeScaling).toBeUndefined();
    const llama3 = {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 512,
    };
    const yarn = { rope_type: 'yarn', factor: 4, beta_fast: 16, mscale: 0.5, mscale_all_dim: 0.25, truncate: false };
    for (const rs of [llama3, yarn, { type: 'linear', factor: 2 }, { rope_type: 'dynamic', factor: 3 }]) {
      const c = parseLlamaConfig({ ...base, rope_scaling: rs });
      const json = llamaConfigToJson(c);
      expect(parseLlamaConfig(json)).toEqual(c);
      const { type, rope_type, ...fields } = rs as Record<string, unknown>;
      expect(json.rope_scaling).toEqual({ rope_type: rope_type ?? type, ...fields });
    }
    expect(parseLlamaConfig({ ...base, rope_scaling: llama3 }).ropeScaling).toEqual({
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 512,
    });
    expect(parseRopeScaling(undefined)).toBeUndefined();
  });

  it('unknown types and missing or malformed fields are typed errors naming the field', () => {
    for (const t of ['longrope', 'ntk', 'su', 7]) {
      const e = err({ rope_type: t, factor: 2 });
      expect(e.code).toBe('UNSUPPORTED_ROPE_SCALING');
      expect(e.details.field).toBe('rope_scaling.rope_type');
      expect(e.message).toContain('cfg.json');
    }
    const cases: [unknown, string][] = [
      [{ factor: 2 }, 'rope_scaling.rope_type'],
      [{ rope_type: 'linear' }, 'rope_scaling.factor'],
      [{ rope_type: 'linear', factor: -1 }, 'rope_scaling.factor'],
      [{ rope_type: 'dynamic', factor: '2' }, 'rope_scaling.factor'],
      [
        { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 },
        'rope_scaling.original_max_position_embeddings',
      ],
      [
        { rope_type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 8192 },
        'rope_scaling.low_freq_factor',
      ],
      [
        {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 4,
          high_freq_factor: 1,
          original_max_position_embeddings: 8,
        },
        'rope_scaling.high_freq_factor',
      ],
      [
        {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 8.5,
        },
        'rope_scaling.original_max_position_embeddings',
      ],
      [{ rope_type: 'yarn', factor: 4, truncate: 'yes' }, 'rope_scaling.truncate'],
      [{ rope_type: 'yarn', factor: 4, attention_factor: 0 }, 'rope_scaling.attention_factor'],
      [[1, 2], 'rope_scaling'],
    ];
    for (const [rs, field] of cases) {
      const e = err(rs);
      expect(e.code, JSON.stringify(rs)).toBe('BAD_CONFIG');
      expect(e.details.field, JSON.stringify(rs)).toBe(field);
    }
  });
});
