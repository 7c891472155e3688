// Small models exposing the LinearHost contract with the model's DenseLinear layers, so LoRA and NF4 are tested on
// their own (model.test.ts tests them through the real LlamaModel).
import * as tf from '@tensorflow/tfjs';
import { DenseLinear, findDenseBase } from '@hyperllama/llama-model';
import { Rng } from '@hyperllama/runtime';
import type { LinearHost, LinearModule } from '../../src/index.js';

/** The model's DenseLinear built from row-major [in, out] values. */
export function dense(values: Float32Array, inFeatures: number, outFeatures: number): DenseLinear {
  const t = tf.tensor2d(values, [inFeatures, outFeatures]);
  const m = new DenseLinear(t);
  t.dispose();
  return m;
}

/** A "model" holding the given linears by name (the LinearHost contract, nothing else). */
export class MapHost implements LinearHost {
  constructor(readonly linears = new Map<string, LinearModule>()) {}
  linearNames(): string[] {
    return [...this.linears.keys()];
  }
  getLinear(name: string): LinearModule {
    return this.linears.get(name)!;
  }
  setLinear(name: string, m: LinearModule): void {
    this.linears.set(name, m);
  }
  namedWeights(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, m] of this.linears) {
      const base = findDenseBase(m);
      if (base) out.set(`model.${name}.weight`, base.weight);
    }
    return out;
  }
  dispose(): void {
    for (const m of this.linears.values()) m.dispose();
  }
}

/**
 * A two-layer "model" named like one Llama layer: q_proj [d, d] → v_proj [d, d] → relu → up_proj [d, h] →
 * down_proj [h, d]. Weights ~ N(0, 1/sqrt(in)) from a seeded Rng.
 */
export class TestHost extends MapHost {
  constructor(
    readonly d: number,
    readonly h: number,
    seed = 1,
  ) {
    super();
    const rng = new Rng(seed);
    const dims: Array<[string, number, number]> = [
      ['layers.0.self_attn.q_proj', d, d],
      ['layers.0.self_attn.v_proj', d, d],
      ['layers.0.mlp.up_proj', d, h],
      ['layers.0.mlp.down_proj', h, d],
    ];
    for (const [name, i, o] of dims) this.linears.set(name, dense(rng.normalArray(i * o, 0, 1 / Math.sqrt(i)), i, o));
  }
  /** [N, d] -> [N, d] */
  forward(x: tf.Tensor2D, training = false): tf.Tensor2D {
    return tf.tidy(() => {
      const o = { training };
      const a = this.getLinear('layers.0.self_attn.v_proj').apply(
        this.getLinear('layers.0.self_attn.q_proj').apply(x, o),
        o,
      );
      return this.getLinear('layers.0.mlp.down_proj').apply(
        tf.relu(this.getLinear('layers.0.mlp.up_proj').apply(a, o)),
        o,
      );
    });
  }
}

/** Plain-JS row-major matrix product [n, k] @ [k, m] (an independent reference for tfjs results). */
export function matmulJs(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      for (let j = 0; j < m; j++) out[i * m + j] += av * b[p * m + j];
    }
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
