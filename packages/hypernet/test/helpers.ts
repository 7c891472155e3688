import * as tf from '@tensorflow/tfjs';
import type { TokenEncoder } from '@hyperllama/datasets';
import { createLlama, type LlamaConfig, type LlamaModel } from '@hyperllama/llama-model';

/** A character-level encoder for tests: 0 pad, 1 BOS, 2 EOS, printable ASCII 32..126 → 3..97. */
export const charEncoder: TokenEncoder = {
  bosId: 1,
  eosId: 2,
  padId: 0,
  encode: (text) =>
    [...text].map((ch) => {
      const c = ch.charCodeAt(0);
      return c >= 32 && c <= 126 ? c - 29 : 3; // unknown characters become a space
    }),
};

export function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    vocabSize: 98,
    hiddenSize: 32,
    intermediateSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 8,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 0,
    ...over,
  };
}

export function tinyModel(seed = 0, over: Partial<LlamaConfig> = {}): LlamaModel {
  return createLlama(tinyConfig(over), { seed, std: 0.1 });
}

/** Host copies of every base weight, by HF name. */
export function snapshot(model: LlamaModel): Map<string, Float32Array> {
  return new Map([...model.namedWeights()].map(([n, v]) => [n, (v.dataSync() as Float32Array).slice()]));
}

export function varData(v: tf.Tensor): Float32Array {
  return (v.dataSync() as Float32Array).slice();
}
