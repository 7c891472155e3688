import { ModelError } from './errors.js';
import { ROPE_SCALING_TYPES, type RopeScaling } from './rope.js';

/** Hyper-parameters of a Llama model, in Hugging Face `LlamaConfig` terms (camelCase). */
export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** `rope_scaling` (Llama 3.1+ `llama3`, `linear`, `dynamic`, `yarn`); absent: plain RoPE. */
  ropeScaling?: RopeScaling;
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenId: number;
  /**
   * Every end-of-sequence id when `config.json` lists several (Llama 3.1+ instruct: `<|end_of_text|>`, `<|eom_id|>`,
   * `<|eot_id|>`); `generate` stops at any of them. The first is `eosTokenId`.
   */
  eosTokenIds?: number[];
  padTokenId?: number;
}

/** Fields of `config.json` this package reads, with Hugging Face `LlamaConfig`'s defaults for the optional ones. */
const REQUIRED = [
  'vocab_size',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
] as const;

function bad(source: string, field: string, expected: string, actual: unknown): never {
  throw new ModelError(
    'BAD_CONFIG',
    `${source}: field "${field}": expected ${expected}, got ${JSON.stringify(actual)}`,
    {
      file: source,
      field,
      expected,
      actual,
    },
  );
}

function positiveInt(source: string, field: string, v: unknown, max = 2 ** 24): number {
  // The bound turns a damaged size into this error instead of a failed allocation far away.
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > max)
    bad(source, field, `a positive integer up to ${max}`, v);
  return v;
}

function positiveNumber(source: string, field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(source, field, 'a positive number', v);
  return v;
}

/** A token id field: an integer, or the first of a list (HF allows `eos_token_id: [2, 32000]`). */
function tokenId(source: string, field: string, v: unknown, fallback: number | undefined): number | undefined {
  if (v === undefined || v === null) return fallback;
  const id = Array.isArray(v) ? v[0] : v;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) bad(source, field, 'a non-negative integer', v);
  return id;
}

/**
 * `rope_scaling` of a `config.json` (`rope_type`, or the older `type`, and its fields, as Hugging Face's
 * `modeling_rope_utils` reads them); undefined for null, absent or `default`. Unknown types are
 * `UNSUPPORTED_ROPE_SCALING` errors, missing or malformed fields `BAD_CONFIG` errors naming `rope_scaling.<field>`.
 */
export function parseRopeScaling(
  json: unknown,
  source = 'config.json',
  maxPositionEmbeddings?: number,
): RopeScaling | undefined {
  if (json === undefined || json === null) return undefined;
  if (typeof json !== 'object' || Array.isArray(json)) bad(source, 'rope_scaling', 'an object or null', json);
  const r = json as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type === undefined) bad(source, 'rope_scaling.rope_type', `one of ${ROPE_SCALING_TYPES.join(', ')}`, undefined);
  if (typeof type !== 'string' || !(ROPE_SCALING_TYPES as readonly string[]).includes(type))
    throw new ModelError(
      'UNSUPPORTED_ROPE_SCALING',
      `${source}: field "rope_scaling.rope_type": ${JSON.stringify(type)} is not supported; expected one of ${ROPE_SCALING_TYPES.join(', ')}`,
      { file: source, field: 'rope_scaling.rope_type', expected: ROPE_SCALING_TYPES, actual: type },
    );
  const field = (name: string) => `rope_scaling.${name}`;
  const num = (name: string, required: boolean, min = 0, strict = true): number | undefined => {
    const v = r[name];
    if (v === undefined || v === null) {
      if (required) bad(source, field(name), `a number (required for rope_type "${type}")`, v);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || (strict ? v <= min : v < min))
      bad(source, field(name), `a number ${strict ? '>' : '≥'} ${min}`, v);
    return v;
  };
  const int = (name: string, required: boolean) => {
    const v = num(name, required);
    if (v !== undefined && !Number.isInteger(v)) bad(source, field(name), 'a positive integer', v);
    return v;
  };
  if (type === 'default') return undefined;
  const factor = num('factor', true)!;
  if (type === 'linear') return { type, factor };
  if (type === 'dynamic') return { type, factor };
  if (type === 'llama3') {
    const lowFreqFactor = num('low_freq_factor', true)!;
    const highFreqFactor = num('high_freq_factor', true)!;
    if (highFreqFactor <= lowFreqFactor)
      bad(source, field('high_freq_factor'), `a number > low_freq_factor ${lowFreqFactor}`, highFreqFactor);
    return {
      type,
      factor,
      lowFreqFactor,
      highFreqFactor,
      originalMaxPositionEmbeddings: int('original_max_position_embeddings', true)!,
    };
  }
  const truncate = r.truncate;
  if (truncate !== undefined && typeof truncate !== 'boolean') bad(source, field('truncate'), 'a boolean', truncate);
  const yarn: RopeScaling = {
    type: 'yarn',
    factor,
    originalMaxPositionEmbeddings: int('original_max_position_embeddings', maxPositionEmbeddings === undefined),
    attentionFactor: num('attention_factor', false),
    betaFast: num('beta_fast', false),
    betaSlow: num('beta_slow', false),
    mscale: num('mscale', false, 0, false),
    mscaleAllDim: num('mscale_all_dim', false, 0, false),
    truncate: truncate as boolean | undefined,
  };
  return Object.fromEntries(Object.entries(yarn).filter(([, v]) => v !== undefined)) as RopeScaling;
}

