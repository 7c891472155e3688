import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from '@hyperllama/llama-model';
import {
  fromFloat32,
  serializeSafetensors,
  type SafetensorsFile,
  writeFileAtomic,
  readSafetensors,
  type SafetensorsEntry,
  Sha256,
  toFloat32,
} from '@hyperllama/runtime';
import { check } from './errors.js';
import type { Prefix, PrefixParts } from './prefix.js';
import { checkScheme } from './positions.js';

/** Value of the `format` metadata key of a saved prefix. */
export const PREFIX_FORMAT = 'hyperllama-kv-prefix';
const FORMAT_VERSION = '1';

/** The config fields that decide what a prefix means to a model (architecture, not token ids), in a fixed order. */
const HASHED_FIELDS = [
  'vocabSize',
  'hiddenSize',
  'intermediateSize',
  'numHiddenLayers',
  'numAttentionHeads',
  'numKeyValueHeads',
  'headDim',
  'maxPositionEmbeddings',
  'rmsNormEps',
  'ropeTheta',
  'tieWordEmbeddings',
] as const satisfies ReadonlyArray<keyof LlamaConfig>;

/**
 * A short hash (16 hex digits of SHA-256) of a model config's architecture fields. Two configs that differ in any of
 * them hash differently; it identifies the architecture, not the weights (store a model name in `meta` for that).
 */
export function configHash(config: LlamaConfig): string {
  const canonical = JSON.stringify(HASHED_FIELDS.map((f) => [f, config[f]]));
  return new Sha256().update(canonical).digestHex().slice(0, 16);
}

const RESERVED = ['format', 'format_version', 'k', 'scheme', 'config_hash', 'num_layers', 'position_offsets'];

/** `Prefix.save`: the file format (see there). */
export function writePrefixFile(prefix: Prefix, path: string, config: LlamaConfig, meta: Record<string, string>): void {
  const read = (ts: readonly tf.Tensor[]) => ts.map((t) => t.dataSync() as Float32Array);
  writeFileAtomic(
    path,
    serializePrefix(prefix, { keys: read(prefix.keys), values: read(prefix.values) }, config, meta, path),
  );
}

/**
 * `Prefix.toBytes`: the bytes of the file {@link writePrefixFile} writes. The tensors are read asynchronously, which
 * every backend can do (a synchronous read from webgpu breaks the device in some browsers).
 */
export async function prefixBytes(
  prefix: Prefix,
  config: LlamaConfig,
  meta: Record<string, string>,
): Promise<Uint8Array> {
  const read = (ts: readonly tf.Tensor[]) => Promise.all(ts.map(async (t) => (await t.data()) as Float32Array));
  const [keys, values] = await Promise.all([read(prefix.keys), read(prefix.values)]);
  return serializePrefix(prefix, { keys, values }, config, meta);
}

/** The safetensors bytes of a prefix whose key and value tensors have been read into `data` (layer order). */
function serializePrefix(
  prefix: Prefix,
  data: { keys: Float32Array[]; values: Float32Array[] },
  config: LlamaConfig,
  meta: Record<string, string>,
  target = '<prefix>',
): Uint8Array {
  checkScheme(prefix.scheme);
  for (const key of Object.keys(meta))
    check(!RESERVED.includes(key), 'GIST_BAD_META', `meta.${key}`, `a key other than ${RESERVED.join(', ')}`, key);
  check(
    prefix.keys.length === prefix.values.length && prefix.keys.length > 0,
    'GIST_BAD_SHAPE',
    'prefix',
    'as many key as value tensors (>= 1)',
    [prefix.keys.length, prefix.values.length],
  );
  const tensors: Record<string, SafetensorsEntry> = {};
  prefix.keys.forEach((t, l) => {
    tensors[`layers.${l}.keys`] = fromFloat32(data.keys[l], [...t.shape]);
    tensors[`layers.${l}.values`] = fromFloat32(data.values[l], [...prefix.values[l].shape]);
  });
  return serializeSafetensors(
    tensors,
    {
      ...meta,
      format: PREFIX_FORMAT,
      format_version: FORMAT_VERSION,
      k: String(prefix.length),
      scheme: prefix.scheme,
      config_hash: configHash(config),
      num_layers: String(prefix.keys.length),
      position_offsets: JSON.stringify(prefix.positionOffsets),
    },
    target,
  );
}

/** `Prefix.load`: reads and checks a prefix file (see there). */
export function readPrefixFile(path: string, expectedConfig?: LlamaConfig): PrefixParts {
  return parsePrefixFile(readSafetensors(path), path, expectedConfig);
}

