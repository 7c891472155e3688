import * as tf from '@tensorflow/tfjs';
import { type LlamaConfig, type LlamaModel, type ForwardOptions, createLlama } from '@hyperllama/llama-model';

/** A tiny random Llama with grouped-query attention (4 query heads share 2 KV heads). */
export function tinyConfig(numHiddenLayers: number): LlamaConfig {
  return {
    vocabSize: 32,
    hiddenSize: 16,
    intermediateSize: 32,
    numHiddenLayers,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 4,
    maxPositionEmbeddings: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 0,
  };
}

/** Weights large enough (std 0.5) that a changed input visibly changes the logits. */
export function tinyModel(numHiddenLayers: number, seed = 1): LlamaModel {
  return createLlama(tinyConfig(numHiddenLayers), { seed, std: 0.5 });
}

/** Logits [B][T][V] of one forward; every tensor made here is disposed. */
export function logitsOf(
  model: LlamaModel,
  ids: number[][],
  opts: Omit<ForwardOptions, 'inputIds'> = {},
): number[][][] {
  return tf.tidy(() => {
    const inputIds = tf.tensor2d(ids, [ids.length, ids[0].length], 'int32');
    return model.forward({ ...opts, inputIds }).logits!.arraySync() as number[][][];
  });
}

/** Largest absolute difference between two [T][V] logit blocks, row by row. */
export function rowDiffs(a: number[][], b: number[][]): number[] {
  return a.map((row, i) => Math.max(...row.map((v, n) => Math.abs(v - b[i][n]))));
}

/** Boolean matrix product with itself: column j reaches row i in two attention hops through some m. */
export function twoHops(vis: boolean[][]): boolean[][] {
  return vis.map((row) => row.map((_, j) => row.some((seen, m) => seen && vis[m][j])));
}
