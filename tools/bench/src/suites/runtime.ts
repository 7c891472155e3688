import * as tf from '@tensorflow/tfjs';
import { currentBackend } from '@hyperllama/runtime';
import { median, timeRuns, type BenchRecord, type SuiteOptions } from '../types.js';

/** matMul throughput: plain 2-D products, transposed and batched forms, and a forward+backward of x·W. */
export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const backend = describeBackend();
  const records: BenchRecord[] = [];
  const runs = opts.quick ? 3 : 7;
  const add = (name: string, flops: number, ms: number[]) => {
    const gflops = ms.map((t) => flops / t / 1e6);
    records.push({
      suite: 'runtime',
      name,
      backend,
      metric: 'throughput',
      value: median(gflops),
      unit: 'GFLOPS',
      runs: gflops,
    });
  };
  const sizes = opts.quick ? [256] : [256, 512, 1024];
  for (const n of sizes) {
    const a = tf.randomNormal([n, n]);
    const b = tf.randomNormal([n, n]);
    add(`matMul ${n}x${n}x${n}`, 2 * n ** 3, await timeRuns(() => tf.tidy(() => tf.matMul(a, b).dataSync()), runs));
    add(
      `matMul ${n} transposeB`,
      2 * n ** 3,
      await timeRuns(() => tf.tidy(() => tf.matMul(a, b, false, true).dataSync()), runs),
    );
    tf.dispose([a, b]);
  }
  // Attention-shaped batched product: [B·H, T, hd] × [B·H, hd, T].
  const q = tf.randomNormal([32, 256, 32]);
  const k = tf.randomNormal([32, 256, 32]);
  add(
    'batched matMul 32x256x32 · kᵀ',
    2 * 32 * 256 * 256 * 32,
    await timeRuns(() => tf.tidy(() => tf.matMul(q, k, false, true).dataSync()), runs),
  );
  tf.dispose([q, k]);
  // A linear layer's forward + backward: y = x·W, gradients for x and W (3 products).
  const rows = 1024;
  const d = opts.quick ? 256 : 512;
  const x = tf.randomNormal([rows, d]);
  const w = tf.variable(tf.randomNormal([d, d], 0, 0.05));
  const step = () =>
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => tf.sum(tf.matMul(x, w)), [w]);
      return grads[w.name].dataSync();
    });
  add(`linear fwd+bwd ${rows}x${d}x${d}`, 3 * 2 * rows * d * d, await timeRuns(step, runs));
  tf.dispose([x, w]);
  return records;
}

export function describeBackend(): string {
  const b = currentBackend();
  if (!b) return tf.getBackend();
  if (b.name !== 'wasm') return b.name;
  return b.matMul === 'openblas'
    ? `wasm×${b.threads}+openblas×${b.matMulThreads}`
    : `wasm×${b.threads}${b.matMul === 'xnnpack' ? '' : `+${b.matMul}`}`;
}
