import * as tf from '@tensorflow/tfjs';
import { type KVPrefix, type LayerKV, type LlamaConfig, applyRope } from '@hyperllama/llama-model';
import { check } from './errors.js';
import { parsePrefixFile, prefixBytes, readPrefixFile, writePrefixFile } from './io.js';
import type { Rows } from './layout.js';
import { type PositionScheme, checkScheme, downstreamOffsets } from './positions.js';

/** What a {@link Prefix} is made of; everything but the tensors has a default. */
export interface PrefixParts {
  /** Per layer, keys after RoPE and values [B, nKvHeads, P, headDim] (B may be 1 for any batch). */
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
  /** P (default: the tensors' third dimension). */
  length?: number;
  /** How the prefix was positioned (default `restart`); recorded in prefix files. */
  scheme?: PositionScheme;
  /** Per batch row (or one for every row), the first downstream position id (default `[length]`). */
  positionOffsets?: readonly number[];
  /** Which prefix columns each row may attend to ([B or 1][P], 1 = visible; default all). */
  attentionMask?: ReadonlyArray<ReadonlyArray<number>>;
  /** The caller's string metadata, saved with the prefix (e.g. a task name). */
  meta?: Readonly<Record<string, string>>;
}

/**
 * A soft prefix (past keys and values) for a frozen Llama: the object HyperLlama makes from its gists, prefix tuning
 * trains and prefix files hold. Per layer, keys (after RoPE) and values [B, nKvHeads, P, headDim]; P; the position
 * scheme it was made under; per row, where the downstream positions start; optionally which columns each row sees.
 * `@hyperllama/llama-model` takes it as a plain {@link KVPrefix}. Whoever makes a prefix owns its tensors:
 * {@link dispose} frees them (`PrefixTuning.prefix()` in `@hyperllama/hypernet` is a view of its variables, freed
 * with it).
 */
export class Prefix implements KVPrefix {
  readonly keys: tf.Tensor4D[];
  readonly values: tf.Tensor4D[];
  readonly length: number;
  readonly scheme: PositionScheme;
  readonly positionOffsets: number[];
  readonly attentionMask?: number[][];
  readonly meta: Readonly<Record<string, string>>;

  constructor(parts: PrefixParts) {
    check(
      Array.isArray(parts.keys) && parts.keys.length > 0 && parts.values?.length === parts.keys.length,
      'GIST_BAD_SHAPE',
      'prefix',
      'as many key as value tensors (>= 1)',
      [parts.keys?.length, parts.values?.length],
    );
    const scheme = parts.scheme ?? 'restart';
    checkScheme(scheme);
    this.keys = parts.keys;
    this.values = parts.values;
    this.length = parts.length ?? parts.keys[0].shape[2];
    this.scheme = scheme;
    this.positionOffsets = [...(parts.positionOffsets ?? [this.length])];
    if (parts.attentionMask) this.attentionMask = parts.attentionMask.map((r) => [...r]);
    this.meta = { ...parts.meta };
  }

  /** Rows of the batch (1 for a prefix shared by every row). */
  get batch(): number {
    return this.keys[0].shape[0];
  }

  /** The same tensors with other fields (no copy: dispose only one of the two). */
  with(changes: Partial<PrefixParts>): Prefix {
    const { keys, values, length, scheme, positionOffsets, attentionMask, meta } = this;
    return new Prefix({ keys, values, length, scheme, positionOffsets, attentionMask, meta, ...changes });
  }

  /** Row `i` as a batch-1 prefix (new tensors: the caller disposes them). */
  row(i: number): Prefix {
    check(
      Number.isInteger(i) && i >= 0 && i < this.batch,
      'GIST_BAD_SHAPE',
      'row',
      `an index in 0..${this.batch - 1}`,
      i,
    );
    const pick = (t: tf.Tensor4D) => tf.slice(t, [i, 0, 0, 0], [1, t.shape[1], t.shape[2], t.shape[3]]) as tf.Tensor4D;
    const pickRow = <T>(xs: readonly T[] | undefined): T[] | undefined =>
      xs === undefined ? undefined : [xs.length === 1 ? xs[0] : xs[i]];
    return this.with({
      keys: this.keys.map(pick),
      values: this.values.map(pick),
      positionOffsets: pickRow(this.positionOffsets),
      attentionMask: pickRow(this.attentionMask),
    });
  }

