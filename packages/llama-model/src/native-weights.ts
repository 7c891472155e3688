import * as tf from '@tensorflow/tfjs';
import {
  FROZEN_BYTES_PER_PARAM,
  FROZEN_NF4_BLOCK,
  FrozenWeight,
  frozenBytes,
  frozenMatMul,
  loadNativeFrozen,
  toFloat32,
  type FrozenFormat,
  type SafetensorsDtype,
  fileSystem,
  isNode,
  joinPath as join,
  requireNode,
} from '@hyperllama/runtime';
import { parseLlamaConfig, type LlamaConfig } from './config.js';
import { ModelError } from './errors.js';
import type { LinearModule } from './linear.js';
import { LlamaModel, expectedWeightShapes, type HostWeights } from './model.js';

/** Node's fs (and os): native-memory weights are Node-only (reached lazily so the package still bundles for a browser). */
const nodeFs = (): typeof import('node:fs') => requireNode<typeof import('node:fs')>('fs', 'native-memory weights');
const nodeOs = (): typeof import('node:os') => requireNode<typeof import('node:os')>('os', 'native-memory weights');

/**
 * Big Llamas: the frozen base's linear weights in native memory (outside the wasm heap), loaded shard by shard.
 * Embeddings and norms stay float32 Variables on the backend; LoRA adapters, gist rows and prefixes are ordinary
 * Variables on top, so training, checkpoints and the higher-level APIs are unchanged.
 */

/** Where a model's linear weights live: `heap` = float32 Variables on the backend (the default), else native memory. */
export type WeightFormat = 'heap' | FrozenFormat;
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['heap', 'fp32', 'bf16', 'fp16', 'nf4'];

/** A linear layer whose frozen [out, in] weight lives in native memory; gradients flow to its input only. */
export class FrozenLinear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(readonly frozen: FrozenWeight) {
    [this.outFeatures, this.inFeatures] = frozen.shape;
  }

  /** [N, in] → [N, out] */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return frozenMatMul(x, this.frozen);
  }

  dispose(): void {
    this.frozen.dispose();
  }
}

/** Memory a backend can give: the wasm heap's room, and the host's available memory (native weights live there). */
export interface MemoryBudget {
  /** Bytes the backend's tensor memory may still grow by (the wasm heap ends at 4 GiB; elsewhere = host). */
  heapBytes: number;
  /** Bytes of host memory available (Linux: MemAvailable and the cgroup limit; else free memory). */
  hostBytes: number;
  /** What limits `heapBytes`, in words. */
  heapLimit: string;
}

/** The wasm backend's heap ends at 4 GiB (32-bit addresses). */
export const WASM_HEAP_BYTES = 4 * 1024 ** 3;

