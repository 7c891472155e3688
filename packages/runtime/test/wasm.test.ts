import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng, disposeBackend, initBackend, type BackendInfo } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
let info: BackendInfo;

beforeAll(async () => {
  // The pure-wasm path (XNNPACK with explicit transposes); test/native.test.ts covers the optional OpenBLAS one.
  info = await initBackend({ backend: 'auto', threads: 2, matMul: 'xnnpack' });
});
afterAll(async () => {
  await disposeBackend();
});

describe('auto backend selection', () => {
  it('falls back from tensorflow to multithreaded wasm and says why', () => {
    if (info.name === 'tensorflow') return; // native TensorFlow installed: nothing to fall back from
    expect(info.name).toBe('wasm');
    expect(info.reason).toMatch(/tensorflow unavailable \(@tensorflow\/tfjs-node-gpu: /);
    expect(info.threads).toBe(2);
  });
});

/** A small graph with the ops of a Llama training step: embedding gather, RMSNorm, RoPE-style slicing, attention, SwiGLU, cross-entropy. */
function llamaLikeLoss(p: Record<string, tf.Tensor>, ids: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const [B, T] = ids.shape;
  const D = 16;
  const H = 2;
  const hd = D / H;
  const x = tf.reshape(tf.gather(p.emb, tf.reshape(ids, [-1])), [B * T, D]); // [B·T, D]
  const rms = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5));
  const h = tf.mul(tf.mul(x, rms), p.norm);
  const q = tf.reshape(tf.matMul(h, p.wq), [B, T, H, hd]).transpose([0, 2, 1, 3]); // [B, H, T, hd]
  const k = tf.reshape(tf.matMul(h, p.wk), [B, T, H, hd]).transpose([0, 2, 1, 3]);
  const v = tf.reshape(tf.matMul(h, p.wv), [B, T, H, hd]).transpose([0, 2, 1, 3]);
  const rot = (t: tf.Tensor) =>
    tf.concat(
      [tf.neg(tf.slice(t, [0, 0, 0, hd / 2], [-1, -1, -1, hd / 2])), tf.slice(t, [0, 0, 0, 0], [-1, -1, -1, hd / 2])],
      -1,
    );
  const qr = tf.add(tf.mul(q, 0.8), tf.mul(rot(q), 0.6));
  const causal = tf.tensor2d(
    Array.from({ length: T * T }, (_, i) => (Math.floor(i / T) >= i % T ? 0 : -1e9)),
    [T, T],
  );
  const scores = tf.add(tf.div(tf.matMul(qr, k, false, true), Math.sqrt(hd)), causal); // [B, H, T, T]
  const attn = tf
    .matMul(tf.softmax(scores), v)
    .transpose([0, 2, 1, 3])
    .reshape([B * T, D]);
  const o = tf.add(x, tf.matMul(attn, p.wo));
  const gate = tf.matMul(o, p.wg);
  const mlp = tf.matMul(tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.matMul(o, p.wu)), p.wd);
  const logits = tf.matMul(tf.add(o, mlp), p.emb, false, true); // tied head, [B·T, V]
  return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, p.emb.shape[0]), logits) as tf.Scalar;
}

function gradsOn(
  backend: string,
  values: Record<string, { data: Float32Array; shape: number[] }>,
): Record<string, Float32Array> {
  void tf.setBackend(backend);
  return tf.tidy(() => {
    const names = Object.keys(values);
    const params = names.map((n) => tf.tensor(values[n].data, values[n].shape));
    const ids = tf.tensor2d(
      [
        [1, 5, 9, 2, 2, 7],
        [3, 3, 0, 11, 4, 6],
      ],
      [2, 6],
      'int32',
    );
    const labels = tf.tensor1d([5, 9, 2, 2, 7, 1, 3, 0, 11, 4, 6, 8], 'int32');
    const g = tf.grads((...ps: tf.Tensor[]) =>
      llamaLikeLoss(Object.fromEntries(names.map((n, i) => [n, ps[i]])), ids, labels),
    )(params);
    return Object.fromEntries(names.map((n, i) => [n, g[i].dataSync() as Float32Array]));
  });
}

