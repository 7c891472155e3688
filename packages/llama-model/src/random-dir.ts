import { Rng, f32ToBf16Bits, f32ToF16Bits, joinPath as join, requireNode } from '@hyperllama/runtime';
import { llamaConfigToJson, validateLlamaConfig, type LlamaConfig } from './config.js';
import { ModelError } from './errors.js';
import { expectedWeightShapes } from './model.js';

/** Node's fs (and os): writing a random Llama directory are Node-only (reached lazily so the package still bundles for a browser). */
const nodeFs = (): typeof import('node:fs') =>
  requireNode<typeof import('node:fs')>('fs', 'writing a random Llama directory');

export interface RandomLlamaDirOptions {
  /** Seed of the weights (default 0). */
  seed?: number;
  /** Standard deviation of the linear and embedding weights (default 0.02, as HF initialises); norms are 1. */
  std?: number;
  /** Stored dtype (default BF16, as most published checkpoints). */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Shard size in bytes; tensors are never split (default 1 GiB → several shards and an index). */
  shardBytes?: number;
  /** Called after each tensor is written. */
  onTensor?: (name: string, done: number, total: number) => void;
}

/**
 * Write a randomly initialised Llama of `config` as a Hugging Face directory: `config.json`, safetensors shards of at
 * most `shardBytes` and `model.safetensors.index.json` (HF's names, `model-0000i-of-0000n.safetensors`). Tensors are
 * generated and written one at a time, so memory stays at one tensor however big the model is. Returns the shard
 * files and the total bytes of weights.
 */
export function writeRandomLlamaDir(
  dir: string,
  config: LlamaConfig,
  opts: RandomLlamaDirOptions = {},
): { files: string[]; bytes: number } {
  validateLlamaConfig(config);
  const dtype = opts.dtype ?? 'BF16';
  const el = dtype === 'F32' ? 4 : 2;
  const limit = opts.shardBytes ?? 1024 ** 3;
  if (!(limit > 0)) throw new ModelError('BAD_OPTION', `shardBytes: expected a positive number, got ${limit}`);
  const tensors = [...expectedWeightShapes(config)].map(([name, shape]) => ({
    name,
    shape,
    bytes: shape.reduce((a, b) => a * b, 1) * el,
  }));
  // Greedy shards in HF's tensor order.
  const shards: (typeof tensors)[] = [[]];
  let used = 0;
  for (const t of tensors) {
    if (used > 0 && used + t.bytes > limit) {
      shards.push([]);
      used = 0;
    }
    shards[shards.length - 1].push(t);
    used += t.bytes;
  }
  nodeFs().mkdirSync(dir, { recursive: true });
  const n = shards.length;
  const fileName = (i: number) =>
    n === 1
      ? 'model.safetensors'
      : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
  const rng = new Rng(opts.seed ?? 0);
  const std = opts.std ?? 0.02;
  const weightMap: Record<string, string> = {};
  let done = 0;
  let total = 0;
  for (let s = 0; s < n; s++) {
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let offset = 0;
    for (const t of shards[s]) {
      header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes] };
      offset += t.bytes;
      weightMap[t.name] = fileName(s);
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8); // 8-byte aligned data, as the reference writer pads
    const head = Buffer.alloc(8 + json.length);
    head.writeBigUInt64LE(BigInt(json.length), 0);
    head.write(json, 8, 'utf8');
    const fd = nodeFs().openSync(join(dir, fileName(s)), 'w');
    try {
      nodeFs().writeSync(fd, head);
      for (const t of shards[s]) {
        const count = t.bytes / el;
        const values =
          t.shape.length === 1 ? new Float32Array(count).fill(1) : rng.fork(t.name).normalArray(count, 0, std);
        let out: Uint8Array;
        if (dtype === 'F32') out = new Uint8Array(values.buffer);
        else {
          const bits = new Uint16Array(count);
          for (let i = 0; i < count; i++)
            bits[i] = dtype === 'BF16' ? f32ToBf16Bits(values[i]) : f32ToF16Bits(values[i]);
          out = new Uint8Array(bits.buffer);
        }
        for (let at = 0; at < out.length;) at += nodeFs().writeSync(fd, out, at, Math.min(out.length - at, 1 << 30));
        total += t.bytes;
        opts.onTensor?.(t.name, ++done, tensors.length);
      }
    } finally {
      nodeFs().closeSync(fd);
    }
  }
  if (n > 1)
    nodeFs().writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n',
    );
  nodeFs().writeFileSync(join(dir, 'config.json'), JSON.stringify(llamaConfigToJson(config), null, 2) + '\n');
  return { files: shards.map((_, i) => join(dir, fileName(i))), bytes: total };
}
