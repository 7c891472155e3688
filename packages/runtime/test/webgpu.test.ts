import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findWebGPUAdapter } from '../../../tools/scripts/webgpu-adapter.mjs';
import {
  BackendError,
  Rng,
  clipByGlobalNorm,
  disposeBackend,
  initBackend,
  matMulWebGPU,
  maxKernelTensorBytes,
  readToHost,
  rmsNorm,
  setWebGPUMatMul,
  softmaxCrossEntropyWithGrad,
  swiglu,
} from '../src/index.js';

// The webgpu backend on whatever adapter this machine has (on a machine without a GPU: Mesa's llvmpipe through
// OpenGL ES) must compute what the pure-JS cpu backend computes, forward and backward, on the ops of a Llama step.
// Whether an adapter exists is asked of Dawn directly, before our code runs: only its absence skips; any error from
// initBackend itself fails.
const found = await findWebGPUAdapter();
if (!found.adapter) console.warn(`[webgpu.test] skipped: ${found.why}`);

describe.skipIf(!found.adapter)(`webgpu backend (${found.adapter ?? found.why})`, () => {
  beforeAll(async () => {
    expect((await initBackend({ backend: 'webgpu' })).name).toBe('webgpu');
  });
  afterAll(async () => {
    await disposeBackend();
  });

  const rng = new Rng(11);
  const host = (shape: number[]) => ({
    data: rng.normalArray(
      shape.reduce((a, b) => a * b, 1),
      0,
      0.5,
    ),
    shape,
  });

  /** A small attention + SwiGLU + cross-entropy graph; returns the loss and the gradients of every input. */
  function lossAndGrads(inputs: Record<string, { data: Float32Array; shape: number[] }>) {
    return tf.tidy(() => {
      const names = Object.keys(inputs);
      const ts = names.map((n) => tf.tensor(inputs[n].data, inputs[n].shape));
      const ids = tf.tensor1d([3, 1, 4, 1, 5, 9, 2, 6], 'int32');
      const labels = tf.tensor1d([1, 4, 1, 5, 9, 2, 6, 5], 'int32');
      const f = (emb: tf.Tensor, norm: tf.Tensor, wqk: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor) => {
        const x = tf.gather(emb, ids) as tf.Tensor2D; // [8, 16]
        const h = tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-6))), norm);
        const qk = tf.reshape(tf.matMul(h, wqk), [2, 4, 2, 16]).transpose([0, 2, 1, 3]); // [2, 2, 4, 16]
        const probs = tf.softmax(tf.matMul(qk, qk, false, true)); // [2, 2, 4, 4]
        const attn = tf.reshape(tf.transpose(tf.matMul(probs, qk), [0, 2, 1, 3]), [8, 32]);
        const g = tf.matMul(attn, w1); // [8, 24]
        const y = tf.add(h, tf.matMul(tf.mul(g, tf.sigmoid(g)), w2)); // [8, 16]
        const logits = tf.matMul(y, emb, false, true); // [8, V]
        return tf.mean(tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, tf.oneHot(labels, 12)), 1))) as tf.Scalar;
      };
      const { value, grads } = tf.valueAndGrads(f)(ts);
      return [value, ...grads];
    });
  }

  it('matches the cpu backend on a forward and backward pass', async () => {
    const inputs = {
      emb: host([12, 16]),
      norm: host([16]),
      wqk: host([16, 32]),
      w1: host([32, 24]),
      w2: host([24, 16]),
    };
    void tf.setBackend('cpu');
    const expected = await Promise.all(lossAndGrads(inputs).map(async (t) => ({ data: await t.data(), t })));
    void tf.setBackend('webgpu');
    const got = lossAndGrads(inputs);
    for (let i = 0; i < got.length; i++) {
      const g = await got[i].data();
      const e = expected[i].data;
      expect(g.length).toBe(e.length);
      let maxDiff = 0;
      for (let j = 0; j < g.length; j++) maxDiff = Math.max(maxDiff, Math.abs(g[j] - e[j]));
      expect(maxDiff, `output ${i}`).toBeLessThan(1e-4);
      expect(Array.from(e).some((x) => x !== 0)).toBe(true);
    }
    tf.dispose([...got, ...expected.map((x) => x.t)]);
  });

  it('a computation the GPU rejects makes the next read throw WEBGPU_ERROR instead of returning garbage', async () => {
    // A real GPU binds GiBs; a device that binds 128 MiB (WebGPU's default) is cheap to exceed on any adapter.
    await initBackend({ backend: 'webgpu', webgpuLimits: { maxStorageBufferBindingSize: 2 ** 27 } });
    const limit = (tf.backend() as unknown as { device: { limits: { maxStorageBufferBindingSize: number } } }).device
      .limits.maxStorageBufferBindingSize;
    expect(limit).toBe(2 ** 27);
    expect(maxKernelTensorBytes()).toBe(2 ** 27);
    const big = tf.fill([limit / 4 / 1024 + 16, 1024], 1); // just over the largest buffer a shader may bind
    const out = tf.softmax(big);
    const error = await out.data().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).code).toBe('WEBGPU_ERROR');
    expect((error as BackendError).message).toMatch(/maximum storage buffer binding size/);
    tf.dispose([big, out]);
    // The error is reported once; later work reads normally.
    expect(Array.from(await tf.add(tf.scalar(1), tf.scalar(2)).data())).toEqual([3]);
    // Back to the adapter's largest limits: a new device.
    await initBackend({ backend: 'webgpu' });
    expect(maxKernelTensorBytes()).toBeGreaterThanOrEqual(2 ** 27);
  });

  it('a synchronous read of a tensor on the GPU is a WEBGPU_SYNC_READ error until readToHost; host values read synchronously', async () => {
    await initBackend({ backend: 'webgpu' });
    // 4,096 elements: tfjs-webgpu runs ops on inputs under 1,000 host-held elements on the CPU.
    const host = tf.tensor(new Float32Array(4096).fill(1.5), [64, 64]); // not uploaded yet: values on the host
    expect(host.dataSync()[4095]).toBe(1.5);
    const onGpu = tf.mul(host, 2);
    expect(() => onGpu.dataSync()).toThrow(expect.objectContaining({ code: 'WEBGPU_SYNC_READ' }));
    // readToHost reads it asynchronously; synchronous reads of it work from then on.
    await readToHost([onGpu]);
    expect(onGpu.dataSync()[4095]).toBe(3);
    tf.dispose([host, onGpu]);
  });

  it('a lost device makes reads throw WEBGPU_DEVICE_LOST, and initBackend then makes a new one', async () => {
    await initBackend({ backend: 'webgpu' });
    const x = tf.add(tf.fill([64, 64], 1), 1); // on the GPU (see above)
    await x.data();
    (tf.backend() as unknown as { device: { destroy(): void } }).device.destroy();
    const y = tf.mul(x, 3);
    const error = await y.data().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).code).toBe('WEBGPU_DEVICE_LOST');
    expect((error as BackendError).message).toMatch(/destroyed/);
    tf.dispose([x, y]);
    expect((await initBackend({ backend: 'webgpu' })).name).toBe('webgpu');
    const z = tf.add(tf.fill([64, 64], 1), 2); // on the GPU: the new device computes
    expect((await z.data())[4095]).toBe(3);
    z.dispose();
  });

  it('rmsNorm and swiglu run as one WGSL kernel each and equal the cpu backend, forward and gradient', async () => {
    await initBackend({ backend: 'webgpu' });
    const shapes: [number, number][] = [
      [37, 100], // D over the 64 lanes, not a multiple of them
      [5, 24], // D under them
    ];
    for (const [N, D] of shapes) {
      const x = host([N, D]);
      const w = host([D]);
      const dy = host([N, D]);
      const u = host([N, D]);
      const run = async (backend: string) => {
        await tf.setBackend(backend);
        const [xt, wt, dyt, ut] = [x, w, dy, u].map((h) => tf.tensor(h.data, h.shape));
        const f = (a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-5), dyt));
        const g = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(swiglu(a as tf.Tensor2D, b as tf.Tensor2D), dyt));
        const outs = [
          rmsNorm(xt as tf.Tensor2D, wt as tf.Tensor1D, 1e-5),
          ...tf.grads(f)([xt, wt]),
          swiglu(xt as tf.Tensor2D, ut as tf.Tensor2D),
          ...tf.grads(g)([xt, ut]),
        ];
        const values = await Promise.all(outs.map((t) => t.data()));
        tf.dispose([xt, wt, dyt, ut, ...outs]);
        return values;
      };
      const cpu = await run('cpu');
      const gpu = await run('webgpu');
      const keys = Object.keys((tf.backend() as unknown as { pipelineCache: object }).pipelineCache);
      expect(keys.some((k) => k.startsWith('hyperllama_rmsnorm'))).toBe(true);
      expect(keys.some((k) => k.startsWith('hyperllama_swiglu'))).toBe(true);
      ['rmsNorm', 'd rmsNorm/dx', 'd rmsNorm/dw', 'swiglu', 'd swiglu/dgate', 'd swiglu/dup'].forEach((what, i) => {
        let worst = 0;
        for (let j = 0; j < cpu[i].length; j++) worst = Math.max(worst, Math.abs(gpu[i][j] - cpu[i][j]));
        expect(worst, `${what} [${N}, ${D}]`).toBeLessThan(1e-4);
      });
    }
  });

  it('softmax cross-entropy and its gradient run as WGSL kernels and equal the cpu backend', async () => {
    await initBackend({ backend: 'webgpu' });
    const [n, C] = [13, 1000];
    const logits = host([n, C]);
    const targets = Array.from({ length: n }, (_, i) => (i === 3 ? -100 : i === 7 ? C : (i * 97) % C));
    const weights = Array.from({ length: n }, (_, i) => 0.5 + i / n);
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const x = tf.tensor2d(logits.data, [n, C]);
      const { losses, dlogits } = softmaxCrossEntropyWithGrad(x, tf.tensor1d(targets, 'int32'), tf.tensor1d(weights));
      return [await losses.data(), await dlogits.data()];
    };
    const cpu = await run('cpu');
    const gpu = await run('webgpu');
    const keys = Object.keys((tf.backend() as unknown as { pipelineCache: object }).pipelineCache);
    expect(keys.some((k) => k.startsWith('hyperllama_ce_dlogits'))).toBe(true);
    expect(gpu[0][3]).toBe(0); // an ignored target
    expect(gpu[0][7]).toBe(0); // a target outside [0, C)
    ['losses', 'dlogits'].forEach((what, i) => {
      let worst = 0;
      for (let j = 0; j < cpu[i].length; j++) worst = Math.max(worst, Math.abs(gpu[i][j] - cpu[i][j]));
      expect(worst, what).toBeLessThan(1e-5);
    });
  });

  /** Counts the launches of our tiled matMul while `f` runs (a spy on the backend's program runner). */
  async function tiledLaunches<T>(f: () => Promise<T>): Promise<{ result: T; launches: number }> {
    const backend = tf.findBackend('webgpu') as unknown as {
      runWebGPUProgram(program: { shaderKey: string }, ...rest: unknown[]): unknown;
    };
    const original = backend.runWebGPUProgram;
    let launches = 0;
    backend.runWebGPUProgram = function (program, ...rest) {
      if (program.shaderKey.startsWith('hyperllama_matmul')) launches++;
      return original.call(this, program, ...rest);
    };
    try {
      return { result: await f(), launches };
    } finally {
      backend.runWebGPUProgram = original;
    }
  }
  /** max |got − expected| / max |expected|. */
  const relativeError = (got: ArrayLike<number>, expected: ArrayLike<number>) => {
    let diff = 0;
    let scale = 0;
    for (let j = 0; j < expected.length; j++) {
      diff = Math.max(diff, Math.abs(got[j] - expected[j]));
      scale = Math.max(scale, Math.abs(expected[j]));
    }
    return diff / scale;
  };

  it('matMulWebGPU equals tf.matMul on the cpu backend, forward and gradient: ragged, batched, broadcast, transposed', async () => {
    await initBackend({ backend: 'webgpu' });
    // [a, b] as op(a) · op(b) sees them: sizes that are and are not multiples of the 64 × 64 tile and its K step of 16.
    const cases = [
      { a: [1, 7], b: [7, 5] },
      { a: [33, 65], b: [65, 17] },
      { a: [128, 256], b: [256, 96] },
      { a: [3, 20, 30], b: [3, 30, 10] },
      { a: [1, 20, 30], b: [3, 30, 10] }, // a broadcast over b's batches
      { a: [3, 20, 30], b: [1, 30, 10] }, // b broadcast over a's batches
      { a: [20, 30], b: [3, 30, 10] }, // a 2-D, b batched
    ];
    const swap = (s: number[]) => [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]];
    for (const { a: as, b: bs } of cases) {
      for (const [tA, tB] of [
        [false, false],
        [false, true],
        [true, false],
        [true, true],
      ]) {
        const what = `[${as}]${tA ? 'ᵀ' : ''} · [${bs}]${tB ? 'ᵀ' : ''}`;
        const a = host(tA ? swap(as) : as);
        const b = host(tB ? swap(bs) : bs);
        const batches = [...as.slice(0, -2), ...bs.slice(0, -2)];
        const outShape = [...(batches.length ? [Math.max(...batches)] : []), as[as.length - 2], bs[bs.length - 1]];
        const dy = host(outShape);
        const run = async (backend: string, mm: typeof matMulWebGPU) => {
          await tf.setBackend(backend);
          const [at, bt, dyt] = [a, b, dy].map((h) => tf.tensor(h.data, h.shape));
          const f = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(mm(x, y, tA, tB), dyt));
          const outs = [mm(at, bt, tA, tB), ...tf.grads(f)([at, bt])];
          expect(outs[0].shape, what).toEqual(outShape);
          expect(outs[1].shape).toEqual(at.shape);
          expect(outs[2].shape).toEqual(bt.shape);
          const values = await Promise.all(outs.map((t) => t.data()));
          tf.dispose([at, bt, dyt, ...outs]);
          return values;
        };
        // tfjs's own matMul gradient refuses broadcast batches: the reference broadcasts them explicitly (its gradient
        // sums over them).
        const full = (t: tf.Tensor) =>
          batches.length ? tf.broadcastTo(t, [Math.max(...batches), ...t.shape.slice(-2)]) : t;
        const cpu = await run('cpu', (x, y) => tf.matMul(full(x), full(y), tA, tB));
        const { result: gpu, launches } = await tiledLaunches(() => run('webgpu', matMulWebGPU));
        expect(launches, what).toBe(4); // the product, again under tf.grads, and both gradients
        ['product', 'd a', 'd b'].forEach((name, i) =>
          expect(relativeError(gpu[i], cpu[i]), `${name} of ${what}`).toBeLessThan(1e-4),
        );
      }
    }
  });

  it('setWebGPUMatMul("tiled") runs every tf.matMul, gradients included, on the tiled kernel; "tfjs" restores tfjs-webgpu\'s', async () => {
    await initBackend({ backend: 'webgpu' });
    const inputs = {
      emb: host([12, 16]),
      norm: host([16]),
      wqk: host([16, 32]),
      w1: host([32, 24]),
      w2: host([24, 16]),
    };
    const values = async () => {
      const outs = lossAndGrads(inputs);
      const read = await Promise.all(outs.map((t) => t.data()));
      tf.dispose(outs);
      return read;
    };
    void tf.setBackend('cpu');
    const cpu = await values();
    void tf.setBackend('webgpu');
    expect(setWebGPUMatMul('tiled')).toBe('tfjs');
    try {
      const { result: tiled, launches } = await tiledLaunches(values);
      // 6 products forward, 2 gradients each backward (the gathered embedding's through the logits and the lookup)
      expect(launches).toBe(18);
      tiled.forEach((g, i) => expect(relativeError(g, cpu[i]), `output ${i}`).toBeLessThan(1e-4));
      // An int32 product is not ours: it runs on tfjs-webgpu's kernel.
      const ints = tf.matMul(tf.ones([4, 4], 'int32'), tf.ones([4, 4], 'int32'));
      expect(Array.from(await ints.data())).toEqual(Array.from({ length: 16 }, () => 4));
      ints.dispose();
    } finally {
      expect(setWebGPUMatMul('tfjs')).toBe('tiled');
    }
    expect((await tiledLaunches(values)).launches).toBe(0);
    expect(() => setWebGPUMatMul('fast' as never)).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
  });

  it('limits the adapter cannot give are a BAD_OPTION, not a missing backend', async () => {
    const error = await initBackend({ backend: 'webgpu', webgpuLimits: { maxStorageBufferBindingSize: 2 ** 60 } }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).code).toBe('BAD_OPTION');
    expect((await initBackend({ backend: 'webgpu' })).name).toBe('webgpu');
  });

  it('clipByGlobalNorm gives the exact norm for any number of gradients, one count after another', async () => {
    void tf.setBackend('webgpu');
    // tfjs-backend-webgpu's AddN reuses a shader compiled for the previous input count; the norm must not depend on it.
    for (const n of [5, 8, 17, 3]) {
      const grads = Object.fromEntries(Array.from({ length: n }, (_, i) => [`g${i}`, tf.tensor1d([3, 4])])); // each of norm 5
      const { grads: clipped, norm } = await clipByGlobalNorm(grads, 1);
      expect(norm).toBeCloseTo(5 * Math.sqrt(n), 4);
      tf.dispose([...Object.values(grads), ...Object.values(clipped)]);
    }
  });
});
