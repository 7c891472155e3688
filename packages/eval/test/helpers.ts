import { createLlama, type LlamaModel } from '@hyperllama/llama-model';
import type { EvalTokenizer } from '../src/index.js';

/** Character-level tokenizer for tests: 0 pad, 1 BOS, 2 EOS, printable ASCII 32..126 → 3..97. */
export const charTokenizer: EvalTokenizer = {
  bosId: 1,
  eosId: 2,
  padId: 0,
  encode: (text, opts = {}) => [
    ...(opts.bos ? [1] : []),
    ...[...text].map((ch) => Math.max(3, Math.min(97, ch.charCodeAt(0) - 29))),
  ],
  decode: (ids) =>
    ids
      .filter((id) => id >= 3 && id <= 97)
      .map((id) => String.fromCharCode(id + 29))
      .join(''),
};

/** A randomly initialised 2-layer Llama over {@link charTokenizer}'s 98 ids (GQA, tied head). */
export function tinyModel(seed: number): LlamaModel {
  return createLlama(
    {
      vocabSize: 98,
      hiddenSize: 32,
      intermediateSize: 64,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 8,
      maxPositionEmbeddings: 1024,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      tieWordEmbeddings: true,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: 0,
    },
    { seed, std: 0.1 },
  );
}
