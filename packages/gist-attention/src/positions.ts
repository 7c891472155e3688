import * as tf from '@tensorflow/tfjs';
import { check } from './errors.js';
import { type Rows, paddingRows, toRows } from './layout.js';

/**
 * How positions continue from the hyper pass to the downstream pass:
 * - `restart`: the gist keys are re-rotated to positions 0..k-1 and downstream tokens start at k, so a prefix does not
 *   depend on where the examples ended.
 * - `continue`: the gist keys keep the positions they had in the hyper pass and downstream tokens continue right after
 *   the last gist.
 */
export type PositionScheme = 'restart' | 'continue';

export function checkScheme(scheme: unknown): asserts scheme is PositionScheme {
  check(scheme === 'restart' || scheme === 'continue', 'GIST_BAD_SCHEME', 'scheme', '"restart" or "continue"', scheme);
}

/**
 * Position ids [B][T] from a padding mask: row b's real tokens are numbered offsets[b], offsets[b]+1, … in order, so
 * left padding does not shift them. Padding gets a harmless in-range position (the nearest real token's before it,
 * or the offset).
 */
export function positionIdsFromMask(attentionMask: Rows, offsets: number | ArrayLike<number> = 0): number[][] {
  const rows = toRows(attentionMask, 'attentionMask');
  const pad = paddingRows(rows, rows.length, rows[0].length, 'attentionMask');
  const offset = (b: number) => (typeof offsets === 'number' ? offsets : offsets[b]);
  if (typeof offsets !== 'number')
    check(offsets.length === rows.length, 'GIST_BAD_SHAPE', 'offsets', `${rows.length} values`, offsets.length);
  return pad.map((row, b) => {
    const o = offset(b);
    check(Number.isInteger(o) && o >= 0, 'GIST_BAD_SHAPE', `offsets[${b}]`, 'a non-negative integer', o);
    let seen = 0;
    return row.map((m) => {
      seen += m;
      return o + Math.max(seen - 1, 0);
    });
  });
}

/** int32 tensor [B, T] from position rows. */
export function positionTensor(positions: ReadonlyArray<ReadonlyArray<number>>): tf.Tensor2D {
  return tf.tensor2d(
    positions.map((r) => Array.from(r)),
    [positions.length, positions[0].length],
    'int32',
  );
}

/** Position ids of a (possibly left-padded) hyper pass: 0, 1, … over each row's real tokens. int32 [B, T]. */
export function hyperPositionIds(attentionMask: Rows): tf.Tensor2D {
  return positionTensor(positionIdsFromMask(attentionMask, 0));
}

/**
 * The position at which each row's downstream tokens start: k under `restart`; under `continue`, one past the
 * hyper-pass position of the row's last gist (`hyperPositions` are the position ids the hyper pass used, default the
 * indices 0..T-1).
 */
export function downstreamOffsets(
  scheme: PositionScheme,
  gistPositions: ReadonlyArray<ReadonlyArray<number>>,
  hyperPositions?: Rows,
): number[] {
  checkScheme(scheme);
  if (scheme === 'restart') return gistPositions.map((p) => p.length);
  const pos = hyperPositions === undefined ? undefined : toRows(hyperPositions, 'hyperPositions');
  if (pos)
    check(
      pos.length === gistPositions.length,
      'GIST_BAD_SHAPE',
      'hyperPositions',
      `${gistPositions.length} rows`,
      pos.length,
    );
  return gistPositions.map((p, b) => {
    const last = p[p.length - 1];
    return (pos ? pos[b][last] : last) + 1;
  });
}

/**
 * Position ids of the downstream pass behind a gist prefix: row b's real tokens are numbered from `offsets[b]`
 * (a prefix's `positionOffsets`), padding-aware. Give `attentionMask` [B, T], or `seqLen` for an unpadded batch.
 */
export function downstreamPositionIds(
  offsets: ArrayLike<number>,
  opts: { attentionMask?: Rows; seqLen?: number },
): tf.Tensor2D {
  const { attentionMask, seqLen = 0 } = opts;
  check(
    attentionMask !== undefined || seqLen > 0,
    'GIST_BAD_SHAPE',
    'downstreamPositionIds',
    'attentionMask or seqLen > 0',
    opts,
  );
  const mask = attentionMask ?? Array.from({ length: offsets.length }, () => Array.from({ length: seqLen }, () => 1));
  return positionTensor(positionIdsFromMask(mask, offsets));
}
