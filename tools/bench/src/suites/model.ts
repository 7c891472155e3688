import { defaultBaseDir } from '@hyperllama/default-model';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Rng, loadNativeBlas, supportsSyncRead } from '@hyperllama/runtime';
import { createLlama, generate, lmLoss, loadLlama, type LlamaConfig, type LlamaModel } from '@hyperllama/llama-model';
import { injectLora, namedLoraParameters } from '@hyperllama/lora';
import { median, timeRuns, type BenchRecord, type SuiteOptions } from '../types.js';
import { describeBackend } from './runtime.js';

/**
 * The Llama benchmark of issue 9, mirrored by tools/reference/bench_reference.py (PyTorch):
 * - train: one step of LoRA (r 8, alpha 16, on q_proj and v_proj; base frozen), AdamW, float32, next-token loss over
 *   every position, batch × seq tokens;
 * - forward: logits for every position of batch × seq tokens;
 * - decode: batch 1, a 16-token prompt, then 64 new tokens one at a time with the KV cache (greedy);
 * - peak RSS of the process (it ran all three).
 */

interface BenchConfig {
  model: LlamaConfig;
  seq: number;
  batch: number;
}

const LLAMA_DEFAULTS = {
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
  maxPositionEmbeddings: 2048,
};

export const BENCH_CONFIGS: Record<'tiny' | 'small', BenchConfig> = {
  tiny: {
    model: {
      ...LLAMA_DEFAULTS,
      vocabSize: 32000,
      hiddenSize: 256,
      intermediateSize: 688,
      numHiddenLayers: 4,
      numAttentionHeads: 8,
      numKeyValueHeads: 8,
      headDim: 32,
    },
    seq: 256,
    batch: 4,
  },
  small: {
    model: {
      ...LLAMA_DEFAULTS,
      vocabSize: 32000,
      hiddenSize: 512,
      intermediateSize: 1376,
      numHiddenLayers: 8,
      numAttentionHeads: 8,
      numKeyValueHeads: 8,
      headDim: 64,
    },
    seq: 256,
    batch: 4,
  },
};

export const PROMPT_TOKENS = 16;
export const NEW_TOKENS = 64;
const LORA = { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] };

/** The embedded default model: `HYPERLLAMA_BENCH_MODEL` (an HF directory or llama2.c .bin), else `@hyperllama/default-model`'s base. */
export function findDefaultModel(): string | null {
  const fromEnv = process.env.HYPERLLAMA_BENCH_MODEL;
  if (fromEnv) return existsSync(fromEnv) ? resolve(fromEnv) : null;
  try {
    return defaultBaseDir();
  } catch {
    return null;
  }
}

function buildModel(name: string): { model: LlamaModel; seq: number; batch: number } | null {
  if (name === 'tiny' || name === 'small') {
    const c = BENCH_CONFIGS[name];
    return { model: createLlama(c.model, { seed: 0 }), seq: c.seq, batch: c.batch };
  }
  if (name === 'default') {
    const path = findDefaultModel();
    if (!path) {
      process.stderr.write(
        '[bench] model/default: no embedded default model found (set HYPERLLAMA_BENCH_MODEL=<dir|.bin>); skipped\n',
      );
      return null;
    }
    const model = loadLlama(path);
    return { model, seq: Math.min(256, model.config.maxPositionEmbeddings), batch: 4 };
  }
  throw new Error(`unknown model config "${name}" (tiny, small, default)`);
}

/**
 * The loss as autograd computes it without the fused LM head + cross-entropy (the "before" of that lever): chunked
 * logits, logsumexp and a one-hot pick, all kept for the backward pass.
 */