/** `Prefix.fromBytes`: checks a parsed prefix file (or its bytes) as {@link readPrefixFile} does. */
export function parsePrefixFile(
  fileOrBytes: SafetensorsFile | Uint8Array,
  path: string,
  expectedConfig?: LlamaConfig,
): PrefixParts {
  const file = fileOrBytes instanceof Uint8Array ? readSafetensors(fileOrBytes, path) : fileOrBytes;
  const md = file.metadata;
  const where = { file: path };
  check(md.format === PREFIX_FORMAT, 'GIST_BAD_PREFIX_FILE', 'metadata.format', `"${PREFIX_FORMAT}"`, md.format, where);
  check(
    md.format_version === FORMAT_VERSION,
    'GIST_BAD_PREFIX_FILE',
    'metadata.format_version',
    `"${FORMAT_VERSION}"`,
    md.format_version,
    where,
  );
  const scheme = md.scheme;
  check(
    scheme === 'restart' || scheme === 'continue',
    'GIST_BAD_PREFIX_FILE',
    'metadata.scheme',
    '"restart" or "continue"',
    scheme,
    where,
  );
  const k = Number(md.k);
  const layers = Number(md.num_layers);
  check(Number.isInteger(k) && k > 0, 'GIST_BAD_PREFIX_FILE', 'metadata.k', 'a positive integer', md.k, where);
  check(
    Number.isInteger(layers) && layers > 0,
    'GIST_BAD_PREFIX_FILE',
    'metadata.num_layers',
    'a positive integer',
    md.num_layers,
    where,
  );
  let offsets: unknown;
  try {
    offsets = JSON.parse(md.position_offsets ?? '');
  } catch {
    offsets = md.position_offsets;
  }
  check(
    Array.isArray(offsets) && offsets.every((o) => Number.isInteger(o) && o >= 0),
    'GIST_BAD_PREFIX_FILE',
    'metadata.position_offsets',
    'a JSON list of non-negative integers',
    md.position_offsets,
    where,
  );
  if (expectedConfig) {
    check(
      md.config_hash === configHash(expectedConfig),
      'GIST_CONFIG_MISMATCH',
      'metadata.config_hash',
      `${configHash(expectedConfig)} (the given model config)`,
      md.config_hash,
      where,
    );
  }
  const names = new Set(file.tensors.keys());
  const read = (name: string): tf.Tensor4D => {
    const entry = file.tensors.get(name);
    check(entry !== undefined, 'GIST_BAD_PREFIX_FILE', name, 'a tensor of that name', 'missing', where);
    names.delete(name);
    const [B, H, P, hd] = entry.shape;
    check(
      entry.shape.length === 4 && P === k && B === offsets.length,
      'GIST_BAD_PREFIX_FILE',
      `${name}.shape`,
      `[${offsets.length}, nKvHeads, ${k}, headDim]`,
      entry.shape,
      where,
    );
    if (expectedConfig) {
      check(
        H === expectedConfig.numKeyValueHeads && hd === expectedConfig.headDim,
        'GIST_CONFIG_MISMATCH',
        `${name}.shape`,
        `[B, ${expectedConfig.numKeyValueHeads}, ${k}, ${expectedConfig.headDim}]`,
        entry.shape,
        where,
      );
    }
    const data = toFloat32(entry, name);
    const bad = data.findIndex((x) => !Number.isFinite(x));
    check(bad < 0, 'GIST_BAD_PREFIX_FILE', name, 'finite values', `${data[bad]} at index ${bad}`, where);
    return tf.tensor4d(data, [B, H, P, hd]);
  };
  const keys: tf.Tensor4D[] = [];
  const values: tf.Tensor4D[] = [];
  try {
    for (let l = 0; l < layers; l++) {
      keys.push(read(`layers.${l}.keys`));
      values.push(read(`layers.${l}.values`));
    }
    check(
      names.size === 0,
      'GIST_BAD_PREFIX_FILE',
      'tensors',
      `only layers.0..${layers - 1}.{keys,values}`,
      [...names],
      where,
    );
    if (expectedConfig) {
      check(
        layers === expectedConfig.numHiddenLayers,
        'GIST_CONFIG_MISMATCH',
        'metadata.num_layers',
        `${expectedConfig.numHiddenLayers}`,
        layers,
        where,
      );
    }
  } catch (e) {
    for (const t of [...keys, ...values]) t.dispose();
    throw e;
  }
  const meta = Object.fromEntries(Object.entries(md).filter(([key]) => !RESERVED.includes(key)));
  checkScheme(scheme);
  return { keys, values, length: k, scheme, positionOffsets: offsets as number[], meta };
}
