import type { PositionScheme } from '@hyperllama/gist-attention';
import { FrozenLinear, type LlamaModel } from '@hyperllama/llama-model';
import { loadAdapter, readAdapterConfig, saveAdapter, type PeftLoraConfig } from '@hyperllama/lora';
import {
  dirnamePath as dirname,
  fileSystem,
  fromFloat32,
  HyperLlamaError,
  joinPath as join,
  nodeWriteFs,
  readSafetensors,
  requireNode,
  resolvePath as resolve,
  Sha256,
  toFloat32,
  writeFileAtomic,
  writeSafetensors,
} from '@hyperllama/runtime';
import { HypernetError, bad } from './errors.js';
import { DOWNSTREAM_VIEWS, HyperLlama, type AdapterOptions, type DownstreamView } from './hyperllama.js';

export const HYPERNET_CONFIG_FILE = 'hypernet_config.json';
export const GIST_EMBEDDINGS_FILE = 'gist_embeddings.safetensors';
export const HYPERNET_FORMAT = 'hyperllama-hypernet';

/** `hypernet_config.json`: what a HyperLlama checkpoint needs besides its adapters and gist rows. */
export interface HypernetConfigJson {
  format: typeof HYPERNET_FORMAT;
  format_version: 1;
  k: number;
  scheme: PositionScheme;
  gist_ids: number[];
  base_model: { path: string | null; hash: string };
  /** Where the tokenizer (with its gist tokens) lives, relative to the checkpoint when inside it; null if unknown. */
  tokenizer: string | null;
  adapters: { hyper: string; downstream: string | null };
  /** Written only when not the standard `gists` (an attention-mask ablation). */
  downstream_view?: DownstreamView;
}

/**
 * SHA-256 (hex) of the base model's weights: every tensor of `model.namedWeights()` and every linear weight held in
 * native memory (its stored values, dequantised, as [in, out]), in name order, its name, shape and float32 bytes.
 * Adapters are not part of it. Two bases with any different weight hash differently; the same values hash the same
 * wherever they live (a bf16 checkpoint loaded into the heap, or as fp32 or bf16 in native memory; NF4 stores other
 * values, so it hashes differently and needs `baseHash` to take an adapter trained on the unquantised base).
 */