  /** Prefixes of the same length, layers and scheme as one batch, in order (new tensors: the caller disposes them). */
  static stack(prefixes: readonly Prefix[]): Prefix {
    check(prefixes.length > 0, 'GIST_BAD_SHAPE', 'prefixes', 'at least one prefix', prefixes.length);
    const [first] = prefixes;
    prefixes.forEach((p, n) => {
      check(
        p.length === first.length && p.keys.length === first.keys.length,
        'GIST_BAD_SHAPE',
        `prefixes[${n}]`,
        `${first.keys.length} layers of length ${first.length} (as prefixes[0])`,
        [p.keys.length, p.length],
      );
      check(
        p.scheme === first.scheme,
        'GIST_BAD_SCHEME',
        `prefixes[${n}].scheme`,
        `"${first.scheme}" (as prefixes[0])`,
        p.scheme,
      );
    });
    const perRow = <T>(p: Prefix, xs: readonly T[]): T[] =>
      xs.length === p.batch ? [...xs] : Array.from({ length: p.batch }, () => xs[0]);
    const masks = prefixes.some((p) => p.attentionMask)
      ? prefixes.flatMap((p) => perRow(p, p.attentionMask ?? [Array<number>(p.length).fill(1)]))
      : undefined;
    return new Prefix({
      keys: first.keys.map(
        (_, l) =>
          tf.concat(
            prefixes.map((p) => p.keys[l]),
            0,
          ) as tf.Tensor4D,
      ),
      values: first.values.map(
        (_, l) =>
          tf.concat(
            prefixes.map((p) => p.values[l]),
            0,
          ) as tf.Tensor4D,
      ),
      length: first.length,
      scheme: first.scheme,
      positionOffsets: prefixes.flatMap((p) => perRow(p, p.positionOffsets)),
      attentionMask: masks,
      meta: first.meta,
    });
  }

  /** Frees the tensors. */
  dispose(): void {
    tf.dispose([...this.keys, ...this.values]);
  }

  /**
   * Writes the prefix as safetensors (atomically): tensors `layers.{i}.keys` / `layers.{i}.values` (F32,
   * [B, nKvHeads, P, headDim]) and metadata `format`, `k`, `scheme`, `config_hash` (of `config`), `num_layers`,
   * `position_offsets` (JSON) plus the string `meta` (default: the prefix's own). Visible columns are not saved.
   */
  save(path: string, opts: { config: LlamaConfig; meta?: Record<string, string> }): void {
    writePrefixFile(this, path, opts.config, opts.meta ?? { ...this.meta });
  }

  /**
   * Reads a prefix written by {@link save} (the caller disposes it); the file's own metadata is in `meta`. With
   * `expectedConfig`, a prefix saved for another config (hash mismatch) or whose shapes do not fit it (layers, KV
   * heads, head size) is a `GIST_CONFIG_MISMATCH` error.
   */
  static load(path: string, expectedConfig?: LlamaConfig): Prefix {
    return new Prefix(readPrefixFile(path, expectedConfig));
  }

  /**
   * The bytes {@link save} writes (for a browser download): the same file, byte for byte. Reads the tensors
   * asynchronously, so it works on every backend, webgpu included.
   */
  toBytes(opts: { config: LlamaConfig; meta?: Record<string, string> }): Promise<Uint8Array> {
    return prefixBytes(this, opts.config, opts.meta ?? { ...this.meta });
  }

  /** {@link load} from the bytes of a prefix file (an upload); `source` names it in errors. */
  static fromBytes(bytes: Uint8Array, expectedConfig?: LlamaConfig, source = '<prefix bytes>'): Prefix {
    return new Prefix(parsePrefixFile(bytes, source, expectedConfig));
  }
}

export interface ExtractOptions {
  /** RoPE base and head size of the model (a `LlamaConfig` has both). */
  ropeTheta: number;
  headDim: number;
  /** The model's RoPE scaling and context length (a `LlamaConfig` has both), for re-rotating gist keys under `restart`. */
  ropeScaling?: LlamaConfig['ropeScaling'];
  maxPositionEmbeddings?: number;
  /** Position ids [B, T] the hyper pass used (needed under `continue` when it was left-padded); default 0..T-1. */
  hyperPositions?: Rows;
}

