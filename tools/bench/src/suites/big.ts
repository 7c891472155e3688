import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Rng } from '@hyperllama/runtime';
import {
  generate,
  lmLoss,
  loadLlama,
  memoryBudget,
  planLlamaMemory,
  trainingActivationEstimate,
  validateLlamaConfig,
  writeRandomLlamaDir,
  type LlamaConfig,
  type LlamaModel,
  type WeightFormat,
} from '@hyperllama/llama-model';
import { injectLora, namedLoraParameters } from '@hyperllama/lora';
import { median, timeRuns, type BenchRecord, type SuiteOptions } from '../types.js';
import { describeBackend } from './runtime.js';

/**
 * Big Llamas with their linear weights in native memory, per weight format (`--config 1b` = fp32, bf16 and nf4 in
 * one process; `1b-fp32`, `1b-bf16`, `1b-nf4` one each, so that the peak RSS is that format's; `8b-nf4` an 8B-shaped
 * model when it fits): load time (from a sharded bf16 HF directory, written once with random weights), RSS after
 * loading, decode tokens/s (batch 1, 8-token prompt, 16 new tokens, KV cache), training tokens/s (one step of LoRA
 * r 8 on q_proj and v_proj, AdamW, batch 1 × 128 tokens) and the process's peak RSS. The model directories live under
 * runs/ (HYPERLLAMA_BENCH_DIR overrides), about 2.2 GB for 1b and 16 GB for 8b.
 */
const base = {
  maxPositionEmbeddings: 2048,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
};
/** TinyLlama-1.1B's shapes (also the acceptance run's, tools/reference/big_llama.ts). */
export const TINYLLAMA: LlamaConfig = validateLlamaConfig({
  ...base,
  vocabSize: 32000,
  hiddenSize: 2048,
  intermediateSize: 5632,
  numHiddenLayers: 22,
  numAttentionHeads: 32,
  numKeyValueHeads: 4,
  headDim: 64,
});
/** Llama-3.1-8B's shapes. */
export const LLAMA_8B: LlamaConfig = validateLlamaConfig({
  ...base,
  vocabSize: 128256,
  hiddenSize: 4096,
  intermediateSize: 14336,
  numHiddenLayers: 32,
  numAttentionHeads: 32,
  numKeyValueHeads: 8,
  headDim: 128,
  ropeTheta: 500000,
});
const SEQ = 128;
const DECODE_TOKENS = 16;

const progress = (msg: string) => process.stderr.write(`[bench big] ${msg}\n`);

/** runs/ of the repository (found upwards from this file), or HYPERLLAMA_BENCH_DIR. */
function runsDir(): string {
  if (process.env.HYPERLLAMA_BENCH_DIR) return resolve(process.env.HYPERLLAMA_BENCH_DIR);
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir))
    if (existsSync(join(dir, 'package-lock.json'))) return join(dir, 'runs');
  return resolve('runs');
}

function modelDir(name: '1b' | '8b', config: LlamaConfig): string {
  const dir = join(runsDir(), name === '1b' ? 'big-llama-1b' : 'big-llama-8b');
  if (!existsSync(join(dir, 'config.json'))) {
    progress(`writing ${dir} (random weights, sharded bf16) …`);
    writeRandomLlamaDir(dir, config, { seed: 0, dtype: 'BF16', shardBytes: 1e9 });
  }
  return dir;
}

