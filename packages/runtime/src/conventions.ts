/** Label value that takes no part in a loss (Hugging Face's `ignore_index`): prompt, padding and BOS positions. */
export const IGNORE_INDEX = -100;

/** Arithmetic mean of `xs`; `ifEmpty` (NaN unless given) when there are none. */
export function mean(xs: readonly number[], ifEmpty = Number.NaN): number {
  return xs.length === 0 ? ifEmpty : xs.reduce((a, b) => a + b, 0) / xs.length;
}
