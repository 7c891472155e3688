import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './config.js';
import { ModelError } from './errors.js';
import { LlamaModel, type HostWeights } from './model.js';

/**
 * A copy of `model` with `sources.length` more token ids. New id `vocabSize + i` starts as the mean of the embedding
 * rows of `sources[i]` (the ids the old vocabulary spelled that token with; the LM head rows likewise when untied),
 * so on the old ids the new model computes exactly what `model` does. Every other weight is copied. `model` is left
 * as it was (dispose it when done). Only dense weights are copied: a model with quantised or native-memory linears is
 * refused (`NOT_DENSE`).
 */
export function extendVocabulary(
  model: LlamaModel,
  sources: readonly (readonly number[])[],
  opts: { trainable?: boolean } = {},
): LlamaModel {
  const V = model.config.vocabSize;
  sources.forEach((ids, i) => {
    if (!Array.isArray(ids) || ids.length === 0 || ids.some((id) => !Number.isInteger(id) || id < 0 || id >= V)) {
      throw new ModelError(
        'BAD_ARGUMENT',
        `extendVocabulary: sources[${i}]: expected a non-empty list of ids in [0, ${V}), got ${JSON.stringify(ids)}`,
        { field: `sources[${i}]`, actual: ids },
      );
    }
  });
  const named = model.namedWeights();
  const weights: HostWeights = new Map();
  for (const name of model.linearNames()) {
    const hfName = name === 'lm_head' ? 'lm_head.weight' : `model.${name}.weight`;
    if (!named.has(hfName))
      throw new ModelError('NOT_DENSE', `extendVocabulary: "${name}" holds no dense weight (e.g. quantised)`, { name });
  }
  for (const [name, v] of named) {
    const isLinear = name.endsWith('_proj.weight') || name === 'lm_head.weight';
    const grown = name === 'model.embed_tokens.weight' || name === 'lm_head.weight';
    const hf = tf.tidy(() => {
      const w = isLinear ? tf.transpose(v) : v.clone(); // [in, out] → HF [out, in]
      if (!grown || sources.length === 0) return w;
      // Row i is the mean of its sources' rows: gather every source row, sum per new id, divide by the count.
      const rows = tf.gather(w, tf.tensor1d(sources.flat(), 'int32')); // [Σ|sources|, D]
      const owner = tf.tensor1d(
        sources.flatMap((ids, i) => ids.map(() => i)),
        'int32',
      );
      const counts = tf.tensor2d(
        sources.map((ids) => ids.length),
        [sources.length, 1],
      );
      return tf.concat([w, tf.div(tf.unsortedSegmentSum(rows, owner, sources.length), counts)], 0);
    });
    weights.set(name, { shape: hf.shape, data: hf.dataSync() as Float32Array });
    hf.dispose();
  }
  const config: LlamaConfig = { ...model.config, vocabSize: V + sources.length };
  return new LlamaModel(config, weights, { trainable: opts.trainable, source: 'extendVocabulary' });
}