export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const backend = describeBackend();
  const records: BenchRecord[] = [];
  const config = opts.config ?? '1b';
  const m = /^(1b|8b)(?:-(fp32|bf16|fp16|nf4))?$/.exec(config);
  if (!m)
    throw new Error(
      `suite big: --config must be 1b, 1b-<format> or 8b-<format> (format fp32, bf16, fp16, nf4), got ${config}`,
    );
  const size = m[1] as '1b' | '8b';
  const shape = size === '1b' ? TINYLLAMA : LLAMA_8B;
  const formats = (m[2] ? [m[2]] : ['fp32', 'bf16', 'nf4']) as WeightFormat[];
  const record = (name: string, metric: string, value: number, unit: string, runs?: number[]) =>
    records.push({ suite: 'big', name: `${size} ${name}`, backend, metric, value, unit, ...(runs ? { runs } : {}) });
  const dir = modelDir(size, shape);
  const runs = opts.quick ? 1 : 3;
  for (const format of formats) {
    // The need as planned, and whether it fits what the host has now.
    const plan = planLlamaMemory(shape, format);
    const available = memoryBudget().hostBytes;
    record(`${format} memory need (planned)`, 'memory', plan.totalBytes / 2 ** 20, 'MB');
    if (plan.totalBytes > available) {
      progress(
        `${size} ${format}: needs ${(plan.totalBytes / 2 ** 30).toFixed(2)} GiB, ${(available / 2 ** 30).toFixed(2)} GiB available: not run`,
      );
      continue;
    }
    let t = performance.now();
    const model: LlamaModel = loadLlama(dir, { weights: format, trainable: false });
    const loadSeconds = (performance.now() - t) / 1000;
    record(`${format} load (sharded bf16 → ${format})`, 'time', loadSeconds, 's');
    record(`${format} RSS after load`, 'memory', process.memoryUsage().rss / 2 ** 20, 'MB');
    progress(`${size} ${format}: loaded in ${loadSeconds.toFixed(1)} s`);

    const rng = new Rng(1);
    const prompt = Array.from({ length: 8 }, () => rng.int(shape.vocabSize));
    const decode = await timeRuns(
      () => generate(model, [prompt], { maxNewTokens: DECODE_TOKENS, stopIds: [] }),
      runs,
      1,
    );
    const perSecond = decode.map((ms) => (DECODE_TOKENS * 1000) / ms);
    record(`${format} decode b1 ${DECODE_TOKENS} tokens`, 'throughput', median(perSecond), 'tokens/s', perSecond);
    progress(`${size} ${format}: decode ${median(perSecond).toFixed(2)} tokens/s`);

    // Autograd keeps every layer's activations: skip (and say so) where they cannot fit what the backend has left.
    const training = trainingActivationEstimate(shape, SEQ);
    const left = memoryBudget().heapBytes;
    if (training > left) {
      record(`${format} train step 1x${SEQ}: activations needed (not run)`, 'memory', training / 2 ** 20, 'MB');
      progress(
        `${size} ${format}: a ${SEQ}-token training step needs ~${(training / 2 ** 30).toFixed(2)} GiB of activations, ${(left / 2 ** 30).toFixed(2)} GiB left on the backend: not run`,
      );
      model.dispose();
      continue;
    }
    injectLora(model, { name: 'bench', r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'], rng: new Rng(2) });
    const params = Object.fromEntries(namedLoraParameters(model, 'bench'));
    const optimizer = new AdamW(params, { lr: 1e-4 });
    const ids = tf.tensor2d(
      Array.from({ length: SEQ }, () => rng.int(shape.vocabSize)),
      [1, SEQ],
      'int32',
    );
    const vars = Object.values(params);
    const names = new Map(Object.entries(params).map(([n, v]) => [v.name, n]));
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(
          () => lmLoss(model, model.forward({ inputIds: ids, returnHidden: true, training: true }).hidden!, ids),
          vars,
        );
        optimizer.step(Object.fromEntries(Object.entries(grads).map(([k, g]) => [names.get(k)!, g])));
        value.dataSync();
      });
    t = performance.now();
    const train = await timeRuns(step, opts.quick ? 1 : 2, 1);
    const trainTps = train.map((ms) => (SEQ * 1000) / ms);
    record(`${format} train step 1x${SEQ} (LoRA q,v + AdamW)`, 'throughput', median(trainTps), 'tokens/s', trainTps);
    progress(`${size} ${format}: train ${median(trainTps).toFixed(1)} tokens/s`);
    optimizer.dispose();
    ids.dispose();
    model.dispose();
  }
  record(`peak RSS (process, ${formats.join(', ')})`, 'memory', process.resourceUsage().maxRSS / 1024, 'MB');
  return records;
}