export function baseModelHash(model: LlamaModel): string {
  const h = new Sha256();
  // name → its [in, out] float32 values, read when hashed (a frozen native-memory weight is dequantised then).
  const entries = new Map<string, () => { shape: number[]; data: Float32Array }>();
  for (const [name, v] of model.namedWeights())
    entries.set(name, () => ({ shape: v.shape, data: v.dataSync() as Float32Array }));
  for (const linear of model.linearNames()) {
    const name = linear === 'lm_head' ? 'lm_head.weight' : `model.${linear}.weight`;
    const frozen = entries.has(name) ? undefined : frozenBase(model.getLinear(linear));
    if (frozen) entries.set(name, () => frozenInOut(frozen));
  }
  for (const name of [...entries.keys()].sort()) {
    const { shape, data } = entries.get(name)!();
    h.update(`${name}:${shape.join('x')};`);
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digestHex();
}

/** The weights-in-native-memory module behind a linear (found through wrappers' `base`), if it is one. */
function frozenBase(m: unknown): FrozenLinear | undefined {
  for (let depth = 0; depth < 8 && m; depth++) {
    if (m instanceof FrozenLinear) return m;
    m = (m as { base?: unknown }).base;
  }
  return undefined;
}

/** A frozen weight's stored values in the layout a DenseLinear holds ([in, out]), so equal weights hash equally. */
function frozenInOut(m: FrozenLinear): { shape: number[]; data: Float32Array } {
  const [n, k] = m.frozen.shape; // [out, in]
  const outIn = m.frozen.dequantize();
  const inOut = new Float32Array(n * k);
  for (let o = 0; o < n; o++) for (let i = 0; i < k; i++) inOut[i * n + o] = outIn[o * k + i];
  return { shape: [k, n], data: inOut };
}

/**
 * Write a directory atomically: `fill` writes into a fresh temporary sibling, which then replaces `dir` by rename.
 * The previous `dir` is moved aside first and deleted only after the new one is in place, so at any moment either
 * the old or the new complete directory exists (`dir` or `dir.old`; {@link resolveCheckpointDir} finds it).
 */
export function writeDirAtomic(dir: string, fill: (tmp: string) => void): void {
  const { mkdirSync, rmSync, renameSync, existsSync } = nodeWriteFs(`writing ${dir}`);
  const target = resolve(dir);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${requireNode<{ pid: number }>('process', 'writing a directory').pid}`;
  const old = `${target}.old`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // a failed fill leaves nothing behind; `dir` is untouched
    throw e;
  }
  if (existsSync(target)) {
    rmSync(old, { recursive: true, force: true });
    renameSync(target, old);
  }
  renameSync(tmp, target);
  rmSync(old, { recursive: true, force: true });
}

/** `dir` if it exists, else the `dir.old` an interrupted {@link writeDirAtomic} left, else undefined. */
export function resolveCheckpointDir(dir: string): string | undefined {
  if (fileSystem().exists(dir)) return dir;
  if (fileSystem().exists(`${dir}.old`)) return `${dir}.old`;
  return undefined;
}

export interface SaveHyperLlamaOptions {
  /** Path of the base model (recorded; the hash is what loading checks). */
  basePath?: string | null;
  /** Tokenizer location to record (e.g. `tokenizer` when the caller saved it inside the checkpoint). */
  tokenizer?: string | null;
  /** Precomputed {@link baseModelHash} (hashing reads every base weight). */
  baseHash?: string;
}

/**
 * Save a HyperLlama checkpoint into `dir` (written atomically): `hyper/` (and `downstream/`) in PEFT's adapter
 * layout, `gist_embeddings.safetensors` ([k, D] under `gist_embeddings`), and `hypernet_config.json`.
 */
export function saveHyperLlama(hl: HyperLlama, dir: string, opts: SaveHyperLlamaOptions = {}): void {
  const hash = opts.baseHash ?? baseModelHash(hl.model);
  writeDirAtomic(dir, (tmp) => writeHyperLlama(hl, tmp, { ...opts, baseHash: hash }));
}

/** {@link saveHyperLlama} into an existing directory, not atomically (for callers that already write a temp dir). */
export function writeHyperLlama(hl: HyperLlama, dir: string, opts: SaveHyperLlamaOptions = {}): void {
  nodeWriteFs().mkdirSync(dir, { recursive: true });
  const basePath = opts.basePath ?? null;
  saveAdapter(hl.model, 'hyper', join(dir, 'hyper'), { baseModelNameOrPath: basePath });
  if (hl.hasDownstreamAdapter)
    saveAdapter(hl.model, 'downstream', join(dir, 'downstream'), { baseModelNameOrPath: basePath });
  const rows = hl.gistEmbeddings.dataSync() as Float32Array;
  writeSafetensors(
    join(dir, GIST_EMBEDDINGS_FILE),
    new Map([['gist_embeddings', fromFloat32(rows, hl.gistEmbeddings.shape)]]),
    { format: 'pt' },
  );
  const config: HypernetConfigJson = {
    format: HYPERNET_FORMAT,
    format_version: 1,
    k: hl.k,
    scheme: hl.scheme,
    gist_ids: [...hl.gistIds],
    base_model: { path: basePath, hash: opts.baseHash ?? baseModelHash(hl.model) },
    tokenizer: opts.tokenizer ?? null,
    adapters: { hyper: 'hyper', downstream: hl.hasDownstreamAdapter ? 'downstream' : null },
    ...(hl.downstreamView === 'gists' ? {} : { downstream_view: hl.downstreamView }),
  };
  writeFileAtomic(join(dir, HYPERNET_CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
}

/** Read and check `hypernet_config.json`. */
export function readHypernetConfig(dir: string): HypernetConfigJson {
  const file = join(dir, HYPERNET_CONFIG_FILE);
  if (!fileSystem().exists(file))
    throw new HypernetError('HYPERNET_NOT_FOUND', `${file}: no such file (not a HyperLlama checkpoint)`, { file });
  let json: HypernetConfigJson;
  try {
    json = JSON.parse(fileSystem().readText(file));
  } catch (e) {
    throw new HypernetError('HYPERNET_BAD_CONFIG', `${file}: not valid JSON (${(e as Error).message})`, { file });
  }
  const ctx = { file };
  if (json?.format !== HYPERNET_FORMAT) bad('HYPERNET_BAD_CONFIG', 'format', `"${HYPERNET_FORMAT}"`, json?.format, ctx);
  if (!Number.isInteger(json.k) || json.k < 1) bad('HYPERNET_BAD_CONFIG', 'k', 'a positive integer', json.k, ctx);
  if (json.scheme !== 'restart' && json.scheme !== 'continue')
    bad('HYPERNET_BAD_CONFIG', 'scheme', '"restart" or "continue"', json.scheme, ctx);
  if (typeof json.base_model?.hash !== 'string')
    bad('HYPERNET_BAD_CONFIG', 'base_model.hash', 'a string', json.base_model?.hash, ctx);
  const nullableString = (v: unknown) => v === null || v === undefined || (typeof v === 'string' && v !== '');
  if (!nullableString(json.base_model.path))
    bad('HYPERNET_BAD_CONFIG', 'base_model.path', 'a path or null', json.base_model.path, ctx);
  if (!nullableString(json.tokenizer)) bad('HYPERNET_BAD_CONFIG', 'tokenizer', 'a path or null', json.tokenizer, ctx);
  if (
    !Array.isArray(json.gist_ids) ||
    json.gist_ids.length !== json.k ||
    !json.gist_ids.every((id) => Number.isInteger(id) && id >= 0)
  ) {
    bad('HYPERNET_BAD_CONFIG', 'gist_ids', `${json.k} non-negative integer ids`, json.gist_ids, ctx);
  }
  // Adapter folders are names inside the checkpoint.
  const folder = (v: unknown) => typeof v === 'string' && /^[\w.-]+$/.test(v) && v !== '.' && v !== '..';
  if (typeof json.adapters !== 'object' || json.adapters === null || !folder(json.adapters.hyper))
    bad('HYPERNET_BAD_CONFIG', 'adapters.hyper', 'a folder name', json.adapters?.hyper, ctx);
  if (
    json.adapters.downstream !== null &&
    json.adapters.downstream !== undefined &&
    !folder(json.adapters.downstream)
  ) {
    bad('HYPERNET_BAD_CONFIG', 'adapters.downstream', 'a folder name or null', json.adapters.downstream, ctx);
  }
  if (json.downstream_view !== undefined && !DOWNSTREAM_VIEWS.includes(json.downstream_view)) {
    bad('HYPERNET_BAD_CONFIG', 'downstream_view', DOWNSTREAM_VIEWS.join(' | '), json.downstream_view, ctx);
  }
  return json;
}

/** `values`, unless one is NaN or ±Infinity (a `HYPERNET_BAD_CHECKPOINT` naming the file). */
function finiteRows(values: Float32Array, file: string): Float32Array {
  const bad = values.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0)
    throw new HypernetError(
      'HYPERNET_BAD_CHECKPOINT',
      `${file}: gist_embeddings holds ${values[bad]} at index ${bad}`,
      { file, tensor: 'gist_embeddings', index: bad },
    );
  return values;
}

function adapterOptions(c: PeftLoraConfig): AdapterOptions {
  return { r: c.r, alpha: c.loraAlpha, dropout: c.loraDropout, targetModules: c.targetModules, useRslora: c.useRslora };
}

/**
 * Load a HyperLlama checkpoint onto `model`, a base Llama without adapters. The base must be the one the checkpoint
 * was trained on: a different {@link baseModelHash} is a `HYPERNET_BASE_MISMATCH` error (nothing is injected then).
 */
export function loadHyperLlama(
  dir: string,
  model: LlamaModel,
  opts: { baseHash?: string } = {},
): { hyperllama: HyperLlama; config: HypernetConfigJson } {
  const config = readHypernetConfig(dir);
  const hash = opts.baseHash ?? baseModelHash(model);
  if (hash !== config.base_model.hash) {
    throw new HypernetError(
      'HYPERNET_BASE_MISMATCH',
      `${join(dir, HYPERNET_CONFIG_FILE)}: base_model.hash: the checkpoint was trained on base ${config.base_model.path ?? '(unnamed)'} with hash ${config.base_model.hash.slice(0, 16)}…, but the given model hashes to ${hash.slice(0, 16)}…`,
      {
        file: join(dir, HYPERNET_CONFIG_FILE),
        field: 'base_model.hash',
        expected: config.base_model.hash,
        actual: hash,
      },
    );
  }
  const gistFile = join(dir, GIST_EMBEDDINGS_FILE);
  const entry = readSafetensors(gistFile).tensors.get('gist_embeddings');
  if (!entry)
    throw new HypernetError('HYPERNET_BAD_CHECKPOINT', `${gistFile}: no tensor "gist_embeddings"`, { file: gistFile });
  const D = model.config.hiddenSize;
  if (entry.shape.join(',') !== `${config.k},${D}`) {
    bad('HYPERNET_BAD_CHECKPOINT', 'gist_embeddings', `shape [${config.k}, ${D}]`, entry.shape, { file: gistFile });
  }
  const hyperDir = join(dir, 'hyper');
  const downDir = config.adapters?.downstream ? join(dir, config.adapters.downstream) : undefined;
  const hyper = adapterOptions(readAdapterConfig(hyperDir));
  const downstream = downDir ? adapterOptions(readAdapterConfig(downDir)) : undefined;
  let hyperllama: HyperLlama;
  try {
    hyperllama = new HyperLlama(model, {
      k: config.k,
      scheme: config.scheme,
      hyper,
      downstream,
      gistEmbeddings: finiteRows(toFloat32(entry, 'gist_embeddings'), gistFile),
      downstreamView: config.downstream_view,
    });
  } catch (e) {
    // Adapter options the model cannot take (e.g. target_modules that match nothing) are the adapter config's fault.
    if (!(e instanceof HyperLlamaError) || (e instanceof HypernetError && e.code === 'HYPERNET_BAD_CHECKPOINT'))
      throw e;
    const file = join(downDir && /downstream/.test(e.message) ? downDir : hyperDir, 'adapter_config.json');
    throw new HypernetError('HYPERNET_BAD_CHECKPOINT', `${file}: ${e.message}`, { file, cause: e.code }, { cause: e });
  }
  loadAdapter(hyperDir, model, 'hyper');
  if (downDir) loadAdapter(downDir, model, 'downstream');
  return { hyperllama, config };
}
