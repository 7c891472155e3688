import { check } from './errors.js';
import { findGistPositions, padRows } from './layout.js';
import { type PositionScheme, downstreamOffsets, positionIdsFromMask } from './positions.js';

/** Label of a token that takes no part in the loss (Hugging Face convention; the model shifts labels itself). */
export const IGNORE_LABEL = -100;

/** Host-side hyper batch: `[BOS] examples… <GIST_0..k-1>` rows, left-padded so that every row ends with its gists. */
export interface HyperInput {
  inputIds: number[][]; // [B, L]
  attentionMask: number[][]; // [B, L]
  positionIds: number[][]; // [B, L] real tokens numbered from 0
  gistPositions: number[][]; // [B, k] indices of the gists
}

/** Host-side downstream batch, right-padded; `labels` are aligned with `inputIds` (-100 = no loss). */
export interface DownstreamInput {
  inputIds: number[][]; // [B, T]
  attentionMask: number[][]; // [B, T]
  labels: number[][]; // [B, T]
}

/** Appends the gist ids to each row (which should start with BOS) and left-pads the batch. */
export function hyperInput(rows: ReadonlyArray<ReadonlyArray<number>>, gistIds: ReadonlyArray<number>, opts: { padId: number }): HyperInput {
  check(gistIds.length > 0, 'GIST_BAD_ID', 'gistIds', 'at least one gist id', gistIds.length);
  const { inputIds, attentionMask } = padRows(
    rows.map((r) => [...r, ...gistIds]),
    { padId: opts.padId, side: 'left' },
  );
  return { inputIds, attentionMask, positionIds: positionIdsFromMask(attentionMask), gistPositions: findGistPositions(inputIds, gistIds, attentionMask) };
}

/**
 * Downstream rows `context target`, right-padded; labels keep the target tokens only. The model predicts token t+1
 * at position t, so the first target token is predicted at the last context token (give a non-empty context).
 */
export function downstreamInput(
  contexts: ReadonlyArray<ReadonlyArray<number>>,
  targets: ReadonlyArray<ReadonlyArray<number>>,
  opts: { padId: number },
): DownstreamInput {
  check(contexts.length === targets.length, 'GIST_BAD_SHAPE', 'targets', `${contexts.length} rows (one per context)`, targets.length);
  const rows = contexts.map((c, b) => [...c, ...targets[b]]);
  const { inputIds, attentionMask } = padRows(rows, { padId: opts.padId, side: 'right' });
  const labels = inputIds.map((row, b) =>
    row.map((id, t) => (t >= contexts[b].length && t < rows[b].length ? id : IGNORE_LABEL)),
  );
  return { inputIds, attentionMask, labels };
}

/**
 * Compression hyperpretraining (DESIGN.md): consecutive text segments A B C D; the hypernetwork reads
 * `[BOS] A D <GIST_0..k-1>`, the downstream model reads `B C` behind the gist prefix and is trained on C.
 * Returns both batches and, for `scheme`, the first downstream position of each row.
 */
export function compressionInputs(
  segments: ReadonlyArray<{ a: ReadonlyArray<number>; b: ReadonlyArray<number>; c: ReadonlyArray<number>; d: ReadonlyArray<number> }>,
  gistIds: ReadonlyArray<number>,
  opts: { bosId: number; padId: number; scheme: PositionScheme },
): { hyper: HyperInput; downstream: DownstreamInput; downstreamOffsets: number[] } {
  check(segments.length > 0, 'GIST_BAD_SHAPE', 'segments', 'at least one {a, b, c, d}', segments.length);
  segments.forEach((s, n) => check(s.c.length > 0, 'GIST_BAD_SHAPE', `segments[${n}].c`, 'at least one token to predict', s.c.length));
  const hyper = hyperInput(segments.map((s) => [opts.bosId, ...s.a, ...s.d]), gistIds, opts);
  const downstream = downstreamInput(segments.map((s) => s.b), segments.map((s) => s.c), opts);
  return { hyper, downstream, downstreamOffsets: downstreamOffsets(opts.scheme, hyper.gistPositions, hyper.positionIds) };
}
