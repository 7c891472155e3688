import * as tf from '@tensorflow/tfjs';
import { bad } from './errors.js';

/** int32 tensor [B, T] from host rows (all rows the same length). */
export function int2d(rows: readonly (readonly number[])[], field: string): tf.Tensor2D {
  if (rows.length === 0 || rows[0].length === 0)
    bad('HYPERNET_BAD_BATCH', field, 'a non-empty [B, T] array', [rows.length, rows[0]?.length]);
  const T = rows[0].length;
  rows.forEach((r, b) => {
    if (r.length !== T) bad('HYPERNET_BAD_BATCH', `${field}[${b}]`, `${T} columns (as row 0)`, r.length);
  });
  return tf.tensor2d(
    rows.map((r) => Array.from(r)),
    [rows.length, T],
    'int32',
  );
}

/** Number of tokens a batch feeds the model (mask = 1), for tokens/s. */
export function realTokens(batch: { attentionMask: readonly (readonly number[])[] }): number {
  let n = 0;
  for (const row of batch.attentionMask) for (const m of row) n += m;
  return n;
}
