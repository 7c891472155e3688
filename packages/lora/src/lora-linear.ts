import * as tf from '@tensorflow/tfjs';
import type { Rng } from '@hyperllama/runtime';
import type { LinearModule } from './contract.js';
import { LoraError } from './errors.js';

/** Hyper-parameters of one adapter on one linear (PEFT's names in comments). */
export interface LoraAdapterOptions {
  /** Rank (`r`). */
  r: number;
  /** `lora_alpha`; the update is scaled by alpha / r (alpha / sqrt(r) with `useRslora`). */
  alpha: number;
  /** `lora_dropout`: probability of zeroing an adapter input element while training. */
  dropout: number;
  /** `use_rslora`. */
  useRslora?: boolean;
}

/** One adapter's trainable factors, stored pre-transposed so that x @ A @ B are plain 2-D matMuls. */
export interface LoraAdapter extends Required<LoraAdapterOptions> {
  A: tf.Variable<tf.Rank.R2>; // [in, r]  (PEFT's lora_A.weight is its transpose, [r, in])
  B: tf.Variable<tf.Rank.R2>; // [r, out] (PEFT's lora_B.weight is its transpose, [out, r])
  scaling: number;
  /** Draws this adapter's dropout masks. */
  dropoutRng: Rng;
}

/**
 * A linear layer plus named LoRA adapters: y = base(x) + Σ_{a active} scaling_a · dropout_a(x) @ A_a @ B_a.
 * The base module is left untouched (frozen); only the adapters' A and B are trainable.
 */
export class LoraLinear implements LinearModule {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly adapters = new Map<string, LoraAdapter>();
  /** Names of the adapters applied in the forward pass. */
  active = new Set<string>();

  constructor(public base: LinearModule) {
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
  }

  /**
   * Add an adapter initialised as PEFT does: A ~ Kaiming-uniform with a = sqrt(5) on PEFT's [r, in] weight, i.e.
   * U(-1/sqrt(in), 1/sqrt(in)) (gain sqrt(2 / (1 + a²)) × sqrt(3 / fan_in)); B = 0, so the adapter starts as a no-op.
   * `initRng` draws A; `dropoutRng` is kept for the dropout masks.
   */
  addAdapter(name: string, o: LoraAdapterOptions, initRng: Rng, dropoutRng: Rng): LoraAdapter {
    if (this.adapters.has(name)) {
      throw new LoraError('LORA_ADAPTER_EXISTS', `adapter "${name}" already exists on this linear`, { adapter: name });
    }
    const bound = 1 / Math.sqrt(this.inFeatures);
    const a = initRng.uniformArray(this.inFeatures * o.r, -bound, bound);
    const adapter: LoraAdapter = {
      r: o.r,
      alpha: o.alpha,
      dropout: o.dropout,
      useRslora: o.useRslora ?? false,
      scaling: o.useRslora ? o.alpha / Math.sqrt(o.r) : o.alpha / o.r,
      A: tf.variable(tf.tensor2d(a, [this.inFeatures, o.r]), true),
      B: tf.variable(tf.zeros([o.r, this.outFeatures]), true),
      dropoutRng,
    };
    this.adapters.set(name, adapter);
    return adapter;
  }

  /** Remove an adapter and dispose its variables. */
  removeAdapter(name: string): void {
    const a = this.adapters.get(name);
    if (!a) return;
    a.A.dispose();
    a.B.dispose();
    this.adapters.delete(name);
    this.active.delete(name);
  }

  /** scaling · A @ B, the adapter's update of the [in, out] weight. */
  deltaWeight(name: string): tf.Tensor2D {
    const a = this.adapters.get(name);
    if (!a) throw new LoraError('LORA_UNKNOWN_ADAPTER', `adapter "${name}" is not on this linear`, { adapter: name });
    return tf.tidy(() => tf.mul(tf.matMul(a.A, a.B), a.scaling));
  }

  /** [N, in] -> [N, out] */
  apply(x: tf.Tensor2D, opts: { training?: boolean } = {}): tf.Tensor2D {
    return tf.tidy(() => {
      let y = this.base.apply(x, opts);
      for (const name of this.active) {
        const a = this.adapters.get(name)!;
        const input = opts.training && a.dropout > 0 ? this.dropout(x, a) : x;
        const low = tf.mul(tf.matMul(input, a.A), a.scaling); // [N, r]
        y = tf.add(y, tf.matMul(low, a.B));
      }
      return y;
    });
  }

  /** Inverted dropout with a mask from the adapter's seeded Rng. */
  private dropout(x: tf.Tensor2D, a: LoraAdapter): tf.Tensor2D {
    const u = a.dropoutRng.uniformArray(x.size);
    const keep = 1 / (1 - a.dropout);
    const mask = new Float32Array(x.size);
    for (let i = 0; i < mask.length; i++) mask[i] = u[i] >= a.dropout ? keep : 0;
    return tf.mul(x, tf.tensor2d(mask, x.shape));
  }

  /** Dispose the adapters' variables and the base module. */
  dispose(): void {
    for (const name of this.adapters.keys()) this.removeAdapter(name); // deleting while iterating a Map is safe
    this.base.dispose();
  }
}