function autogradLmLoss(model: LlamaModel, hidden: tf.Tensor3D, ids: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, D] = hidden.shape;
    const V = model.config.vocabSize;
    const N = B * (T - 1);
    const h = tf.reshape(tf.slice(hidden, [0, 0, 0], [B, T - 1, D]), [N, D]) as tf.Tensor2D; // [N, D]
    const y = tf.reshape(tf.slice(ids, [0, 1], [B, T - 1]), [N]) as tf.Tensor1D; // [N]
    const chunk = Math.floor(4_194_304 / V);
    let total: tf.Scalar = tf.scalar(0);
    for (let start = 0; start < N; start += chunk) {
      const n = Math.min(chunk, N - start);
      const logits = model.logitsFromHidden(tf.slice(h, [start, 0], [n, D])); // [n, V]
      const picked = tf.sum(tf.mul(logits, tf.oneHot(tf.slice(y, [start], [n]), V)), 1); // [n]
      total = tf.add(total, tf.sum(tf.sub(tf.logSumExp(logits, 1), picked)));
    }
    return tf.div(total, N) as tf.Scalar;
  });
}

export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const name = opts.config ?? 'tiny';
  const built = buildModel(name);
  if (!built) return [];
  const { model } = built;
  const batch = opts.shape?.batch ?? built.batch;
  const seq = opts.shape?.seq ?? built.seq;
  const newTokens = opts.shape?.newTokens ?? NEW_TOKENS;
  const label = opts.shape ? `${name} ${batch}x${seq} ${newTokens}new` : name;
  // Levers switched off by environment variables show in the backend label (see the README's lever table).
  const autogradLoss = process.env.HYPERLLAMA_BENCH_LOSS === 'autograd';
  const variant = [
    autogradLoss && 'autograd-loss',
    process.env.HYPERLLAMA_FUSED_OPS === '0' && 'no-fused-ops',
    tf.getBackend() === 'webgpu' && process.env.HYPERLLAMA_WEBGPU_MATMUL?.trim() === 'tiled' && 'tiled-matmul',
  ].filter(Boolean);
  const backend = [describeBackend(), ...variant].join(' ');
  const records: BenchRecord[] = [];
  const add = (metric: string, unit: string, values: number[]) =>
    records.push({ suite: 'model', name: label, backend, metric, value: median(values), unit, runs: values });
  const small = model.config.hiddenSize >= 512;
  const runs = opts.quick ? 2 : small ? 3 : 5;

  injectLora(model, { name: 'bench', ...LORA, seed: 0 });
  const params = [...namedLoraParameters(model, 'bench').values()];
  const optimizer = new AdamW(params, { lr: 1e-4 });
  const rng = new Rng(1234);
  const V = model.config.vocabSize;
  const ids = Array.from({ length: batch * seq }, () => rng.int(V));
  // A fresh tensor per call: the model reads the ids on the host, which a GPU backend can only do before uploading them.
  const batchIds = () => tf.tensor2d(ids, [batch, seq], 'int32'); // [B, T]
  const tokens = batch * seq;

  const trainStep = async () => {
    const inputIds = batchIds();
    const { value, grads } = tf.variableGrads(() => {
      const hidden = model.forward({ inputIds, returnHidden: true, training: true }).hidden!; // [B, T, D]
      return autogradLoss ? autogradLmLoss(model, hidden, inputIds) : lmLoss(model, hidden, inputIds);
    }, params);
    optimizer.step(grads);
    const loss = (await value.data())[0];
    tf.dispose([inputIds, value, ...Object.values(grads)]);
    if (!Number.isFinite(loss)) throw new Error(`model/${name}: training loss is ${loss}`);
  };
  const trainMs = await timeRuns(trainStep, runs);
  add(
    'trainTokensPerSec',
    'tokens/s',
    trainMs.map((ms) => (tokens * 1000) / ms),
  );

  const forward = async () => {
    const inputIds = batchIds();
    const logits = model.forward({ inputIds }).logits!; // [B, T, V]
    // Wait for the result (GPU backends run asynchronously) without copying all logits to JS, as PyTorch keeps them.
    const one = tf.slice(logits, [0, 0, 0], [1, 1, 1]);
    await one.data();
    tf.dispose([inputIds, one, logits]);
  };
  const forwardMs = await timeRuns(forward, runs);
  add(
    'forwardTokensPerSec',
    'tokens/s',
    forwardMs.map((ms) => (tokens * 1000) / ms),
  );

  // generate's first forward (the prompt) yields the first new token; the 64 decode steps follow it.
  const prompt = Array.from({ length: PROMPT_TOKENS }, () => rng.int(V));
  const decodeRates: number[] = [];
  for (let i = 0; i <= (opts.quick ? 1 : 3); i++) {
    const r = await generate(model, [prompt], { maxNewTokens: newTokens + 1, stopIds: [] });
    if (i > 0) decodeRates.push((r.stats.newTokens - 1) / r.stats.decodeSeconds);
  }
  add('decodeTokensPerSec', 'tokens/s', decodeRates);

  // Effective arithmetic rate against this machine's own sgemm. Per token, a LoRA step on a frozen base costs about
  // 4 FLOPs per matMul weight (forward, and the input gradients backward; LoRA's and attention's shares are small), a
  // forward pass 2. The machine's sgemm is OpenBLAS's on a 1024³ product through the native addon, wherever one loads
  // (also for the pure-wasm row: the machine is the same), else tf.matMul's on this backend.
  const c = model.config;
  const attnWidth = c.numAttentionHeads * c.headDim;
  const kvWidth = c.numKeyValueHeads * c.headDim;
  const weights =
    c.numHiddenLayers *
      (2 * c.hiddenSize * attnWidth + 2 * c.hiddenSize * kvWidth + 3 * c.hiddenSize * c.intermediateSize) +
    c.hiddenSize * c.vocabSize;
  const sgemm = await machineSgemmGflops(runs, opts.quick);
  add('sgemmGFLOPS', sgemm.how, sgemm.runs);
  const trainGflops = trainMs.map((ms) => (4 * weights * tokens) / ms / 1e6);
  const forwardGflops = forwardMs.map((ms) => (2 * weights * tokens) / ms / 1e6);
  add('trainGFLOPS', 'GFLOPS', trainGflops);
  add('forwardGFLOPS', 'GFLOPS', forwardGflops);
  add('trainOfSgemm', 'fraction', [median(trainGflops) / median(sgemm.runs)]);
  add('forwardOfSgemm', 'fraction', [median(forwardGflops) / median(sgemm.runs)]);

  add('peakRssMB', 'MB', [process.resourceUsage().maxRSS / 1024]);
  optimizer.dispose();
  model.dispose();
  return records;
}

