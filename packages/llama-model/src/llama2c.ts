import { ModelError } from './errors.js';
import { validateLlamaConfig, type LlamaConfig } from './config.js';
import type { HostWeights } from './model.js';
import { fileSystem } from '@hyperllama/runtime';

/** Bytes of the llama2.c v0 header: 7 little-endian int32. */
const HEADER_BYTES = 28;

/**
 * llama2.c rotates adjacent pairs (x[2i], x[2i+1]); Hugging Face rotates the two halves of a head (x[i], x[i+hd/2]).
 * Reordering each head's output rows of wq / wk as [0, 2, 4, …, 1, 3, 5, …] turns one convention into the other.
 * w [heads·hd, in] → same shape, rows permuted.
 */
export function permuteForRotateHalf(
  w: Float32Array,
  heads: number,
  headDim: number,
  inFeatures: number,
): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) {
        const src = (h * headDim + 2 * i + j) * inFeatures;
        const dst = (h * headDim + j * half + i) * inFeatures;
        out.set(w.subarray(src, src + inFeatures), dst);
      }
    }
  }
  return out;
}

/**
 * Read a llama2.c v0 checkpoint (`run.c`'s format: header dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size (negative = untied classifier), seq_len; then fp32 weights) into Hugging Face names and layout.
 * RMSNorm eps is llama2.c's 1e-5, RoPE theta 10000, bos 1, eos 2.
 */
export function readLlama2c(path: string): { config: LlamaConfig; weights: HostWeights } {
  let bytes: Uint8Array;
  try {
    bytes = fileSystem().readBytes(path);
  } catch (e) {
    throw new ModelError('UNREADABLE', `${path}: cannot read llama2.c checkpoint (${(e as Error).message})`, {
      file: path,
    });
  }
  if (bytes.byteLength < HEADER_BYTES) {
    throw new ModelError('BAD_LLAMA2C', `${path}: ${bytes.byteLength} bytes, fewer than the 28-byte llama2.c header`, {
      file: path,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [dim, hidden, layers, heads, kvHeads, signedVocab, seqLen] = Array.from({ length: 7 }, (_, i) =>
    view.getInt32(4 * i, true),
  );
  const vocab = Math.abs(signedVocab);
  const header = {
    dim,
    hidden_dim: hidden,
    n_layers: layers,
    n_heads: heads,
    n_kv_heads: kvHeads,
    vocab_size: signedVocab,
    seq_len: seqLen,
  };
  if ([dim, hidden, layers, heads, kvHeads, vocab, seqLen].some((v) => v <= 0) || dim % heads !== 0) {
    throw new ModelError('BAD_LLAMA2C', `${path}: implausible llama2.c header ${JSON.stringify(header)}`, {
      file: path,
      actual: header,
    });
  }
  const headDim = dim / heads;
  let config: LlamaConfig;
  try {
    config = validateLlamaConfig(
      {
        vocabSize: vocab,
        hiddenSize: dim,
        intermediateSize: hidden,
        numHiddenLayers: layers,
        numAttentionHeads: heads,
        numKeyValueHeads: kvHeads,
        headDim,
        maxPositionEmbeddings: seqLen,
        rmsNormEps: 1e-5,
        ropeTheta: 10000,
        tieWordEmbeddings: signedVocab > 0,
        bosTokenId: 1,
        eosTokenId: 2,
      },
      path,
    );
  } catch (e) {
    throw new ModelError(
      'BAD_LLAMA2C',
      `${path}: header ${JSON.stringify(header)} is not a valid Llama config (${(e as Error).message})`,
      { file: path, actual: header },
    );
  }
  const kvDim = kvHeads * headDim;
  const ropeTable = seqLen * (headDim / 2);
  // Float counts of the arrays in file order (llama2.c's memory_map_weights).
  const sizes = {
    embed: vocab * dim,
    rmsAtt: layers * dim,
    wq: layers * dim * dim,
    wk: layers * dim * kvDim,
    wv: layers * dim * kvDim,
    wo: layers * dim * dim,
    rmsFfn: layers * dim,
    w1: layers * dim * hidden,
    w2: layers * hidden * dim,
    w3: layers * dim * hidden,
    rmsFinal: dim,
    freqReal: ropeTable,
    freqImag: ropeTable,
    cls: signedVocab > 0 ? 0 : vocab * dim,
  };
  const totalFloats = Object.values(sizes).reduce((a, b) => a + b, 0);
  const expectedBytes = HEADER_BYTES + 4 * totalFloats;
  if (bytes.byteLength !== expectedBytes) {
    throw new ModelError(
      'BAD_LLAMA2C',
      `${path}: header ${JSON.stringify(header)} needs ${expectedBytes} bytes, file has ${bytes.byteLength}`,
      {
        file: path,
        expected: expectedBytes,
        actual: bytes.byteLength,
      },
    );
  }
  let offset = HEADER_BYTES;
  const take = (n: number): Float32Array => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(offset + 4 * i, true);
    offset += 4 * n;
    return out;
  };
  const arrays = Object.fromEntries(Object.entries(sizes).map(([k, n]) => [k, take(n)])) as Record<
    keyof typeof sizes,
    Float32Array
  >;
  for (const [name, values] of Object.entries(arrays)) {
    if (name === 'freqReal' || name === 'freqImag') continue; // legacy RoPE tables, never read
    const i = values.findIndex((x) => !Number.isFinite(x));
    if (i >= 0)
      throw new ModelError('NON_FINITE_WEIGHT', `${path}: llama2.c array "${name}" holds ${values[i]} at index ${i}`, {
        file: path,
        tensor: name,
        index: i,
      });
  }

  const weights: HostWeights = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => weights.set(name, { shape, data });
  const layerSlice = (a: Float32Array, i: number, n: number) => a.slice(i * n, (i + 1) * n);
  put('model.embed_tokens.weight', [vocab, dim], arrays.embed);
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    put(`${p}.input_layernorm.weight`, [dim], layerSlice(arrays.rmsAtt, i, dim));
    put(
      `${p}.self_attn.q_proj.weight`,
      [dim, dim],
      permuteForRotateHalf(layerSlice(arrays.wq, i, dim * dim), heads, headDim, dim),
    );
    put(
      `${p}.self_attn.k_proj.weight`,
      [kvDim, dim],
      permuteForRotateHalf(layerSlice(arrays.wk, i, dim * kvDim), kvHeads, headDim, dim),
    );
    put(`${p}.self_attn.v_proj.weight`, [kvDim, dim], layerSlice(arrays.wv, i, dim * kvDim));
    put(`${p}.self_attn.o_proj.weight`, [dim, dim], layerSlice(arrays.wo, i, dim * dim));
    put(`${p}.post_attention_layernorm.weight`, [dim], layerSlice(arrays.rmsFfn, i, dim));
    put(`${p}.mlp.gate_proj.weight`, [hidden, dim], layerSlice(arrays.w1, i, dim * hidden));
    put(`${p}.mlp.down_proj.weight`, [dim, hidden], layerSlice(arrays.w2, i, dim * hidden));
    put(`${p}.mlp.up_proj.weight`, [hidden, dim], layerSlice(arrays.w3, i, dim * hidden));
  }
  put('model.norm.weight', [dim], arrays.rmsFinal);
  if (signedVocab < 0) put('lm_head.weight', [vocab, dim], arrays.cls);
  return { config, weights };
}
