import * as tf from '@tensorflow/tfjs';
import { type KVPrefix, type LayerKV, applyRope } from '@hyperllama/llama-model';
import { check } from './errors.js';
import type { Rows } from './layout.js';
import { type PositionScheme, checkScheme, downstreamOffsets } from './positions.js';

/** A {@link KVPrefix} made from gist tokens: its scheme and where each row's downstream positions start. */
export interface GistPrefix extends KVPrefix {
  scheme: PositionScheme;
  /** Per batch row, the first downstream position id: k under `restart`, one past the last gist under `continue`. */
  positionOffsets: number[];
}

export interface ExtractOptions {
  /** RoPE base and head size of the model (a `LlamaConfig` has both). */
  ropeTheta: number;
  headDim: number;
  /** Position ids [B, T] the hyper pass used (needed under `continue` when it was left-padded); default 0..T-1. */
  hyperPositions?: Rows;
}

/**
 * The gists' per-layer keys and values as a prefix [B, nKvHeads, k, headDim] for the downstream pass.
 * `gistPositions` [B][k] are each row's gist indices in the hyper input (see `findGistPositions`); rows may differ.
 * `restart` rotates the pre-RoPE gist keys to positions 0..k-1; `continue` keeps the post-RoPE keys as they were.
 * Uses gather (not strided slices), so gradients flow back into the hyper pass. The caller owns the result
 * (dispose with {@link disposePrefix}).
 */
export function extractGistPrefix(
  /** Per layer, from `forward({ returnKV: true })`: keysPreRope, keys, values [B, nKvHeads, T, headDim]. */
  kv: ReadonlyArray<LayerKV>,
  gistPositions: ReadonlyArray<ReadonlyArray<number>>,
  scheme: PositionScheme,
  opts: ExtractOptions,
): GistPrefix {
  checkScheme(scheme);
  check(Array.isArray(kv) && kv.length > 0, 'GIST_BAD_SHAPE', 'kv', 'one {keysPreRope, keys, values} per layer', kv?.length);
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
  check(gistPositions.length === B, 'GIST_BAD_SHAPE', 'gistPositions', `${B} rows (the K/V batch)`, gistPositions.length);
  const k = gistPositions[0].length;
  check(k > 0, 'GIST_BAD_LAYOUT', 'gistPositions[0]', 'at least one gist', k);
  gistPositions.forEach((row, b) => {
    check(row.length === k, 'GIST_BAD_LAYOUT', `gistPositions[${b}]`, `${k} positions (as row 0)`, row.length);
    row.forEach((t, j) => check(Number.isInteger(t) && t >= 0 && t < T, 'GIST_BAD_LAYOUT', `gistPositions[${b}][${j}]`, `an index in 0..${T - 1}`, t));
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
        scheme === 'restart' ? applyRope(pick(layer.keysPreRope), restartPositions, opts.ropeTheta, opts.headDim) : pick(layer.keys),
      ),
      values: kv.map((layer) => pick(layer.values)),
    };
  });
  return { keys, values, length: k, scheme, positionOffsets };
}

/** Disposes a prefix's tensors. */
export function disposePrefix(prefix: KVPrefix): void {
  for (const t of [...prefix.keys, ...prefix.values]) t.dispose();
}
