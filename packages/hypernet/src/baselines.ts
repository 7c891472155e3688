import type * as tf from '@tensorflow/tfjs';
import type { LmBatch } from '@hyperllama/datasets';
import type { LlamaModel } from '@hyperllama/llama-model';
import { injectLora, namedLoraParameters, withActiveAdapters } from '@hyperllama/lora';
import { Rng } from '@hyperllama/runtime';
import { DEFAULT_HYPER_LORA, plainLoss, type AdapterOptions } from './hyperllama.js';

/**
 * A LoRA multi-task baseline on a frozen base: `icl` (trained on full-attention few-shot rows from
 * `collateFewShot`, the paper's "multi-task fine-tuned with full attention" model) or `zero-shot` (rows from
 * `collateZeroShot`). The objective is the LM loss on the answer tokens.
 */
export class LoraBaseline {
  constructor(
    readonly model: LlamaModel,
    readonly adapter: string,
    opts: AdapterOptions & { seed?: number } = {},
  ) {
    const { seed = 0, ...lora } = opts;
    injectLora(model, { ...DEFAULT_HYPER_LORA, ...lora, name: adapter, rng: new Rng(seed).fork(`${adapter}-lora`) });
  }

  trainableVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    for (const [name, v] of namedLoraParameters(this.model, this.adapter)) out[`${this.adapter}.${name}`] = v;
    return out;
  }

  loss(batch: LmBatch, opts: { training?: boolean } = {}): tf.Scalar {
    return withActiveAdapters(this.model, [this.adapter], () => plainLoss(this.model, batch, opts));
  }
}