/**
 * The gists' per-layer keys and values as a prefix [B, nKvHeads, k, headDim] for the downstream pass.
 * `gistPositions` [B][k] are each row's gist indices in the hyper input (see `findGistPositions`); rows may differ.
 * `restart` rotates the pre-RoPE gist keys to positions 0..k-1; `continue` keeps the post-RoPE keys as they were.
 * Uses gather (not strided slices), so gradients flow back into the hyper pass. The caller owns the result.
 */
export function extractGistPrefix(
  /** Per layer, from `forward({ returnKV: true })`: keysPreRope, keys, values [B, nKvHeads, T, headDim]. */
  kv: ReadonlyArray<LayerKV>,
  gistPositions: ReadonlyArray<ReadonlyArray<number>>,
  scheme: PositionScheme,
  opts: ExtractOptions,
): Prefix {
  checkScheme(scheme);
  check(
    Array.isArray(kv) && kv.length > 0,
    'GIST_BAD_SHAPE',
    'kv',
    'one {keysPreRope, keys, values} per layer',
    kv?.length,
  );
  const first = kv[0]?.values?.shape;
  check(first?.length === 4, 'GIST_BAD_SHAPE', 'kv[0].values', 'a 4-D tensor [B, nKvHeads, T, headDim]', first);
  const [B, H, T, hd] = first;
  const used = ['values', scheme === 'restart' ? 'keysPreRope' : 'keys'] as const;
  kv.forEach((layer, l) => {
    for (const name of used) {
      const shape = layer[name]?.shape;
      check(
        shape !== undefined && shape.length === 4 && shape.every((d: number, n: number) => d === [B, H, T, hd][n]),
        'GIST_BAD_SHAPE',
        `kv[${l}].${name}`,
        `shape [${B}, ${H}, ${T}, ${hd}] (as kv[0].values)`,
        shape,
      );
    }
  });
  check(hd === opts.headDim, 'GIST_BAD_SHAPE', 'headDim', `${hd} (the K/V head size)`, opts.headDim);
  check(
    gistPositions.length === B,
    'GIST_BAD_SHAPE',
    'gistPositions',
    `${B} rows (the K/V batch)`,
    gistPositions.length,
  );
  const k = gistPositions[0].length;
  check(k > 0, 'GIST_BAD_LAYOUT', 'gistPositions[0]', 'at least one gist', k);
  gistPositions.forEach((row, b) => {
    check(row.length === k, 'GIST_BAD_LAYOUT', `gistPositions[${b}]`, `${k} positions (as row 0)`, row.length);
    row.forEach((t, j) =>
      check(
        Number.isInteger(t) && t >= 0 && t < T,
        'GIST_BAD_LAYOUT',
        `gistPositions[${b}][${j}]`,
        `an index in 0..${T - 1}`,
        t,
      ),
    );
  });
  const positionOffsets = downstreamOffsets(scheme, gistPositions, opts.hyperPositions);

  const flatIndex = gistPositions.flatMap((row, b) => row.map((t) => b * T + t)); // [B*k] into the [B*T] rows
  const { keys, values } = tf.tidy(() => {
    const index = tf.tensor1d(flatIndex, 'int32');
    const pick = (x: tf.Tensor4D): tf.Tensor4D => {
      const tokens = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [B * T, H * hd]); // [B*T, H*hd]
      const gists = tf.reshape(tf.gather(tokens, index), [B, k, H, hd]); // [B, k, H, hd]
      return tf.transpose(gists, [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, k, hd]
    };
    const restartPositions = tf.tensor2d(
      gistPositions.map(() => Array.from({ length: k }, (_, j) => j)),
      [B, k],
      'int32',
    );
    return {
      keys: kv.map((layer) =>
        scheme === 'restart'
          ? applyRope(pick(layer.keysPreRope), restartPositions, opts.ropeTheta, opts.headDim, {
              scaling: opts.ropeScaling,
              maxPositionEmbeddings: opts.maxPositionEmbeddings,
            })
          : pick(layer.keys),
      ),
      values: kv.map((layer) => pick(layer.values)),
    };
  });
  return new Prefix({ keys, values, length: k, scheme, positionOffsets });
}
