import * as tf from '@tensorflow/tfjs';
import { DenseLinear } from '@hyperllama/llama-model';
import { Rng } from '@hyperllama/runtime';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  LoraError,
  LoraLinear,
  Nf4Linear,
  getActiveAdapters,
  getDropoutRngStates,
  setDropoutRngStates,
  injectLora,
  loraParameters,
  mergeLora,
  namedLoraParameters,
  quantizeModel,
  setActiveAdapters,
  withActiveAdapters,
} from '../src/index.js';
import { dense, TestHost, matmulJs, maxAbsDiff } from './helpers/host.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

let host: TestHost | undefined;
afterEach(() => {
  host?.dispose();
  host = undefined;
});

const Q = 'layers.0.self_attn.q_proj';
const V = 'layers.0.self_attn.v_proj';

function input(n: number, d: number, seed = 7): tf.Tensor2D {
  return tf.tensor2d(new Rng(seed).normalArray(n * d), [n, d]);
}

function outputOf(h: TestHost, x: tf.Tensor2D, training = false): Float32Array {
  const y = h.forward(x, training);
  const v = y.dataSync() as Float32Array;
  y.dispose();
  return v;
}

/** Give every lora_B of adapter `name` random values (lora_B starts at zero, which would hide bugs). */
function randomizeB(h: TestHost, name: string, seed: number): void {
  const rng = new Rng(seed);
  for (const [key, v] of namedLoraParameters(h, name)) {
    if (key.endsWith('lora_B')) v.assign(tf.tensor2d(rng.normalArray(v.size, 0, 0.3), v.shape as [number, number]));
  }
}

describe('LoraLinear', () => {
  it('initialises lora_A as PyTorch kaiming_uniform_(a=sqrt(5)) on a [r, in] weight, lora_B as zeros', () => {
    const [inF, outF, r] = [256, 32, 64];
    const lin = new LoraLinear(dense(new Float32Array(inF * outF), inF, outF));
    const a = lin.addAdapter('x', { r, alpha: 16, dropout: 0 }, new Rng(1), new Rng(2));
    // torch.nn.init.kaiming_uniform_: gain = sqrt(2 / (1 + a²)), std = gain / sqrt(fan_in), bound = sqrt(3) · std,
    // fan_in = weight.size(1) = in for PEFT's [r, in] lora_A.
    const bound = Math.sqrt(3) * (Math.sqrt(2 / (1 + 5)) / Math.sqrt(inF));
    const values = Array.from(a.A.dataSync());
    expect(a.A.shape).toEqual([inF, r]);
    expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(0.99 * bound);
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
    expect(Math.abs(mean)).toBeLessThan(0.02 * bound);
    expect(variance).toBeCloseTo((bound * bound) / 3, 4); // uniform variance
    expect(a.B.shape).toEqual([r, outF]);
    expect(Math.max(...Array.from(a.B.dataSync(), Math.abs))).toBe(0);
    expect(a.scaling).toBe(16 / 64);
    lin.dispose();
  });

  it('computes base(x) + alpha/r · x @ A @ B (checked against plain JS arithmetic)', () => {
    const [n, inF, outF, r] = [3, 12, 10, 4];
    const rng = new Rng(4);
    const w = rng.normalArray(inF * outF);
    const lin = new LoraLinear(dense(w, inF, outF));
    const a = lin.addAdapter('x', { r, alpha: 6, dropout: 0.3 }, new Rng(1), new Rng(2));
    const bv = rng.normalArray(r * outF);
    a.B.assign(tf.tensor2d(bv, [r, outF]));
    lin.active.add('x');
    const xv = rng.normalArray(n * inF);
    const x = tf.tensor2d(xv, [n, inF]);
    const y = lin.apply(x); // not training: no dropout
    const base = matmulJs(xv, w, n, inF, outF);
    const delta = matmulJs(matmulJs(xv, a.A.dataSync(), n, inF, r), bv, n, r, outF);
    expect(
      maxAbsDiff(
        y.dataSync(),
        base.map((b, i) => b + (6 / 4) * delta[i]),
      ),
    ).toBeLessThan(1e-4);
    tf.dispose([x, y]);
    lin.dispose();
  });

  it('applies inverted dropout to the adapter input only while training, reproducibly from its Rng', () => {
    const d = 64;
    const p = 0.25;
    const eye = tf.eye(d) as tf.Tensor2D;
    const run = (seed: number, training: boolean): { base: Float32Array; out: Float32Array; x: Float32Array } => {
      const lin = new LoraLinear(dense(new Rng(3).normalArray(d * d), d, d));
      const a = lin.addAdapter('x', { r: d, alpha: d, dropout: p }, new Rng(1), new Rng(seed));
      a.A.assign(eye);
      a.B.assign(eye); // adapter = dropout(x)
      lin.active.add('x');
      const x = input(8, d);
      const y = lin.apply(x, { training });
      const b = lin.base.apply(x);
      const res = {
        base: b.dataSync() as Float32Array,
        out: y.dataSync() as Float32Array,
        x: x.dataSync() as Float32Array,
      };
      tf.dispose([x, y, b]);
      lin.dispose();
      return res;
    };
    const t = run(5, true);
    let zeros = 0;
    for (let i = 0; i < t.x.length; i++) {
      const adapterOut = t.out[i] - t.base[i];
      if (Math.abs(adapterOut) < 1e-6) zeros++;
      else expect(adapterOut).toBeCloseTo(t.x[i] / (1 - p), 4);
    }
    expect(zeros / t.x.length).toBeGreaterThan(0.18);
    expect(zeros / t.x.length).toBeLessThan(0.32);
    expect(maxAbsDiff(run(5, true).out, t.out)).toBe(0); // same seed, same mask
    expect(maxAbsDiff(run(6, true).out, t.out)).toBeGreaterThan(0); // other seed, other mask
    const e = run(5, false);
    expect(
      maxAbsDiff(
        e.out,
        e.base.map((b, i) => b + e.x[i]),
      ),
    ).toBeLessThan(1e-4); // eval: no dropout
    eye.dispose();
  });
});

