import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, toFloat32, toInt32 } from '@hyperllama/runtime';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURES = join(here, 'fixtures');
/** ../shared/models/stories260K relative to the repository root. */
export const STORIES = join(here, '..', '..', '..', '..', 'shared', 'models', 'stories260K');

export interface Reference {
  ids: number[][];
  mask: number[][];
  positions: number[][];
  /** [B][T] → Float32Array(V) */
  logits: Float32Array[][];
}

/** A reference.safetensors written by tools/reference/llama_reference.py. */
export function readReference(path: string): Reference {
  const { tensors } = readSafetensors(path);
  const ints = (name: string) => {
    const e = tensors.get(name)!;
    const [B, T] = e.shape;
    const flat = toInt32(e, name);
    return Array.from({ length: B }, (_, b) => Array.from(flat.subarray(b * T, (b + 1) * T)));
  };
  const l = tensors.get('logits')!;
  const [B, T, V] = l.shape;
  const flat = toFloat32(l, 'logits');
  const logits = Array.from({ length: B }, (_, b) =>
    Array.from({ length: T }, (_, t) => flat.subarray((b * T + t) * V, (b * T + t + 1) * V)),
  );
  return { ids: ints('input_ids'), mask: ints('attention_mask'), positions: ints('position_ids'), logits };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
