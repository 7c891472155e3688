import { ModelError } from './errors.js';

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
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenId: number;
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
 * Read a Hugging Face Llama `config.json` object into a validated {@link LlamaConfig}. Optional fields take HF's
 * defaults (`num_key_value_heads` = heads, `head_dim` = hidden/heads, `rms_norm_eps` 1e-6, `rope_theta` 10000,
 * `tie_word_embeddings` false, bos 1, eos 2). Features this implementation does not have (rope scaling, attention or
 * MLP biases, an activation other than SiLU) are rejected rather than silently ignored.
 */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(source, '<root>', 'a JSON object', json);
  const c = json as Record<string, unknown>;
  for (const f of REQUIRED) if (c[f] === undefined) bad(source, f, 'a value (required field)', undefined);
  if (c.model_type !== undefined && c.model_type !== 'llama') bad(source, 'model_type', '"llama"', c.model_type);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') bad(source, 'hidden_act', '"silu"', c.hidden_act);
  if (c.rope_scaling !== undefined && c.rope_scaling !== null)
    bad(source, 'rope_scaling', 'null (rope scaling is not supported)', c.rope_scaling);
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
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0) {
    bad(source, 'num_key_value_heads', `a divisor of num_attention_heads ${c.numAttentionHeads}`, c.numKeyValueHeads);
  }
  if (c.headDim % 2 !== 0) bad(source, 'head_dim', 'an even number (RoPE rotates pairs)', c.headDim);
  for (const f of ['bosTokenId', 'eosTokenId'] as const) {
    if (!Number.isInteger(c[f]) || c[f] < 0) bad(source, f, 'a non-negative integer', c[f]);
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
    rope_scaling: null,
    tie_word_embeddings: c.tieWordEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId ?? null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: 'float32',
  };
}
