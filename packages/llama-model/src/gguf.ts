import { toFloat32, writeGguf, type GgufMetadata, type GgufTensor, type GgufValue } from '@hyperllama/runtime';
import type { LlamaConfig } from './config.js';
import { ModelError } from './errors.js';
import { exportWeights } from './io.js';
import { expectedWeightShapes, LlamaModel, type HostWeights } from './model.js';

/** Options of `saveGguf` and `llamaGguf`: the tokenizer metadata and the model's name. */
export interface GgufExportOptions {
  /**
   * The `tokenizer.ggml.*` metadata (`@hyperllama/tokenizer`'s `ggufTokenizerMetadata`). Without it the file gets
   * {@link idsOnlyVocabulary}: placeholder tokens, ids only, for benchmarking or for callers that tokenize themselves.
   */
  tokenizer?: GgufMetadata;
  /** `general.name` (default "llama"). */
  name?: string;
}

/** HF tensor name → llama.cpp's (gguf-py `MODEL_TENSOR` names for the llama architecture). */
const LAYER_NAMES: ReadonlyArray<[string, string]> = [
  ['input_layernorm', 'attn_norm'],
  ['self_attn.q_proj', 'attn_q'],
  ['self_attn.k_proj', 'attn_k'],
  ['self_attn.v_proj', 'attn_v'],
  ['self_attn.o_proj', 'attn_output'],
  ['post_attention_layernorm', 'ffn_norm'],
  ['mlp.gate_proj', 'ffn_gate'],
  ['mlp.up_proj', 'ffn_up'],
  ['mlp.down_proj', 'ffn_down'],
];

/** The llama.cpp name of an HF tensor name (`model.layers.3.self_attn.q_proj.weight` → `blk.3.attn_q.weight`). */
export function ggufTensorName(hfName: string): string {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'model.norm.weight') return 'output_norm.weight';
  if (hfName === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(hfName);
  const part = m && LAYER_NAMES.find(([hf]) => hf === m[2]);
  if (!m || !part)
    throw new ModelError('GGUF_UNKNOWN_TENSOR', `no GGUF name for tensor "${hfName}"`, { tensor: hfName });
  return `blk.${m[1]}.${part[1]}.weight`;
}

/**
 * Rows of a q or k projection [heads·headDim, in] from Hugging Face's rotate_half layout (per head, rotary pair i is
 * rows i and i + headDim/2) to the interleaved layout llama.cpp's llama architecture rotates (rows 2i and 2i+1), as
 * llama.cpp's converter permutes them. Returns a new array.
 */
export function permuteRotaryRows(w: Float32Array, heads: number, headDim: number): Float32Array {
  const cols = w.length / (heads * headDim);
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * headDim + j * half + i) * cols;
        const to = (h * headDim + 2 * i + j) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/**
 * A placeholder vocabulary for a model whose tokenizer GGUF cannot express: token i is the text `<id_i>` (BOS and EOS
 * control tokens) in a BPE vocabulary without merges. Ids only: it cannot tokenize real text; feed token ids.
 * (llama.cpp's `no_vocab`, or a SentencePiece vocabulary without byte tokens, would say so more directly, but
 * node-llama-cpp tokenizes a newline while loading and aborts the process on either.)
 */
export function idsOnlyVocabulary(config: LlamaConfig): GgufMetadata {
  const control = new Set([config.bosTokenId, config.eosTokenId]);
  const ids = Array.from({ length: config.vocabSize }, (_, i) => i);
  return new Map<string, GgufValue>([
    ['tokenizer.ggml.model', { type: 'STRING', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'STRING', value: 'default' }],
    ['tokenizer.ggml.tokens', { type: 'ARRAY', itemType: 'STRING', value: ids.map((i) => `<id_${i}>`) }],
    ['tokenizer.ggml.merges', { type: 'ARRAY', itemType: 'STRING', value: [] }],
    // llama.cpp token types: 1 normal, 3 control.
    [
      'tokenizer.ggml.token_type',
      { type: 'ARRAY', itemType: 'INT32', value: ids.map((i) => (control.has(i) ? 3 : 1)) },
    ],
    ['tokenizer.ggml.bos_token_id', { type: 'UINT32', value: config.bosTokenId }],
    ['tokenizer.ggml.eos_token_id', { type: 'UINT32', value: config.eosTokenId }],
    ['tokenizer.ggml.add_bos_token', { type: 'BOOL', value: false }],
  ]);
}

/**
 * The GGUF metadata and f32 tensors of a Llama (`general.architecture = llama`): hyper-parameters under `llama.*`,
 * llama.cpp's tensor names, q/k rows permuted to the interleaved RoPE layout, dims innermost first (an HF [out, in]
 * matrix is [in, out]). A tied model has no `output.weight`: llama.cpp then uses `token_embd.weight`, as for files
 * its own converter writes.
 */