describe('injectLora on a model', () => {
  it('with lora_B = 0 the outputs equal the base model exactly', () => {
    host = new TestHost(16, 24);
    const x = input(4, 16);
    const before = outputOf(host, x);
    injectLora(host, { name: 'a', r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'up_proj', 'down_proj'] });
    expect(host.getLinear(Q)).toBeInstanceOf(LoraLinear);
    expect(maxAbsDiff(outputOf(host, x), before)).toBe(0);
    x.dispose();
  });

  it('targets modules PEFT-style: name suffixes, a full-match regex, all-linear; nothing matched is an error', () => {
    host = new TestHost(8, 8);
    expect(injectLora(host, { name: 'a', targetModules: ['self_attn.q_proj'] })).toEqual([Q]);
    expect(injectLora(host, { name: 'b', targetModules: 'model\\.layers\\.\\d+\\.mlp\\..*_proj' })).toEqual([
      'layers.0.mlp.up_proj',
      'layers.0.mlp.down_proj',
    ]);
    expect(injectLora(host, { name: 'c', targetModules: 'all-linear' })).toHaveLength(4);
    expect(() => injectLora(host!, { name: 'd', targetModules: ['o_proj'] })).toThrow(/match none/);
    expect(() => injectLora(host!, { name: 'a' })).toThrow(LoraError);
    expect(() => injectLora(host!, { name: 'e', r: 0 })).toThrow(/r: expected a positive integer/);
    expect(() => injectLora(host!, { name: 'e', dropout: 1 })).toThrow(/lora_dropout/);
  });

  it('freezes the base: base weights become non-trainable; loraParameters lists A [in, r] and B [r, out]', () => {
    host = new TestHost(8, 12);
    injectLora(host, { name: 'a', r: 2, targetModules: ['q_proj', 'up_proj'] });
    for (const w of host.namedWeights().values()) expect(w.trainable).toBe(false);
    const params = loraParameters(host, 'a');
    expect(params.map((p) => p.shape)).toEqual([
      [8, 2],
      [2, 8],
      [8, 2],
      [2, 12],
    ]);
    expect(params.every((p) => p.trainable)).toBe(true);
    expect(() => loraParameters(host!, 'zzz')).toThrow(LoraError);
  });

  it("a second adapter does not change the first adapter's outputs; active adapters are chosen per call", () => {
    host = new TestHost(16, 24);
    const x = input(4, 16);
    const base = outputOf(host, x);
    injectLora(host, { name: 'hyper', r: 4, targetModules: ['q_proj', 'v_proj'] });
    randomizeB(host, 'hyper', 1);
    const hyperOnly = outputOf(host, x);
    expect(maxAbsDiff(hyperOnly, base)).toBeGreaterThan(1e-3);
    injectLora(host, { name: 'downstream', r: 2, targetModules: ['v_proj', 'down_proj'], seed: 3 });
    randomizeB(host, 'downstream', 2);
    expect(getActiveAdapters(host)).toEqual(['hyper']); // the new adapter starts inactive
    expect(maxAbsDiff(outputOf(host, x), hyperOnly)).toBe(0);
    setActiveAdapters(host, ['downstream']);
    const downOnly = outputOf(host, x);
    expect(maxAbsDiff(downOnly, base)).toBeGreaterThan(1e-3);
    setActiveAdapters(host, ['hyper']);
    expect(maxAbsDiff(outputOf(host, x), hyperOnly)).toBe(0);
    setActiveAdapters(host, []);
    expect(maxAbsDiff(outputOf(host, x), base)).toBe(0);
    // Both active: on v_proj, the two updates add.
    setActiveAdapters(host, ['hyper', 'downstream']);
    const v = host.getLinear(V) as LoraLinear;
    const xv = input(3, 16, 9);
    const both = v.apply(xv);
    setActiveAdapters(host, ['hyper']);
    const h = v.apply(xv);
    setActiveAdapters(host, ['downstream']);
    const dn = v.apply(xv);
    setActiveAdapters(host, []);
    const b = v.apply(xv);
    const sum = tf.sub(tf.add(h, dn), b);
    expect(maxAbsDiff(both.dataSync(), sum.dataSync())).toBeLessThan(1e-5);
    expect(() => setActiveAdapters(host!, ['nope'])).toThrow(/no adapter named "nope"/);
    tf.dispose([x, xv, both, h, dn, b, sum]);
  });

  it('withActiveAdapters runs with exactly the named adapters and restores the previous set, also after a throw', () => {
    host = new TestHost(16, 24);
    const x = input(4, 16);
    const base = outputOf(host, x);
    injectLora(host, { name: 'hyper', r: 4, targetModules: ['q_proj'] });
    randomizeB(host, 'hyper', 1);
    const hyper = outputOf(host, x);
    expect(withActiveAdapters(host, [], () => maxAbsDiff(outputOf(host!, x), base))).toBe(0);
    expect(getActiveAdapters(host)).toEqual(['hyper']);
    setActiveAdapters(host, []);
    expect(withActiveAdapters(host, ['hyper'], () => maxAbsDiff(outputOf(host!, x), hyper))).toBe(0);
    expect(() =>
      withActiveAdapters(host!, ['hyper'], () => {
        throw new Error('inside');
      }),
    ).toThrow('inside');
    expect(getActiveAdapters(host)).toEqual([]);
    expect(() => withActiveAdapters(host!, ['nope'], () => 1)).toThrow(/no adapter named "nope"/);
    expect(getActiveAdapters(host)).toEqual([]);
    tf.dispose(x);
  });

  it('mergeLora: merged forward equals the unmerged forward to 1e-5, and the linears get their base back', () => {
    host = new TestHost(16, 24);
    const x = input(4, 16);
    injectLora(host, { name: 'a', r: 4, alpha: 16, targetModules: 'all-linear' });
    injectLora(host, { name: 'b', r: 2, targetModules: ['q_proj'] });
    randomizeB(host, 'a', 1);
    const unmerged = outputOf(host, x);
    const numTensors = tf.memory().numTensors;
    mergeLora(host, 'a');
    expect(tf.memory().numTensors).toBe(numTensors - 8); // 4 linears × (A, B) disposed, nothing leaked
    expect(maxAbsDiff(outputOf(host, x), unmerged)).toBeLessThan(1e-5);
    expect(host.getLinear(V)).toBeInstanceOf(DenseLinear);
    expect(host.getLinear(Q)).toBeInstanceOf(LoraLinear); // still carries "b"
    expect(() => loraParameters(host!, 'a')).toThrow(LoraError);
    x.dispose();
  });

  it('training only the LoRA weights lowers the loss; base weights stay bit-identical and get no gradient', () => {
    host = new TestHost(16, 32, 2);
    const target = new TestHost(16, 32, 3); // a different network to imitate
    const x = input(32, 16, 11);
    const yTarget = target.forward(x);
    target.dispose();
    injectLora(host, { name: 'a', r: 4, alpha: 8, dropout: 0.1, targetModules: 'all-linear' });
    const baseBefore = [...host.namedWeights().values()].map((w) => w.dataSync().slice());
    const opt = tf.train.adam(0.01);
    const lossOf = () => tf.losses.meanSquaredError(yTarget, host!.forward(x, true)) as tf.Scalar;
    const first = tf.tidy(() => lossOf().dataSync()[0]);
    for (let step = 0; step < 60; step++) {
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(lossOf); // all trainable variables
        expect(Object.keys(grads).sort()).toEqual(
          loraParameters(host!, 'a')
            .map((v) => v.name)
            .sort(),
        );
        opt.applyGradients(grads as Record<string, tf.Variable>);
        value.dispose();
      });
    }
    const last = tf.tidy(() => lossOf().dataSync()[0]);
    expect(last).toBeLessThan(0.7 * first);
    [...host.namedWeights().values()].forEach((w, i) => expect(maxAbsDiff(w.dataSync(), baseBefore[i])).toBe(0));
    opt.dispose();
    tf.dispose([x, yTarget]);
  });

  it('dropout Rng states can be saved and restored, so a resumed run draws the same masks', () => {
    host = new TestHost(8, 8);
    injectLora(host, { name: 'a', dropout: 0.5, targetModules: 'all-linear' });
    randomizeB(host, 'a', 1);
    const x = input(4, 8);
    outputOf(host, x, true);
    const saved = getDropoutRngStates(host, 'a');
    const next = outputOf(host, x, true);
    expect(maxAbsDiff(outputOf(host, x, true), next)).toBeGreaterThan(0); // masks move on
    setDropoutRngStates(host, 'a', saved);
    expect(maxAbsDiff(outputOf(host, x, true), next)).toBe(0);
    expect(() => setDropoutRngStates(host!, 'a', {})).toThrow(/lack linears/);
    x.dispose();
  });

  it('a forward pass leaks no tensors', () => {
    host = new TestHost(8, 8);
    injectLora(host, { name: 'a', dropout: 0.5, targetModules: 'all-linear' });
    const x = input(2, 8);
    outputOf(host, x, true);
    const n = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) outputOf(host, x, true);
    expect(tf.memory().numTensors).toBe(n);
    x.dispose();
  });
});

