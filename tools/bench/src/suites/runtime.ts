import * as tf from '@tensorflow/tfjs';
import { currentBackend, setWebGPUMatMul, type WebGPUMatMul } from '@hyperllama/runtime';
import { median, timeRuns, type BenchRecord, type SuiteOptions } from '../types.js';

/**
 * matMul throughput: plain 2-D products, transposed and batched forms, and a forward+backward of x·W; on webgpu,
 * tfjs-webgpu's matMul against our tiled kernel instead (see {@link webgpuMatMuls}).
 */
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
  if (tf.getBackend() === 'webgpu') {
    await webgpuMatMuls(opts.quick, runs, add);
    return records;
  }
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

/**
 * webgpu (where reads are asynchronous): each product timed with tfjs-webgpu's kernel and with our tiled one
 * (`setWebGPUMatMul`), square at 1024³, 2048³ and 4096³ (quick: 128³ and 256³), then the transposed and batched forms
 * a model runs. One timed run launches as many products as one of the largest size costs, then waits for the GPU by
 * reading one element, so the read's round trip weighs little.
 */
async function webgpuMatMuls(
  quick: boolean,
  runs: number,
  add: (name: string, flops: number, ms: number[]) => void,
): Promise<void> {
  const sizes = quick ? [128, 256] : [1024, 2048, 4096];
  const largest = 2 * sizes[sizes.length - 1] ** 3;
  const compare = async (name: string, flops: number, product: () => tf.Tensor) => {
    const reps = Math.max(1, Math.round(largest / flops));
    const launch = async () => {
      let last = product();
      for (let i = 1; i < reps; i++) {
        last.dispose();
        last = product();
      }
      const one = tf.slice(
        last,
        last.shape.map(() => 0),
        last.shape.map(() => 1),
      );
      await one.data();
      tf.dispose([one, last]);
    };
    for (const kernel of ['tfjs', 'tiled'] as WebGPUMatMul[]) {
      setWebGPUMatMul(kernel);
      add(`${name} ${kernel}`, reps * flops, await timeRuns(launch, runs));
    }
  };
  const previous = setWebGPUMatMul('tfjs');
  try {
    for (const n of sizes) {
      const a = tf.randomNormal([n, n]);
      const b = tf.randomNormal([n, n]);
      await compare(`matMul ${n}³`, 2 * n ** 3, () => tf.matMul(a, b));
      if (n === sizes[1]) await compare(`matMul ${n}³ transposeB`, 2 * n ** 3, () => tf.matMul(a, b, false, true));
      tf.dispose([a, b]);
    }
    // Attention-shaped batched product: [B·H, T, hd] × [B·H, hd, T].
    const [bh, t, hd] = quick ? [8, 128, 32] : [32, 512, 64];
    const q = tf.randomNormal([bh, t, hd]);
    const k = tf.randomNormal([bh, t, hd]);
    await compare(`batched matMul ${bh}x${t}x${hd} · kᵀ`, 2 * bh * t * t * hd, () => tf.matMul(q, k, false, true));
    tf.dispose([q, k]);
  } finally {
    setWebGPUMatMul(previous);
  }
}

export function describeBackend(): string {
  const b = currentBackend();
  if (!b) return tf.getBackend();
  if (b.name !== 'wasm') return b.name;
  return b.matMul === 'openblas'
    ? `wasm×${b.threads}+openblas×${b.matMulThreads}`
    : `wasm×${b.threads}${b.matMul === 'xnnpack' ? '' : `+${b.matMul}`}`;
}
