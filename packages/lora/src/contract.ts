import type * as tf from '@tensorflow/tfjs';
import type { LinearModule } from '@hyperllama/llama-model';

export type { LinearModule };

/** A dense linear whose weight Variable is stored pre-transposed as [in, out] (as the model's DenseLinear). */
export interface WeightedLinear extends LinearModule {
  readonly weight: tf.Variable;
}

/**
 * What LoRA and NF4 need from a model: its linear layers by (HF, `model.`-less) name and, optionally, all its base
 * weights. `LlamaModel` satisfies it; so does any object with these members.
 */
export interface LinearHost {
  linearNames(): string[];
  getLinear(name: string): LinearModule;
  /** Replace a linear without disposing the old one (a wrapper may keep it). */
  setLinear(name: string, module: LinearModule): void;
  namedWeights?(): Map<string, tf.Variable>;
}

/** True for a linear that exposes an [in, out] weight Variable (so it can be merged into or quantised). */
export function isWeightedLinear(m: LinearModule): m is WeightedLinear {
  const w = (m as Partial<WeightedLinear>).weight;
  return (
    w !== undefined &&
    w !== null &&
    typeof (w as tf.Variable).assign === 'function' &&
    w.shape.length === 2 &&
    w.shape[0] === m.inFeatures &&
    w.shape[1] === m.outFeatures
  );
}