describe('LoRA on NF4 (QLoRA)', () => {
  it('quantizeModel replaces dense linears (also under LoRA), and LoRA on top of NF4 trains', () => {
    host = new TestHost(64, 128, 2);
    const target = new TestHost(64, 128, 3);
    const x = input(32, 64, 11);
    const yTarget = target.forward(x);
    target.dispose();
    const yFloat = outputOf(host, x);
    injectLora(host, { name: 'a', r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] });
    const report = quantizeModel(host, { blockSize: 64, doubleQuant: true });
    expect(report.quantized).toEqual(host.linearNames());
    expect(report.bytesPerParameter).toBeGreaterThan(0.5);
    expect(report.bytesPerParameter).toBeLessThan(0.53);
    expect((host.getLinear(Q) as LoraLinear).base).toBeInstanceOf(Nf4Linear);
    expect(host.getLinear('layers.0.mlp.up_proj')).toBeInstanceOf(Nf4Linear);
    expect(host.namedWeights().size).toBe(0); // no float base weights left
    // Quantised outputs stay close to the float ones.
    const yq = outputOf(host, x);
    const rel = maxAbsDiff(yq, yFloat) / Math.max(...yFloat.map(Math.abs));
    expect(rel).toBeLessThan(0.2);
    expect(rel).toBeGreaterThan(0); // it really is quantised

    const opt = tf.train.adam(0.02);
    const lossOf = () => tf.losses.meanSquaredError(yTarget, host!.forward(x, true)) as tf.Scalar;
    const first = tf.tidy(() => lossOf().dataSync()[0]);
    for (let step = 0; step < 40; step++) {
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(lossOf);
        expect(Object.keys(grads)).toHaveLength(4);
        opt.applyGradients(grads as Record<string, tf.Variable>);
        value.dispose();
      });
    }
    expect(tf.tidy(() => lossOf().dataSync()[0])).toBeLessThan(0.8 * first);
    expect(() => quantizeModel(host!)).toThrow(/no \[in, out\] weight Variable/);
    // Merging into NF4 re-quantises W + ΔW: each weight within NF4's rounding of it, and the outputs far closer to
    // the adapted model's than to the model without the adapter.
    const unmerged = outputOf(host, x);
    setActiveAdapters(host, []);
    const withoutAdapter = outputOf(host, x);
    setActiveAdapters(host, ['a']);
    const lora = host.getLinear(Q) as LoraLinear;
    const deltaTensor = lora.deltaWeight('a');
    const mergeTarget = (lora.base as Nf4Linear).dequantize().map((w, i) => w + deltaTensor.dataSync()[i]);
    deltaTensor.dispose();
    const n = tf.memory().numTensors;
    mergeLora(host, 'a');
    expect(tf.memory().numTensors).toBe(n - 4); // A, B of q_proj and v_proj
    const mergedQ = host.getLinear(Q) as Nf4Linear;
    expect(mergedQ).toBeInstanceOf(Nf4Linear);
    expect(maxAbsDiff(mergedQ.dequantize(), mergeTarget)).toBeLessThanOrEqual(
      0.16 * Math.max(...mergeTarget.map(Math.abs)),
    );
    const merged = outputOf(host, x);
    expect(maxAbsDiff(merged, unmerged)).toBeLessThan(0.5 * maxAbsDiff(withoutAdapter, unmerged));
    opt.dispose();
    tf.dispose([x, yTarget]);
  });
});