describe('wasm kernels', () => {
  it("gives the cpu backend's gradients to 1e-5 on the ops of a Llama training step", () => {
    if (info.name !== 'wasm') return;
    const rng = new Rng(9);
    const D = 16;
    const shapes: Record<string, number[]> = {
      emb: [12, D],
      norm: [D],
      wq: [D, D],
      wk: [D, D],
      wv: [D, D],
      wo: [D, D],
      wg: [D, 24],
      wu: [D, 24],
      wd: [24, D],
    };
    const values = Object.fromEntries(
      Object.entries(shapes).map(([n, s]) => [
        n,
        {
          data: rng.normalArray(
            s.reduce((a, b) => a * b, 1),
            0,
            0.3,
          ),
          shape: s,
        },
      ]),
    );
    const cpu = gradsOn('cpu', values);
    const wasm = gradsOn('wasm', values);
    for (const n of Object.keys(shapes)) {
      let maxDiff = 0;
      for (let i = 0; i < cpu[n].length; i++) maxDiff = Math.max(maxDiff, Math.abs(cpu[n][i] - wasm[n][i]));
      expect(maxDiff, n).toBeLessThan(1e-5);
      expect(
        cpu[n].some((x) => x !== 0),
        `${n} has a non-zero gradient`,
      ).toBe(true);
    }
    expect(tf.getBackend()).toBe('wasm');
  });

  it('computes transposed and batched matMuls (the overridden kernel) as cpu does', () => {
    if (info.name !== 'wasm') return;
    const rng = new Rng(4);
    const cases: Array<[number[], number[], boolean, boolean]> = [
      [[5, 7], [7, 3], false, false],
      [[7, 5], [7, 3], true, false],
      [[5, 7], [3, 7], false, true],
      [[7, 5], [3, 7], true, true],
      [[4, 5, 7], [4, 7, 3], false, false],
      [[2, 3, 5, 7], [2, 3, 3, 7], false, true],
      [[4, 5, 7], [7, 3], false, false],
      [[4, 5, 7], [1, 7, 3], false, false],
      [[1, 5, 7], [4, 7, 3], false, false],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      const a = rng.normalArray(sa.reduce((x, y) => x * y, 1));
      const b = rng.normalArray(sb.reduce((x, y) => x * y, 1));
      const run = (backend: string) => {
        void tf.setBackend(backend);
        return tf.tidy(() => tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb).dataSync() as Float32Array);
      };
      const ref = run('cpu');
      const got = run('wasm');
      expect(got.length).toBe(ref.length);
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i])).toBeLessThan(1e-5);
    }
  });

  it('gives float32 one-hot vectors the values 0 and 1 (stock tfjs-wasm writes integer bit patterns)', () => {
    if (info.name !== 'wasm') return;
    const v = tf.tidy(() => tf.oneHot(tf.tensor1d([2, 0], 'int32'), 3, 1, 0, 'float32').dataSync());
    expect(Array.from(v)).toEqual([0, 0, 1, 1, 0, 0]);
    const ints = tf.tidy(() => tf.oneHot(tf.tensor1d([1], 'int32'), 2).dataSync());
    expect(Array.from(ints)).toEqual([0, 1]);
  });

  it('does not leak tensors through the overridden kernels', () => {
    if (info.name !== 'wasm') return;
    const run = () => tf.tidy(() => tf.matMul(tf.ones([3, 4, 5]), tf.ones([3, 6, 5]), false, true).dataSync());
    run();
    const before = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let i = 0; i < 3; i++) run();
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytes);
  });
});

describe('process exit', () => {
  it('lets a program that used 2 wasm threads exit once the backend is disposed', () => {
    const script = `
      import * as tf from '@tensorflow/tfjs';
      import { initBackend, disposeBackend } from ${JSON.stringify(join(here, '../src/index.ts'))};
      const info = await initBackend({ backend: 'wasm', threads: 2, matMul: 'xnnpack' });
      const y = tf.matMul(tf.ones([64, 64]), tf.ones([64, 64]));
      process.stdout.write(info.threads + ' ' + y.dataSync()[0] + '\\n');
      await disposeBackend();
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: here,
    });
    expect(r.error).toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('2 64');
  });
});
