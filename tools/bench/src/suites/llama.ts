import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Rng } from '@hyperllama/runtime';
import {
  createLlama,
  findDenseBase,
  generate,
  lmLoss,
  loadLlama,
  type LlamaConfig,
  type LlamaModel,
} from '@hyperllama/llama-model';
import { median, timeRuns, type BenchRecord, type SuiteOptions } from '../types.js';
import { describeBackend } from './runtime.js';

/** The "small" config: vocab 32000, dim 512, 8 layers, 8 heads (8 KV heads), ffn 1376; untied head. */
const SMALL: LlamaConfig = {
  vocabSize: 32000,
  hiddenSize: 512,
  intermediateSize: 1376,
  numHiddenLayers: 8,
  numAttentionHeads: 8,
  numKeyValueHeads: 8,
  headDim: 64,
  maxPositionEmbeddings: 2048,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
};
const BATCH = 4;
const SEQ = 256;
const DECODE_TOKENS = 64;

const progress = (msg: string) => process.stderr.write(`[bench llama] ${msg}\n`);

/** ../shared/models/stories260K/stories260K.bin, looked up from this file's folder upwards. */
function storiesPath(): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const p = join(dir, 'shared', 'models', 'stories260K', 'stories260K.bin');
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Llama throughput on the current backend: forward tokens/s (batch 4 × 256, all logits), training-step tokens/s
 * (loss + gradients for every q_proj and v_proj weight + AdamW; all other weights frozen), decode tokens/s (batch 1,
 * 64 new tokens after an 8-token prompt, KV cache), and the process's peak RSS. Models: stories260K (when
 * ../shared is present) and the "small" config (random weights). `config` picks one: `stories260K` or `small`.
 */
export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const backend = describeBackend();
  const records: BenchRecord[] = [];
  const models: Array<[string, () => LlamaModel]> = [];
  const stories = storiesPath();
  if (stories && (!opts.config || opts.config === 'stories260K'))
    models.push(['stories260K', () => loadLlama(stories, { trainable: false })]);
  else if (!stories) progress('../shared/models/stories260K/stories260K.bin not found: skipping stories260K');
  if (!opts.config || opts.config === 'small')
    models.push(['small', () => createLlama(SMALL, { seed: 0, trainable: false })]);

  for (const [name, make] of models) {
    const started = performance.now();
    const model = make();
    progress(`${name}: model ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    // The pure-JS cpu backend needs minutes per step on "small": one measured run there.
    const slow = backend === 'cpu' && name === 'small';
    const runs = opts.quick || slow ? 1 : 3;
    const warmup = slow ? 0 : 1;
    const rng = new Rng(1);
    const ids = tf.tensor2d(
      Array.from({ length: BATCH * SEQ }, () => rng.int(model.config.vocabSize)),
      [BATCH, SEQ],
      'int32',
    );
    const add = (metric: string, ms: number[], tokens: number) => {
      const perSecond = ms.map((t) => (tokens * 1000) / t);
      records.push({
        suite: 'llama',
        name: `${name} ${metric}`,
        backend,
        metric: 'throughput',
        value: median(perSecond),
        unit: 'tokens/s',
        runs: perSecond,
      });
    };

    progress(`${name}: forward`);
    add(
      `forward ${BATCH}x${SEQ}`,
      await timeRuns(() => tf.tidy(() => void model.forward({ inputIds: ids }).logits!.dataSync()), runs, warmup),
      BATCH * SEQ,
    );

    const trainable = model
      .linearNames()
      .filter((n) => /self_attn\.(q|v)_proj$/.test(n))
      .map((n) => findDenseBase(model.getLinear(n))!.weight);
    for (const w of trainable) w.trainable = true; // everything else stays frozen
    const optimizer = new AdamW(trainable, { lr: 1e-4 });
    const trainStep = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(
          () => lmLoss(model, model.forward({ inputIds: ids, returnHidden: true, training: true }).hidden!, ids),
          trainable,
        );
        optimizer.step(grads);
        value.dataSync();
      });
    progress(`${name}: train step`);
    add(`train step ${BATCH}x${SEQ} (q,v grads + AdamW)`, await timeRuns(trainStep, runs, warmup), BATCH * SEQ);
    optimizer.dispose();

    const prompt = Array.from({ length: 8 }, () => rng.int(model.config.vocabSize));
    progress(`${name}: decode`);
    add(
      `decode b1 ${DECODE_TOKENS} tokens`,
      await timeRuns(() => generate(model, [prompt], { maxNewTokens: DECODE_TOKENS, stopIds: [] }), runs, warmup),
      DECODE_TOKENS,
    );

    const peakMb = process.resourceUsage().maxRSS / 1024;
    records.push({
      suite: 'llama',
      name: `${name} peak RSS (process, after ${name})`,
      backend,
      metric: 'memory',
      value: peakMb,
      unit: 'MB',
    });
    ids.dispose();
    model.dispose();
  }
  return records;
}