export function llamaGguf(
  config: LlamaConfig,
  weights: HostWeights,
  opts: GgufExportOptions = {},
): { metadata: GgufMetadata; tensors: GgufTensor[] } {
  const c = config;
  if (c.ropeScaling && c.ropeScaling.type !== 'linear') {
    throw new ModelError(
      'GGUF_UNSUPPORTED_ROPE_SCALING',
      `rope_scaling type "${c.ropeScaling.type}" is not exported to GGUF (only none and linear)`,
      { field: 'rope_scaling', actual: c.ropeScaling.type },
    );
  }
  if (c.headDim % 2 !== 0)
    throw new ModelError('BAD_CONFIG', `head_dim ${c.headDim} is odd: RoPE needs pairs`, { field: 'head_dim' });
  const u32 = (value: number) => ({ type: 'UINT32', value }) as const;
  const f32 = (value: number) => ({ type: 'FLOAT32', value }) as const;
  const metadata: GgufMetadata = new Map();
  metadata.set('general.architecture', { type: 'STRING', value: 'llama' });
  metadata.set('general.name', { type: 'STRING', value: opts.name ?? 'llama' });
  metadata.set('general.file_type', u32(0)); // LLAMA_FTYPE_ALL_F32
  metadata.set('general.alignment', u32(32));
  metadata.set('llama.vocab_size', u32(c.vocabSize));
  metadata.set('llama.context_length', u32(c.maxPositionEmbeddings));
  metadata.set('llama.embedding_length', u32(c.hiddenSize));
  metadata.set('llama.block_count', u32(c.numHiddenLayers));
  metadata.set('llama.feed_forward_length', u32(c.intermediateSize));
  metadata.set('llama.attention.head_count', u32(c.numAttentionHeads));
  metadata.set('llama.attention.head_count_kv', u32(c.numKeyValueHeads));
  metadata.set('llama.attention.key_length', u32(c.headDim));
  metadata.set('llama.attention.value_length', u32(c.headDim));
  metadata.set('llama.attention.layer_norm_rms_epsilon', f32(c.rmsNormEps));
  metadata.set('llama.rope.freq_base', f32(c.ropeTheta));
  metadata.set('llama.rope.dimension_count', u32(c.headDim));
  if (c.ropeScaling) {
    metadata.set('llama.rope.scaling.type', { type: 'STRING', value: 'linear' });
    metadata.set('llama.rope.scaling.factor', f32(c.ropeScaling.factor));
  }
  const tokenizer = opts.tokenizer ?? idsOnlyVocabulary(c);
  const tokens = tokenizer.get('tokenizer.ggml.tokens');
  if (tokens && tokens.type === 'ARRAY' && tokens.value.length !== c.vocabSize) {
    throw new ModelError(
      'GGUF_VOCAB_MISMATCH',
      `the tokenizer has ${tokens.value.length} tokens but the model ${c.vocabSize} embedding rows; llama.cpp needs them equal`,
      { expected: c.vocabSize, actual: tokens.value.length },
    );
  }
  for (const [k, v] of tokenizer) {
    if (!k.startsWith('tokenizer.'))
      throw new ModelError('GGUF_BAD_METADATA', `tokenizer metadata key "${k}" is outside tokenizer.*`, { field: k });
    metadata.set(k, v);
  }

  const shapes = expectedWeightShapes(c);
  const missing = [...shapes.keys()].filter((n) => !weights.has(n));
  const misShaped = [...shapes].filter(([n, s]) => weights.has(n) && weights.get(n)!.shape.join(',') !== s.join(','));
  if (missing.length || misShaped.length) {
    throw new ModelError(
      'BAD_WEIGHTS',
      `weights do not fit the config: missing ${JSON.stringify(missing)}, mis-shaped ${JSON.stringify(misShaped.map(([n]) => n))}`,
      { missing, misShaped: misShaped.map(([n]) => n) },
    );
  }
  const tensors: GgufTensor[] = [];
  for (const [name, shape] of shapes) {
    let data = weights.get(name)!.data;
    if (name.endsWith('q_proj.weight')) data = permuteRotaryRows(data, c.numAttentionHeads, c.headDim);
    if (name.endsWith('k_proj.weight')) data = permuteRotaryRows(data, c.numKeyValueHeads, c.headDim);
    tensors.push({ name: ggufTensorName(name), dims: [...shape].reverse(), data });
  }
  return { metadata, tensors };
}

/**
 * Write a Llama as a float32 GGUF v3 file that llama.cpp loads (see {@link llamaGguf}). `source` is a model, or the
 * `{ config, weights }` of `readHfLlama(dir)` (an HF directory converted without building a model).
 */
export function saveGguf(
  source: LlamaModel | { config: LlamaConfig; weights: HostWeights },
  path: string,
  opts: GgufExportOptions = {},
): void {
  let config: LlamaConfig;
  let weights: HostWeights;
  if (source instanceof LlamaModel) {
    config = source.config;
    weights = new Map();
    for (const [name, entry] of exportWeights(source))
      weights.set(name, { shape: entry.shape, data: toFloat32(entry) });
  } else ({ config, weights } = source);
  const { metadata, tensors } = llamaGguf(config, weights, opts);
  writeGguf(path, metadata, tensors);
}
