import * as tf from '@tensorflow/tfjs';
import { check } from './errors.js';

/** A batch of integer rows [B, T]: nested arrays, typed-array rows, or a 2-D tensor (read back to the host). */
export type Rows = ReadonlyArray<ArrayLike<number>> | tf.Tensor2D;

/** A block of consecutive gist tokens in one row: indices start .. start+length-1. */
export interface GistSpan {
  start: number;
  length: number;
}

/** Rows as plain `number[][]`, checking they are rectangular; `field` names the argument in errors. */
export function toRows(rows: Rows, field: string): number[][] {
  if (rows instanceof tf.Tensor) {
    check(rows.rank === 2, 'GIST_BAD_SHAPE', field, 'a 2-D tensor [B, T]', rows.shape);
    return rows.arraySync() as number[][];
  }
  check(Array.isArray(rows) && rows.length > 0, 'GIST_BAD_SHAPE', field, 'a non-empty batch of rows [B, T]', rows);
  const out = (rows as ReadonlyArray<ArrayLike<number>>).map((r) => Array.from(r));
  const width = out[0].length;
  out.forEach((r, b) => {
    check(
      r.length === width,
      'GIST_BAD_SHAPE',
      `${field}[${b}]`,
      `length ${width} (rows must be equally long)`,
      r.length,
    );
    r.forEach((v, t) => check(Number.isInteger(v), 'GIST_BAD_ID', `${field}[${b}][${t}]`, 'an integer', v));
  });
  return out;
}

/** 1/0 padding rows [B, T] (default: all ones), checked against the expected batch and length. */
export function paddingRows(mask: Rows | undefined, batch: number, length: number, field: string): number[][] {
  if (mask === undefined) return Array.from({ length: batch }, () => Array.from({ length }, () => 1));
  const rows = toRows(mask, field);
  check(rows.length === batch, 'GIST_BAD_SHAPE', field, `${batch} rows`, rows.length);
  rows.forEach((r, b) => {
    check(r.length === length, 'GIST_BAD_SHAPE', `${field}[${b}]`, `length ${length}`, r.length);
    r.forEach((v, t) => check(v === 0 || v === 1, 'GIST_BAD_MASK', `${field}[${b}][${t}]`, '0 or 1', v));
  });
  return rows;
}

/** The gist id set, checked to be non-empty integers. */
export function gistIdSet(gistIds: Iterable<number>): Set<number> {
  const ids = new Set(gistIds);
  check(ids.size > 0, 'GIST_BAD_ID', 'gistIds', 'at least one gist token id', [...ids]);
  for (const id of ids) check(Number.isInteger(id) && id >= 0, 'GIST_BAD_ID', 'gistIds', 'non-negative integers', id);
  return ids;
}

/**
 * Maximal runs of gist tokens in one row (positions whose padding mask is 0 never count), in order.
 * Two gist blocks separated by at least one ordinary token are two spans.
 */
export function findGistSpans(
  ids: ArrayLike<number>,
  gistIds: ReadonlySet<number>,
  padding?: ArrayLike<number>,
): GistSpan[] {
  const spans: GistSpan[] = [];
  for (let t = 0; t < ids.length; t++) {
    const isGist = gistIds.has(ids[t]) && (padding === undefined || padding[t] === 1);
    if (!isGist) continue;
    const last = spans[spans.length - 1];
    if (last && last.start + last.length === t) last.length++;
    else spans.push({ start: t, length: 1 });
  }
  return spans;
}

/**
 * Indices [B, k] of each row's gist tokens (the row's real tokens only). Every row must hold exactly one block of the
 * same number k of gists; rows may put it at different places (left or right padding).
 */
export function findGistPositions(inputIds: Rows, gistIds: Iterable<number>, attentionMask?: Rows): number[][] {
  const ids = toRows(inputIds, 'inputIds');
  const pad = paddingRows(attentionMask, ids.length, ids[0].length, 'attentionMask');
  const set = gistIdSet(gistIds);
  const positions = ids.map((row, b) => {
    const spans = findGistSpans(row, set, pad[b]);
    check(
      spans.length === 1,
      'GIST_BAD_LAYOUT',
      `inputIds[${b}]`,
      'exactly one block of gist tokens',
      `${spans.length} blocks`,
      {
        spans,
      },
    );
    return Array.from({ length: spans[0].length }, (_, j) => spans[0].start + j);
  });
  const k = positions[0].length;
  positions.forEach((p, b) =>
    check(p.length === k, 'GIST_BAD_LAYOUT', `inputIds[${b}]`, `${k} gist tokens (as row 0)`, p.length),
  );
  return positions;
}

/** Pads token rows to one length; `side: 'left'` puts the padding first (for a hyper input whose gists end each row). */
export function padRows(
  rows: ReadonlyArray<ArrayLike<number>>,
  opts: { padId: number; side?: 'left' | 'right'; length?: number },
): { inputIds: number[][]; attentionMask: number[][] } {
  check(rows.length > 0, 'GIST_BAD_SHAPE', 'rows', 'at least one row', rows.length);
  const longest = Math.max(...rows.map((r) => r.length));
  const length = opts.length ?? longest;
  check(length >= longest, 'GIST_BAD_SHAPE', 'length', `at least the longest row (${longest})`, length);
  const left = opts.side === 'left';
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (const r of rows) {
    const pad = length - r.length;
    const ids = Array.from(r);
    const ones = Array.from({ length: r.length }, () => 1);
    const padIds = Array.from({ length: pad }, () => opts.padId);
    const zeros = Array.from({ length: pad }, () => 0);
    inputIds.push(left ? [...padIds, ...ids] : [...ids, ...padIds]);
    attentionMask.push(left ? [...zeros, ...ones] : [...ones, ...zeros]);
  }
  return { inputIds, attentionMask };
}
