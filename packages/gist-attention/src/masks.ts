import * as tf from '@tensorflow/tfjs';
import { MASK_VALUE } from '@hyperllama/llama-model';
import { check } from './errors.js';
import { type GistSpan, type Rows, findGistSpans, gistIdSet, paddingRows, toRows } from './layout.js';

/**
 * A visibility pattern: `data[((b * T) + i) * (P + T) + c] = 1` when query row i of batch row b may attend to
 * column c (the P prefix columns come first, then the T columns of the sequence itself). Shape [B, 1, T, P+T].
 */
export interface Visibility {
  data: Uint8Array;
  shape: [number, 1, number, number];
}

/** Padding and prefix options shared by every mask builder. */
export interface MaskOptions {
  /** 1 = real token, 0 = padding, [B, T]; default all real. Padding columns are hidden from every row. */
  attentionMask?: Rows;
  /** Number P of prefix columns (a KV prefix) in front of the sequence's own columns; default 0. */
  prefixLength?: number;
  /** 1/0 over the prefix columns, [B, P]; default all visible. */
  prefixMask?: Rows;
}

/**
 * The core rule, from gist spans: row i sees prefix column p when `prefixMask[p]`, and its own column j when
 * j <= i (causal), j is a real token, and no gist block ends at or before i while starting after j
 * (after a block starting at s with k gists, rows >= s+k see no column < s; Mu et al. 2023, multi-gist).
 * A row that would see nothing (a padding row) sees itself, so its softmax stays finite; real rows never see it.
 */
export function spanVisibility(
  opts: MaskOptions & { seqLen: number; gistSpans: ReadonlyArray<ReadonlyArray<GistSpan>> },
): Visibility {
  const { seqLen: T, gistSpans } = opts;
  const B = gistSpans.length;
  check(B > 0, 'GIST_BAD_SHAPE', 'gistSpans', 'one list of spans per batch row', B);
  check(Number.isInteger(T) && T > 0, 'GIST_BAD_SHAPE', 'seqLen', 'a positive integer', T);
  const P = opts.prefixLength ?? 0;
  check(Number.isInteger(P) && P >= 0, 'GIST_BAD_SHAPE', 'prefixLength', 'a non-negative integer', P);
  const pad = paddingRows(opts.attentionMask, B, T, 'attentionMask');
  const prefixVisible = P > 0 ? paddingRows(opts.prefixMask, B, P, 'prefixMask') : [];
  const W = P + T;
  const data = new Uint8Array(B * T * W);
  for (let b = 0; b < B; b++) {
    const spans = [...gistSpans[b]].sort((x, y) => x.start - y.start);
    spans.forEach((s, n) =>
      check(
        Number.isInteger(s.start) &&
          Number.isInteger(s.length) &&
          s.length > 0 &&
          s.start >= 0 &&
          s.start + s.length <= T &&
          (n === 0 || s.start >= spans[n - 1].start + spans[n - 1].length),
        'GIST_BAD_LAYOUT',
        `gistSpans[${b}][${n}]`,
        `a non-overlapping block inside 0..${T - 1}`,
        s,
      ),
    );
    let cutoff = 0; // columns < cutoff are hidden from row i: start of the last block ending at or before i
    let next = 0;
    for (let i = 0; i < T; i++) {
      while (next < spans.length && spans[next].start + spans[next].length <= i) cutoff = spans[next++].start;
      const row = (b * T + i) * W;
      let any = false;
      if (pad[b][i] === 1) {
        for (let p = 0; p < P; p++) {
          if (prefixVisible[b][p] === 1) {
            data[row + p] = 1;
            any = true;
          }
        }
        for (let j = cutoff; j <= i; j++) {
          if (pad[b][j] === 1) {
            data[row + P + j] = 1;
            any = true;
          }
        }
      }
      if (!any) data[row + P + i] = 1;
    }
  }
  return { data, shape: [B, 1, T, W] };
}

/**
 * Visibility from token ids: every maximal run of gist ids is a gist block (Gisting, multi-gist, and the HyperLlama
 * hyper pass `[BOS] examples… <GIST_0..k-1>` alike). Rows may place their gists anywhere (left or right padding).
 */
export function gistVisibility(opts: MaskOptions & { inputIds: Rows; gistIds: Iterable<number> }): Visibility {
  const ids = toRows(opts.inputIds, 'inputIds');
  const T = ids[0].length;
  const pad = paddingRows(opts.attentionMask, ids.length, T, 'attentionMask');
  const set = gistIdSet(opts.gistIds);
  const gistSpans = ids.map((row, b) => findGistSpans(row, set, pad[b]));
  return spanVisibility({ ...opts, attentionMask: pad, seqLen: T, gistSpans });
}

/**
 * Visibility of a plain causal sequence behind P prefix columns: the downstream pass (all prefix columns visible,
 * causal over its own tokens, padding hidden). Give `attentionMask`, or `batch` and `seqLen` for an unpadded batch.
 */
export function downstreamVisibility(opts: MaskOptions & { batch?: number; seqLen?: number }): Visibility {
  let B = opts.batch;
  let T = opts.seqLen;
  if (opts.attentionMask !== undefined) {
    const rows = toRows(opts.attentionMask, 'attentionMask');
    B ??= rows.length;
    T ??= rows[0].length;
  }
  check(
    B !== undefined && T !== undefined,
    'GIST_BAD_SHAPE',
    'downstreamVisibility',
    'attentionMask, or batch and seqLen',
    opts,
  );
  return spanVisibility({ ...opts, seqLen: T, gistSpans: Array.from({ length: B }, () => []) });
}

/** Additive float32 mask [B, 1, T, P+T]: 0 where visible, `hidden` (default -1e9) elsewhere. A constant. */
export function toAdditiveMask(v: Visibility, hidden = MASK_VALUE): tf.Tensor4D {
  const values = new Float32Array(v.data.length);
  for (let n = 0; n < values.length; n++) values[n] = v.data[n] === 1 ? 0 : hidden;
  return tf.tensor4d(values, v.shape, 'float32');
}

/** Boolean mask [B, 1, T, P+T]: true where visible. */
export function toBooleanMask(v: Visibility): tf.Tensor4D {
  return tf.tensor4d(v.data, v.shape, 'bool');
}

/** Additive gist mask from token ids (see {@link gistVisibility}). */
export function gistMask(opts: MaskOptions & { inputIds: Rows; gistIds: Iterable<number> }): tf.Tensor4D {
  return toAdditiveMask(gistVisibility(opts));
}

/** Additive downstream mask (see {@link downstreamVisibility}). */
export function downstreamMask(opts: MaskOptions & { batch?: number; seqLen?: number }): tf.Tensor4D {
  return toAdditiveMask(downstreamVisibility(opts));
}

/** Visibility as nested 0/1 arrays [B][T][P+T] (for printing and tests). */
export function visibilityRows(v: Visibility): number[][][] {
  const [B, , T, W] = v.shape;
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: T }, (_, i) => Array.from(v.data.subarray((b * T + i) * W, (b * T + i + 1) * W))),
  );
}