/** `rope_scaling` as Hugging Face writes it (snake_case, `rope_type`); null without scaling. */
export function ropeScalingToJson(s: RopeScaling | undefined): Record<string, unknown> | null {
  if (!s) return null;
  const snake = (k: string) => k.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`);
  const { type, ...rest } = s;
  return { rope_type: type, ...Object.fromEntries(Object.entries(rest).map(([k, v]) => [snake(k), v])) };
}

/**
 * Read a Hugging Face Llama `config.json` object into a validated {@link LlamaConfig}. Optional fields take HF's
 * defaults (`num_key_value_heads` = heads, `head_dim` = hidden/heads, `rms_norm_eps` 1e-6, `rope_theta` 10000,
 * `tie_word_embeddings` false, bos 1, eos 2). `rope_scaling` of the types in {@link parseRopeScaling} is read; features
 * this implementation does not have (other RoPE scalings, attention or MLP biases, an activation other than SiLU) are
 * rejected rather than silently ignored.
 */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(source, '<root>', 'a JSON object', json);
  const c = json as Record<string, unknown>;
  for (const f of REQUIRED) if (c[f] === undefined) bad(source, f, 'a value (required field)', undefined);
  if (c.model_type !== undefined && c.model_type !== 'llama') bad(source, 'model_type', '"llama"', c.model_type);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') bad(source, 'hidden_act', '"silu"', c.hidden_act);
  if (c.attention_bias === true) bad(source, 'attention_bias', 'false (biases are not supported)', true);
  if (c.mlp_bias === true) bad(source, 'mlp_bias', 'false (biases are not supported)', true);

  const hiddenSize = positiveInt(source, 'hidden_size', c.hidden_size);
  const numAttentionHeads = positiveInt(source, 'num_attention_heads', c.num_attention_heads);
  if (c.head_dim === undefined && hiddenSize % numAttentionHeads !== 0) {
    bad(source, 'num_attention_heads', `a divisor of hidden_size ${hiddenSize}`, numAttentionHeads);
  }
  const config: LlamaConfig = {
    vocabSize: positiveInt(source, 'vocab_size', c.vocab_size),
    hiddenSize,
    intermediateSize: positiveInt(source, 'intermediate_size', c.intermediate_size),
    numHiddenLayers: positiveInt(source, 'num_hidden_layers', c.num_hidden_layers),
    numAttentionHeads,
    numKeyValueHeads: positiveInt(source, 'num_key_value_heads', c.num_key_value_heads ?? numAttentionHeads),
    headDim: positiveInt(source, 'head_dim', c.head_dim ?? hiddenSize / numAttentionHeads),
    maxPositionEmbeddings: positiveInt(source, 'max_position_embeddings', c.max_position_embeddings ?? 2048),
    rmsNormEps: positiveNumber(source, 'rms_norm_eps', c.rms_norm_eps ?? 1e-6),
    ropeTheta: positiveNumber(source, 'rope_theta', c.rope_theta ?? 10000),
    tieWordEmbeddings: (c.tie_word_embeddings ?? false) as boolean,
    bosTokenId: tokenId(source, 'bos_token_id', c.bos_token_id, 1)!,
    eosTokenId: tokenId(source, 'eos_token_id', c.eos_token_id, 2)!,
    padTokenId: tokenId(source, 'pad_token_id', c.pad_token_id, undefined),
  };
  if (Array.isArray(c.eos_token_id) && c.eos_token_id.length > 1)
    config.eosTokenIds = c.eos_token_id.map((v, i) => tokenId(source, `eos_token_id[${i}]`, v, undefined)!);
  const ropeScaling = parseRopeScaling(c.rope_scaling, source, config.maxPositionEmbeddings);
  if (ropeScaling) config.ropeScaling = ropeScaling;
  if (typeof config.tieWordEmbeddings !== 'boolean')
    bad(source, 'tie_word_embeddings', 'a boolean', c.tie_word_embeddings);
  validateLlamaConfig(config, source);
  return config;
}

/** Check a {@link LlamaConfig} built in code (the same rules as {@link parseLlamaConfig}). */
export function validateLlamaConfig(config: LlamaConfig, source = 'LlamaConfig'): LlamaConfig {
  const c = config;
  for (const f of [
    'vocabSize',
    'hiddenSize',
    'intermediateSize',
    'numAttentionHeads',
    'numKeyValueHeads',
    'headDim',
    'maxPositionEmbeddings',
  ] as const) {
    positiveInt(source, f, c[f]);
  }
  positiveInt(source, 'numHiddenLayers', c.numHiddenLayers, 4096);
  positiveNumber(source, 'rmsNormEps', c.rmsNormEps);
  positiveNumber(source, 'ropeTheta', c.ropeTheta);
  if (c.ropeScaling !== undefined) {
    // The same rules as config.json's field, on its JSON form.
    const again = parseRopeScaling(ropeScalingToJson(c.ropeScaling), source, c.maxPositionEmbeddings);
    if (!again) bad(source, 'ropeScaling', 'a scaling or undefined', c.ropeScaling);
  }
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0) {
    bad(source, 'num_key_value_heads', `a divisor of num_attention_heads ${c.numAttentionHeads}`, c.numKeyValueHeads);
  }
  if (c.headDim % 2 !== 0) bad(source, 'head_dim', 'an even number (RoPE rotates pairs)', c.headDim);
  for (const f of ['bosTokenId', 'eosTokenId'] as const) {
    if (!Number.isInteger(c[f]) || c[f] < 0) bad(source, f, 'a non-negative integer', c[f]);
  }
  if (c.eosTokenIds !== undefined) {
    if (!Array.isArray(c.eosTokenIds) || c.eosTokenIds[0] !== c.eosTokenId)
      bad(source, 'eosTokenIds', `a list starting with eosTokenId ${c.eosTokenId}`, c.eosTokenIds);
    c.eosTokenIds.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0) bad(source, `eosTokenIds[${i}]`, 'a non-negative integer', id);
    });
  }
  if (c.padTokenId !== undefined && (!Number.isInteger(c.padTokenId) || c.padTokenId < 0))
    bad(source, 'padTokenId', 'a non-negative integer', c.padTokenId);
  return config;
}

/** The config as Hugging Face `config.json` for `LlamaForCausalLM`. */
export function llamaConfigToJson(c: LlamaConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingToJson(c.ropeScaling),
    tie_word_embeddings: c.tieWordEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenIds ?? c.eosTokenId,
    pad_token_id: c.padTokenId ?? null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: 'float32',
  };
}