/**
 * GFLOPS of a 1024³ float32 product: OpenBLAS's through the native addon where one loads, else tf.matMul's; on webgpu
 * tf.matMul's always (the device is what runs the model), read asynchronously, 256³ when quick.
 */
async function machineSgemmGflops(runs: number, quick: boolean): Promise<{ how: string; runs: number[] }> {
  const gpu = !supportsSyncRead();
  const n = gpu && quick ? 256 : 1024;
  const flops = 2 * n ** 3;
  const blas = gpu ? null : loadNativeBlas().blas;
  const rng = new Rng(7);
  const a = new Float32Array(rng.normalArray(n * n, 0, 1));
  const b = new Float32Array(rng.normalArray(n * n, 0, 1));
  const out: number[] = [];
  if (blas) {
    const c = new Float32Array(n * n);
    blas.sgemmBatched(a, b, c, 1, n, n, n, false, false, 0, 0); // warm-up
    for (let i = 0; i < Math.max(runs, 5); i++) {
      const t = performance.now();
      blas.sgemmBatched(a, b, c, 1, n, n, n, false, false, 0, 0);
      out.push(flops / (performance.now() - t) / 1e6);
    }
    return { how: 'GFLOPS (OpenBLAS)', runs: out };
  }
  const [ta, tb] = [tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])];
  const product = async () => {
    const c = tf.matMul(ta, tb);
    await c.data();
    c.dispose();
  };
  await product();
  for (let i = 0; i < Math.max(runs, 5); i++) {
    const t = performance.now();
    await product();
    out.push(flops / (performance.now() - t) / 1e6);
  }
  tf.dispose([ta, tb]);
  return { how: `GFLOPS (tf.matMul${n === 1024 ? '' : ` ${n}³`})`, runs: out };
}
