import * as tf from '@tensorflow/tfjs';

/**
 * A linear layer without bias, addressed by its Hugging Face name (`layers.0.self_attn.q_proj`). The model only calls
 * `apply`, so LoRA wrappers or quantised weights can replace a module with {@link LlamaModel.setLinear}.
 */
export interface LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** [N, in] → [N, out]. `training` lets wrappers switch dropout on. */
  apply(x: tf.Tensor2D, opts?: { training?: boolean }): tf.Tensor2D;
  dispose(): void;
}

/**
 * A dense weight held PRE-TRANSPOSED as a [in, out] Variable (Hugging Face stores [out, in]), so the forward pass is
 * a plain 2-D `x @ W`, the fast path on wasm.
 */
export class DenseLinear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** [in, out] */
  readonly weight: tf.Variable<tf.Rank.R2>;

  /** `weightInOut` is [in, out]; it becomes a Variable named `name` (the tensor passed in is not disposed). */
  constructor(weightInOut: tf.Tensor2D, opts: { name?: string; trainable?: boolean } = {}) {
    [this.inFeatures, this.outFeatures] = weightInOut.shape;
    this.weight = tf.variable(weightInOut, opts.trainable ?? true, opts.name ? uniqueName(opts.name) : undefined);
  }

  /** Build from a Hugging Face [out, in] weight. */
  static fromOutIn(weightOutIn: tf.Tensor2D, opts: { name?: string; trainable?: boolean } = {}): DenseLinear {
    const t = tf.transpose(weightOutIn);
    const m = new DenseLinear(t, opts);
    t.dispose();
    return m;
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.matMul(x, this.weight); // [N, in] @ [in, out] → [N, out]
  }

  dispose(): void {
    this.weight.dispose();
  }
}

/**
 * The {@link DenseLinear} holding a module's base weight: the module itself, or the one a wrapper keeps in its
 * `base` property (followed recursively). Undefined when there is none (e.g. quantised weights).
 */
export function findDenseBase(m: LinearModule): DenseLinear | undefined {
  let cur: unknown = m;
  for (let depth = 0; depth < 8 && cur; depth++) {
    if (cur instanceof DenseLinear) return cur;
    cur = (cur as { base?: unknown }).base;
  }
  return undefined;
}

let variableCounter = 0;
/** tfjs variable names are global: suffix a counter so two models can hold the same HF name. */
function uniqueName(name: string): string {
  return `${name}#${variableCounter++}`;
}
export { uniqueName as uniqueVariableName };
