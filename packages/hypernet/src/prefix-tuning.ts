import * as tf from '@tensorflow/tfjs';
import type { LmBatch } from '@hyperllama/datasets';
import { Prefix } from '@hyperllama/gist-attention';
import type { LlamaModel } from '@hyperllama/llama-model';
import { withActiveAdapters } from '@hyperllama/lora';
import { Rng } from '@hyperllama/runtime';
import { int2d } from './batch.js';
import { bad, requireSyncRead } from './errors.js';
import { prefixLoss } from './hyperllama.js';

/** How a {@link PrefixTuning} prefix starts: random (key/value statistics), a shared prefix, or a HyperLlama prefix. */
export type PrefixInit = 'random' | 'shared' | 'hyper';

let counter = 0;

/**
 * A trainable soft prefix (prefix tuning, Li & Liang 2021, in past-key-values form): per layer K and V Variables of
 * shape [1, nKvHeads, P, headDim] (keys after RoPE, as a `Prefix` holds them), put in front of every row of a
 * frozen model. Downstream positions start at P. Also serves as the "single shared prefix trained across tasks"
 * baseline.
 */
export class PrefixTuning {
  readonly keys: tf.Variable<tf.Rank.R4>[];
  readonly values: tf.Variable<tf.Rank.R4>[];
  readonly length: number;
  private readonly id = counter++;

  private constructor(keys: tf.Tensor4D[], values: tf.Tensor4D[]) {
    this.length = keys[0].shape[2];
    this.keys = keys.map((t, i) => tf.variable(t, true, `prefix.layers.${i}.keys#${this.id}`));
    this.values = values.map((t, i) => tf.variable(t, true, `prefix.layers.${i}.values#${this.id}`));
  }

  /**
   * Random initialisation scaled to the model's real keys and values: one forward pass over `sampleIds` [B, T]
   * (e.g. a few training rows) gives, per layer, the mean and standard deviation of the keys (after RoPE) and
   * values; the prefix entries are drawn from N(mean, std²) with the seeded Rng.
   */
  static random(model: LlamaModel, length: number, opts: { sampleIds: number[][]; seed: number }): PrefixTuning {
    if (!Number.isInteger(length) || length < 1)
      bad('HYPERNET_BAD_OPTION', 'prefix length', 'a positive integer', length);
    requireSyncRead('PrefixTuning.random (scaled to the keys and values of a forward pass)');
    const c = model.config;
    const rng = new Rng(opts.seed).fork('prefix-random');
    const stats = tf.tidy(() => {
      const out = model.forward({ inputIds: int2d(opts.sampleIds, 'sampleIds'), returnKV: true, returnHidden: true });
      return out.kv!.map((l) =>
        [l.keys, l.values].map((t) => [
          tf.mean(t).dataSync()[0],
          tf.sqrt(tf.mean(tf.square(tf.sub(t, tf.mean(t))))).dataSync()[0],
        ]),
      );
    });
    const n = c.numKeyValueHeads * length * c.headDim;
    const shape: [number, number, number, number] = [1, c.numKeyValueHeads, length, c.headDim];
    const draw = (mean: number, std: number) => tf.tensor4d(rng.normalArray(n, mean, std), shape);
    const keys = stats.map(([k]) => draw(k[0], k[1]));
    const values = stats.map(([, v]) => draw(v[0], v[1]));
    const p = new PrefixTuning(keys, values);
    tf.dispose([...keys, ...values]);
    return p;
  }

  /** Start from an existing prefix (row `row` of it): a trained shared prefix, or a HyperLlama prefix of the task. */
  static fromPrefix(prefix: Prefix, row = 0): PrefixTuning {
    const one = prefix.row(row);
    const p = new PrefixTuning(one.keys, one.values);
    one.dispose();
    return p;
  }

  /**
   * The prefix being tuned (batch 1, tiled over any batch; positions start at P): a view of the variables, not a
   * copy — do not dispose it; {@link dispose} frees them.
   */
  prefix(): Prefix {
    return new Prefix({
      keys: this.keys,
      values: this.values,
      length: this.length,
      scheme: 'restart',
      positionOffsets: [this.length],
    });
  }

  trainableVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    this.keys.forEach((v, i) => (out[`prefix.layers.${i}.keys`] = v));
    this.values.forEach((v, i) => (out[`prefix.layers.${i}.values`] = v));
    return out;
  }

  /** LM loss of a (zero-shot collated) batch behind this prefix. */
  loss(model: LlamaModel, batch: LmBatch, opts: { training?: boolean } = {}): tf.Scalar {
    return prefixLoss(model, batch, this.prefix(), opts);
  }

  /** Saves as a `@hyperllama/gist-attention` prefix file (safetensors + metadata). */
  save(path: string, model: LlamaModel, meta: Record<string, string> = {}): void {
    this.prefix().save(path, { config: model.config, meta: { kind: 'prefix-tuning', ...meta } });
  }

  static load(path: string, model: LlamaModel): PrefixTuning {
    const prefix = Prefix.load(path, model.config);
    const p = PrefixTuning.fromPrefix(prefix);
    prefix.dispose();
    return p;
  }

  dispose(): void {
    tf.dispose([...this.keys, ...this.values]);
  }
}

/** What {@link initPrefixTuning} starts from; each initialisation reads only its own fields. */
export interface PrefixSources {
  /** random: the prefix length (a positive integer). */
  length?: number;
  /** random: token rows [B, T] (e.g. zero-shot rows of the task's training pool) whose key/value statistics scale the draw. */
  sampleIds?: number[][];
  /** random: the seed of the draw (default 0). */
  seed?: number;
  /** random: the LoRA adapters active while the statistics are computed (a HyperLlama's downstream adapter, or none); default: those active now. */
  adapters?: readonly string[];
  /** shared: the trained shared prefix (row 0), or the path of its prefix file (checked against the model's config). */
  shared?: Prefix | string;
  /** hyper: a HyperLlama prefix (row 0: the task's own, or another task's), made under the "restart" scheme. */
  hyper?: Prefix;
}

/**
 * The one place a prefix-tuning run starts (the trainer's prefix-tune stage, eval's prefix-tuning protocol): random
 * (scaled to the model's keys and values over `sampleIds`), the trained shared prefix, or a HyperLlama prefix. The
 * sources are the caller's: the returned {@link PrefixTuning} holds copies.
 */
export function initPrefixTuning(model: LlamaModel, init: PrefixInit, sources: PrefixSources): PrefixTuning {
  if (init === 'random') {
    const { length, sampleIds, seed = 0, adapters } = sources;
    if (length === undefined) bad('HYPERNET_BAD_OPTION', 'length', 'the prefix length of a random start', length);
    if (!sampleIds) bad('HYPERNET_BAD_OPTION', 'sampleIds', 'token rows to scale a random start', sampleIds);
    const draw = () => PrefixTuning.random(model, length, { sampleIds, seed });
    return adapters ? withActiveAdapters(model, adapters, draw) : draw();
  }
  if (init === 'shared') {
    const { shared } = sources;
    if (!shared) bad('HYPERNET_BAD_OPTION', 'shared', 'the trained shared prefix', shared);
    return typeof shared === 'string' ? PrefixTuning.load(shared, model) : PrefixTuning.fromPrefix(shared);
  }
  if (init === 'hyper') {
    const { hyper } = sources;
    if (!hyper) bad('HYPERNET_BAD_OPTION', 'hyper', 'a HyperLlama prefix', hyper);
    // PrefixTuning restarts downstream positions at P; a "continue" prefix's keys are rotated for other positions.
    if (hyper.scheme !== 'restart') bad('HYPERNET_BAD_OPTION', 'hyper.scheme', 'a "restart" prefix', hyper.scheme);
    return PrefixTuning.fromPrefix(hyper);
  }
  return bad('HYPERNET_BAD_OPTION', 'init', '"random", "shared" or "hyper"', init);
}