function readNumber(path: string): number | undefined {
  try {
    const v = Number(nodeFs().readFileSync(path, 'utf8').trim());
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Host memory available now: /proc/meminfo's MemAvailable (Linux), capped by a cgroup v2 limit, else os.freemem(). */
export function availableHostMemory(): number {
  let avail = nodeOs().freemem();
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(nodeFs().readFileSync('/proc/meminfo', 'utf8'));
    if (m) avail = Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  const limit = readNumber('/sys/fs/cgroup/memory.max');
  const used = readNumber('/sys/fs/cgroup/memory.current');
  if (limit !== undefined && used !== undefined && limit < nodeOs().totalmem()) avail = Math.min(avail, limit - used);
  return Math.max(0, avail);
}

/** What the current tfjs backend can give now (see {@link MemoryBudget}). */
export function memoryBudget(): MemoryBudget {
  const hostBytes = availableHostMemory();
  const backend = tf.getBackend();
  if (backend === 'wasm') {
    const used = tf.memory().numBytes;
    return {
      heapBytes: Math.max(0, Math.min(WASM_HEAP_BYTES - used, hostBytes)),
      hostBytes,
      heapLimit: `the wasm heap (4 GiB, ${gib(used)} in use)`,
    };
  }
  return { heapBytes: hostBytes, hostBytes, heapLimit: `host memory (${backend} backend)` };
}

export interface MemoryPlan {
  format: WeightFormat;
  /** Parameters of the linear layers (native memory unless `heap`) and of everything else (embeddings, norms). */
  linearParams: number;
  otherParams: number;
  /** Bytes in native memory (the linear weights unless `heap`). */
  nativeBytes: number;
  /** Bytes on the backend: float32 weights held as Variables plus `activationBytes`. */
  heapBytes: number;
  /** The activation reserve counted in `heapBytes`. */
  activationBytes: number;
  /** nativeBytes + heapBytes: what the host must hold. */
  totalBytes: number;
}

/**
 * Activation reserve for inference over `tokens` positions (a forward pass frees each layer's intermediates): per
 * token about 16·D + 4·F + V floats (residual stream, norms, q/k/v, MLP, logits), plus two per-head T×T score
 * buffers. An estimate, not a bound; training keeps every layer's activations: see {@link trainingActivationEstimate}.
 */
export function activationEstimate(c: LlamaConfig, tokens = 512): number {
  const perToken = 16 * c.hiddenSize + 4 * c.intermediateSize + c.vocabSize;
  return 4 * (tokens * perToken + 2 * c.numAttentionHeads * tokens * tokens);
}

/**
 * Activation memory of one training step (forward and backward) over `tokens` positions: autograd keeps about
 * 20·D + 8·F floats per token and layer (norms, q/k/v/o, MLP products) plus two per-head T×T attention buffers per
 * layer, and one chunk of logits. Measured on TinyLlama's shapes, 128 tokens: 1.05 GB (this gives 1.08 GB).
 * Pass it as `activationBytes` to check that training fits, not just inference.
 */
export function trainingActivationEstimate(c: LlamaConfig, tokens = 128): number {
  const L = c.numHiddenLayers;
  const perToken = L * (20 * c.hiddenSize + 8 * c.intermediateSize) + c.vocabSize;
  return 4 * (tokens * perToken + L * 2 * c.numAttentionHeads * tokens * tokens);
}

/** Memory a model of `config` needs with its linear weights in `format` (NF4 blocks of `blockSize`). */
export function planLlamaMemory(
  config: LlamaConfig,
  format: WeightFormat,
  opts: { activationBytes?: number; blockSize?: number } = {},
): MemoryPlan {
  let linearParams = 0;
  let otherParams = 0;
  let nativeBytes = 0;
  for (const [name, shape] of expectedWeightShapes(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (isLinearName(name)) {
      linearParams += size;
      if (format !== 'heap') nativeBytes += frozenBytes(format, shape[0], shape[1], opts.blockSize ?? FROZEN_NF4_BLOCK);
    } else otherParams += size;
  }
  const activationBytes = opts.activationBytes ?? activationEstimate(config);
  const heapBytes = 4 * (otherParams + (format === 'heap' ? linearParams : 0)) + activationBytes;
  return {
    format,
    linearParams,
    otherParams,
    nativeBytes,
    heapBytes,
    activationBytes,
    totalBytes: nativeBytes + heapBytes,
  };
}

/** A model that does not fit the memory the backend can give (thrown before anything is allocated). */
export class ModelMemoryError extends ModelError {}

const gib = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GiB`;

function fits(p: MemoryPlan, budget: MemoryBudget, nativeAvailable: boolean): boolean {
  if (p.format !== 'heap' && !nativeAvailable) return false;
  return p.heapBytes <= budget.heapBytes && p.totalBytes <= budget.hostBytes;
}

/**
 * Throws a {@link ModelMemoryError} when a model of `config` in `format` cannot fit `budget`: the message gives what it
 * needs (backend and host) against what can be had, and the weight formats that would fit.
 */
export function checkModelFits(
  config: LlamaConfig,
  format: WeightFormat,
  opts: { activationBytes?: number; blockSize?: number; budget?: MemoryBudget; source?: string } = {},
): MemoryPlan {
  const budget = opts.budget ?? memoryBudget();
  const plan = planLlamaMemory(config, format, opts);
  const native = loadNativeFrozen().frozen !== null;
  if (fits(plan, budget, true)) return plan;
  const alternatives = WEIGHT_FORMATS.filter((f) => f !== format)
    .map((f) => planLlamaMemory(config, f, opts))
    .filter((p) => fits(p, budget, native));
  const suggestion = alternatives[0]?.format;
  const needs =
    `needs ${gib(plan.heapBytes)} on the backend (float32 embeddings, norms${format === 'heap' ? ' and linear weights' : ''}` +
    ` and ${gib(plan.activationBytes)} of activations) against ${gib(budget.heapBytes)} left in ${budget.heapLimit}` +
    `, and ${gib(plan.totalBytes)} in all against ${gib(budget.hostBytes)} of available host memory`;
  const hint = suggestion
    ? `; weights: ${suggestion} would fit (${gib(alternatives[0].totalBytes)}: load with { weights: '${suggestion}' } or HYPERLLAMA_WEIGHTS=${suggestion})`
    : native
      ? '; no weight format fits (even nf4 needs ' + gib(planLlamaMemory(config, 'nf4', opts).totalBytes) + ')'
      : '; no format fits without the native addon (npm run build:native -w @hyperllama/runtime enables bf16 and nf4)';
  throw new ModelMemoryError(
    'MODEL_TOO_LARGE',
    `${opts.source ?? 'model'}: ${config.numHiddenLayers} layers × ${config.hiddenSize} (${((plan.linearParams + plan.otherParams) / 1e9).toFixed(2)}B parameters) with ${format} weights ${needs}${hint}`,
    {
      format,
      needBackendBytes: plan.heapBytes,
      needTotalBytes: plan.totalBytes,
      availableBackendBytes: budget.heapBytes,
      availableHostBytes: budget.hostBytes,
      suggestion,
    },
  );
}

const LINEAR = /^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$/;
function isLinearName(hfName: string): boolean {
  return LINEAR.test(hfName) || hfName === 'lm_head.weight';
}
const moduleName = (hfName: string) => (hfName === 'lm_head.weight' ? 'lm_head' : hfName.slice(6, -7));

interface HeaderEntry {
  file: string;
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

const DTYPE_SIZE: Partial<Record<string, number>> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1, BOOL: 1 };

/** The tensors of one safetensors file, from its header only (nothing else is read). */
function readHeader(file: string): HeaderEntry[] {
  const fail = (why: string): never => {
    throw new ModelError('BAD_SAFETENSORS', `${file}: ${why}`, { file });
  };
  const size = nodeFs().statSync(file).size;
  const fd = nodeFs().openSync(file, 'r');
  try {
    const lenBuf = Buffer.alloc(8);
    if (nodeFs().readSync(fd, lenBuf, 0, 8, 0) !== 8) fail('shorter than the 8-byte header length');
    const len = Number(lenBuf.readBigUInt64LE(0));
    if (len > 100_000_000 || 8 + len > size) fail(`header length ${len} exceeds the file (${size} bytes)`);
    const hb = Buffer.alloc(len);
    nodeFs().readSync(fd, hb, 0, len, 8);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    try {
      header = JSON.parse(hb.toString('utf8')) as typeof header;
    } catch (e) {
      return fail(`header is not JSON (${(e as Error).message})`);
    }
    const entries: HeaderEntry[] = [];
    for (const [name, e] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const el = DTYPE_SIZE[e.dtype];
      if (!el || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) fail(`tensor "${name}": bad entry`);
      const [b, en] = e.data_offsets;
      const count = e.shape.reduce((a, x) => a * x, 1);
      if (en - b !== count * el! || 8 + len + en > size) fail(`tensor "${name}": offsets [${b}, ${en}] do not fit`);
      entries.push({
        file,
        name,
        dtype: e.dtype as SafetensorsDtype,
        shape: e.shape,
        begin: 8 + len + b,
        end: 8 + len + en,
      });
    }
    return entries.sort((a, b) => a.begin - b.begin);
  } finally {
    nodeFs().closeSync(fd);
  }
}

function shardFiles(dir: string): string[] {
  const single = join(dir, 'model.safetensors');
  if (nodeFs().existsSync(single)) return [single];
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!nodeFs().existsSync(indexPath))
    throw new ModelError('NO_WEIGHTS', `${dir}: neither model.safetensors nor model.safetensors.index.json exists`, {
      file: dir,
    });
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(nodeFs().readFileSync(indexPath, 'utf8')) as typeof index;
  } catch (e) {
    throw new ModelError('BAD_INDEX', `${indexPath}: not valid JSON (${(e as Error).message})`, { file: indexPath });
  }
  if (!index || typeof index.weight_map !== 'object' || index.weight_map === null)
    throw new ModelError('BAD_INDEX', `${indexPath}: field "weight_map": expected an object of tensor name → file`, {
      file: indexPath,
      field: 'weight_map',
    });
  return [...new Set(Object.values(index.weight_map))].map((f) => join(dir, f));
}

export interface NativeLoadOptions {
  /** Format of the linear weights in native memory. */
  weights: FrozenFormat;
  /** NF4 block size (default 64). */
  blockSize?: number;
  /** Whether the embeddings and norms are trainable Variables (default true, as `loadLlama`). */
  trainable?: boolean;
  /** Activation reserve for the fit check (default {@link activationEstimate} of 512 tokens). */
  activationBytes?: number;
  /** Memory to check against (default {@link memoryBudget}). */
  budget?: MemoryBudget;
  /** Called after each shard with the shard's file and how many have been loaded. */
  onShard?: (file: string, done: number, total: number) => void;
}

/**
 * Load an HF Llama directory (`config.json` + `model.safetensors` or a sharded index; F32/F16/BF16) with its linear
 * weights in native memory as `weights` (fp32, bf16, fp16 or nf4). Every header is checked against the config and the
 * memory need against {@link memoryBudget} before anything is allocated; then the shards are read one tensor at a
 * time (a tensor's bytes, converted or quantised natively, then dropped), so peak memory stays near the final size.
 */
export function loadLlamaNative(dir: string, opts: NativeLoadOptions): LlamaModel {
  const format = opts.weights;
  const configPath = join(dir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(nodeFs().readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new ModelError('UNREADABLE', `${configPath}: cannot read (${(e as Error).message})`, { file: configPath });
  }
  const config = parseLlamaConfig(raw, configPath);
  const { frozen, why } = loadNativeFrozen();
  if (!frozen)
    throw new ModelError(
      'NATIVE_UNAVAILABLE',
      `${dir}: ${format} weights in native memory need the native addon: ${why}`,
      {
        file: dir,
        why,
      },
    );
  // 1. Headers only: names, shapes and dtypes against the config.
  const files = shardFiles(dir);
  const entries = files.flatMap(readHeader);
  const expected = expectedWeightShapes(config);
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const e of entries) {
    if (seen.has(e.name)) problems.push(`"${e.name}" appears twice`);
    seen.add(e.name);
    const shape = expected.get(e.name);
    const ignorable =
      e.name.endsWith('.rotary_emb.inv_freq') || (config.tieWordEmbeddings && e.name === 'lm_head.weight');
    if (!shape) {
      if (!ignorable) problems.push(`unexpected "${e.name}"`);
    } else if (shape.join(',') !== e.shape.join(','))
      problems.push(`"${e.name}": expected [${shape}], got [${e.shape}]`);
    else if (!['F32', 'F16', 'BF16'].includes(e.dtype)) problems.push(`"${e.name}": dtype ${e.dtype} is not a float`);
  }
  for (const name of expected.keys()) if (!seen.has(name)) problems.push(`missing "${name}"`);
  if (problems.length)
    throw new ModelError('BAD_WEIGHTS', `${dir}: weights do not match the config (${problems.join('; ')})`, {
      file: dir,
      problems,
    });
  // 2. Fail before allocating.
  checkModelFits(config, format, { ...opts, source: dir });
  // 3. Stream: one tensor's bytes at a time.
  const linears = new Map<string, LinearModule>();
  const host: HostWeights = new Map();
  try {
    for (let f = 0; f < files.length; f++) {
      const fd = nodeFs().openSync(files[f], 'r');
      try {
        for (const e of entries.filter((x) => x.file === files[f] && expected.has(x.name))) {
          const bytes = Buffer.allocUnsafe(e.end - e.begin);
          let got = 0;
          while (got < bytes.length) {
            const n = nodeFs().readSync(fd, bytes, got, bytes.length - got, e.begin + got);
            if (n <= 0)
              throw new ModelError('BAD_SAFETENSORS', `${e.file}: truncated in "${e.name}"`, { file: e.file });
            got += n;
          }
          if (isLinearName(e.name)) {
            const w = FrozenWeight.create(format, e.shape[0], e.shape[1], { blockSize: opts.blockSize });
            linears.set(moduleName(e.name), new FrozenLinear(w));
            w.fill(bytes, e.dtype as 'F32' | 'F16' | 'BF16');
          } else {
            host.set(e.name, {
              shape: e.shape,
              data: toFloat32({ dtype: e.dtype, shape: e.shape, data: bytes }, e.name),
            });
          }
        }
      } finally {
        nodeFs().closeSync(fd);
      }
      opts.onShard?.(files[f], f + 1, files.length);
    }
    return new LlamaModel(config, host, { trainable: opts.trainable, source: dir, linears });
  } catch (e) {
    for (const m of linears.values()) m.dispose();
    throw e;
  }
}

/** Bytes per parameter of each weight format (heap = float32 Variables). */
export const WEIGHT_BYTES_PER_PARAM: Readonly<Record<WeightFormat, number>> = { heap: 4, ...FROZEN_BYTES_PER_PARAM };

/** The weight format asked for: `requested`, else the HYPERLLAMA_WEIGHTS environment variable, else `heap`. */
export function resolveWeightFormat(requested?: WeightFormat): WeightFormat {
  const env = typeof process !== 'undefined' ? process.env.HYPERLLAMA_WEIGHTS : undefined;
  const format = requested ?? ((env || undefined) as WeightFormat | undefined) ?? 'heap';
  if (!WEIGHT_FORMATS.includes(format))
    throw new ModelError(
      'BAD_OPTION',
      `weights${requested === undefined ? ' (HYPERLLAMA_WEIGHTS)' : ''}: expected one of ${WEIGHT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`,
      { field: 'weights', expected: WEIGHT_FORMATS, actual: format },
    );
  return format;
}

/**
 * `loadLlama`'s first step: with native weights, the whole load (an HF directory); with `heap` weights, the fit check
 * of an HF directory before anything is read (undefined: go on and load into the heap).
 */
export function loadNativeOrCheck(
  path: string,
  opts: { weights?: WeightFormat; blockSize?: number; trainable?: boolean },
): LlamaModel | undefined {
  const format = resolveWeightFormat(opts.weights);
  if (format === 'heap' && !isNode()) return undefined; // a browser: no native memory, no host-memory figures
  const isDir = fileSystem().isDirectory(path);
  if (format !== 'heap') {
    if (!isDir)
      throw new ModelError('BAD_OPTION', `${path}: ${format} weights in native memory load HF directories only`, {
        file: path,
        field: 'weights',
      });
    return loadLlamaNative(path, { weights: format, blockSize: opts.blockSize, trainable: opts.trainable });
  }
  const configPath = join(path, 'config.json');
  if (isDir && fileSystem().exists(configPath)) {
    try {
      const config = parseLlamaConfig(JSON.parse(fileSystem().readText(configPath)), configPath);
      checkModelFits(config, 'heap', { source: path });
    } catch (e) {
      if (e instanceof ModelMemoryError) throw e;
      // An unreadable config is reported by the loader itself, with its own message.
    }
  }
  return undefined;
}
