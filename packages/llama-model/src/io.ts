import {
  fileSystem,
  fromFloat32,
  joinPath as join,
  nodeWriteFs,
  readSafetensors,
  type SafetensorsEntry,
  toFloat32,
  transposeMatrix,
  writeFileAtomic,
  writeSafetensors,
} from '@hyperllama/runtime';
import { ModelError } from './errors.js';
import { llamaConfigToJson, parseLlamaConfig, type LlamaConfig } from './config.js';
import { readLlama2c } from './llama2c.js';
import { LlamaModel, type HostWeights } from './model.js';
import { loadNativeOrCheck, type WeightFormat } from './native-weights.js';

export interface LoadOptions {
  /** Whether the loaded weights are trainable Variables (default true). */
  trainable?: boolean;
  /**
   * Where the linear weights live: `heap` (float32 Variables, the default) or native memory as `fp32`, `bf16`, `fp16`
   * or `nf4` (HF directories; needs the native addon). Default: the HYPERLLAMA_WEIGHTS environment variable, else heap.
   */
  weights?: WeightFormat;
  /** NF4 block size (default 64). */
  blockSize?: number;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = fileSystem().readText(path);
  } catch (e) {
    throw new ModelError('UNREADABLE', `${path}: cannot read (${(e as Error).message})`, { file: path });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelError('BAD_JSON', `${path}: not valid JSON (${(e as Error).message})`, { file: path });
  }
}

/** The safetensors files of an HF directory: `model.safetensors`, or the shards named by `model.safetensors.index.json`. */
function weightFiles(dir: string): string[] {
  const single = join(dir, 'model.safetensors');
  if (fileSystem().exists(single)) return [single];
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!fileSystem().exists(indexPath)) {
    throw new ModelError('NO_WEIGHTS', `${dir}: neither model.safetensors nor model.safetensors.index.json exists`, {
      file: dir,
    });
  }
  const index = readJson(indexPath) as { weight_map?: Record<string, string> };
  if (!index || typeof index.weight_map !== 'object' || index.weight_map === null) {
    throw new ModelError('BAD_INDEX', `${indexPath}: field "weight_map": expected an object of tensor name → file`, {
      file: indexPath,
      field: 'weight_map',
    });
  }
  return [...new Set(Object.values(index.weight_map))].map((f) => join(dir, f));
}

/** Index of the first NaN or ±Infinity in `values`, or -1. */
function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}

/** Read an HF Llama directory's config and weights (F32/F16/BF16, decoded to float32) without building a model. */
export function readHfLlama(dir: string): { config: LlamaConfig; weights: HostWeights } {
  const configPath = join(dir, 'config.json');
  const config = parseLlamaConfig(readJson(configPath), configPath);
  const weights: HostWeights = new Map();
  for (const file of weightFiles(dir)) {
    for (const [name, entry] of readSafetensors(file).tensors) {
      if (weights.has(name))
        throw new ModelError('DUPLICATE_TENSOR', `${file}: tensor "${name}" also appears in another shard`, {
          file,
          tensor: name,
        });
      const data = toFloat32(entry, name);
      // A NaN weight would turn every logit NaN far from here; stop at the file, naming the tensor.
      const bad = firstNonFinite(data);
      if (bad >= 0)
        throw new ModelError('NON_FINITE_WEIGHT', `${file}: tensor "${name}" holds ${data[bad]} at index ${bad}`, {
          file,
          tensor: name,
          index: bad,
        });
      weights.set(name, { shape: entry.shape, data });
    }
  }
  return { config, weights };
}

/**
 * Load a Llama: a Hugging Face directory (`config.json` + `model.safetensors` or a sharded index) or a llama2.c v0
 * `.bin` file (converted to HF conventions, including the RoPE row permutation of wq/wk).
 */
export function loadLlama(path: string, opts: LoadOptions = {}): LlamaModel {
  if (!fileSystem().exists(path))
    throw new ModelError('NOT_FOUND', `${path}: no such file or directory`, { file: path });
  const big = loadNativeOrCheck(path, opts); // native weights, or the heap's fit check
  if (big) return big;
  const { config, weights } = fileSystem().isDirectory(path) ? readHfLlama(path) : readLlama2c(path);
  return new LlamaModel(config, weights, { trainable: opts.trainable, source: path });
}

/** Host copies of a model's weights in HF names and layout (linear weights transposed back to [out, in]). */
export function exportWeights(model: LlamaModel): Map<string, SafetensorsEntry> {
  const out = new Map<string, SafetensorsEntry>();
  const named = model.namedWeights();
  for (const name of model.linearNames()) {
    const hfName = name === 'lm_head' ? 'lm_head.weight' : `model.${name}.weight`;
    if (!named.has(hfName)) {
      throw new ModelError(
        'NOT_DENSE',
        `cannot save "${name}": its module holds no dense base weight (e.g. quantised)`,
        { name },
      );
    }
  }
  for (const [name, v] of named) {
    const isLinear = name.endsWith('_proj.weight') || name === 'lm_head.weight';
    // On the host, so that a `readToHost` of the weights is all a backend without synchronous reads needs.
    const values = v.dataSync() as Float32Array;
    const [rows, cols] = v.shape;
    if (isLinear)
      out.set(name, fromFloat32(transposeMatrix(values, rows, cols), [cols, rows])); // [in, out] → [out, in]
    else out.set(name, fromFloat32(values, v.shape));
  }
  return out;
}

/**
 * Write an HF model directory: `config.json`, `generation_config.json` and `model.safetensors` with
 * `LlamaForCausalLM`'s tensor names and shapes (float32). Loading it back gives bit-identical weights.
 */
export function saveLlama(model: LlamaModel, dir: string): void {
  nodeWriteFs().mkdirSync(dir, { recursive: true });
  const c = model.config;
  writeSafetensors(join(dir, 'model.safetensors'), exportWeights(model), { format: 'pt' });
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(llamaConfigToJson(c), null, 2) + '\n');
  const generation = {
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    ...(c.padTokenId !== undefined ? { pad_token_id: c.padTokenId } : {}),
  };
  writeFileAtomic(join(dir, 'generation_config.json'), JSON.stringify(generation, null, 2) + '\n');
}
