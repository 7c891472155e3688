import { Rng } from '@hyperllama/runtime';
import { validateLlamaConfig, type LlamaConfig } from './config.js';
import { LlamaModel, expectedWeightShapes, type HostWeights } from './model.js';

/**
 * A randomly initialised Llama, as Hugging Face initialises one: linear and embedding weights ~ N(0, std²)
 * (std = 0.02 by default), RMSNorm weights 1. Seeded: the same seed gives the same weights.
 */
export function createLlama(
  config: LlamaConfig,
  opts: { seed?: number; std?: number; trainable?: boolean } = {},
): LlamaModel {
  validateLlamaConfig(config);
  const rng = new Rng(opts.seed ?? 0);
  const std = opts.std ?? 0.02;
  const weights: HostWeights = new Map();
  for (const [name, shape] of expectedWeightShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = shape.length === 1 ? new Float32Array(n).fill(1) : rng.fork(name).normalArray(n, 0, std);
    weights.set(name, { shape, data });
  }
  return new LlamaModel(config, weights, { trainable: opts.trainable, source: 'createLlama' });
}
