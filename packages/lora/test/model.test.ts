import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  DenseLinear,
  createLlama,
  generate,
  lmLoss,
  loadLlama,
  type LlamaConfig,
  type LlamaModel,
} from '@hyperllama/llama-model';
import { Rng } from '@hyperllama/runtime';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  LoraLinear,
  Nf4Linear,
  injectLora,
  loadAdapter,
  loraParameters,
  mergeLora,
  quantizeModel,
  saveAdapter,
  setActiveAdapters,
} from '../src/index.js';
import { maxAbsDiff } from './helpers/host.js';

const here = dirname(fileURLToPath(import.meta.url));
const STORIES_BIN = join(here, '..', '..', '..', '..', 'shared', 'models', 'stories260K', 'stories260K.bin');
const tmp = mkdtempSync(join(tmpdir(), 'lora-model-'));

const TINY: LlamaConfig = {
  vocabSize: 48,
  hiddenSize: 32,
  intermediateSize: 48,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 8,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
};

let models: LlamaModel[] = [];
const tiny = (seed = 1): LlamaModel => {
  const m = createLlama(TINY, { seed, std: 0.2 });
  models.push(m);
  return m;
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterEach(() => {
  models.forEach((m) => m.dispose());
  models = [];
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ids = (rows: number[][]) => tf.tensor2d(rows, undefined, 'int32');
const SEQ = [[1, 5, 9, 13, 2, 40, 7, 7, 30, 11, 3, 22]];

function logits(model: LlamaModel, inputIds: tf.Tensor2D): Float32Array {
  return tf.tidy(() => model.forward({ inputIds }).logits!.dataSync() as Float32Array);
}

function randomizeAll(model: LlamaModel, name: string, seed: number): void {
  const rng = new Rng(seed);
  for (const v of loraParameters(model, name)) v.assign(tf.tensor(rng.normalArray(v.size, 0, 0.2), v.shape));
}

describe('LoRA through the Llama model', () => {
  it('with lora_B = 0 the logits equal the base model exactly; with lora_B ≠ 0 they change', () => {
    const model = tiny();
    const x = ids(SEQ);
    const base = logits(model, x);
    injectLora(model, { name: 'hyper', r: 4, alpha: 8, targetModules: 'all-linear' });
    expect(model.getLinear('layers.1.mlp.down_proj')).toBeInstanceOf(LoraLinear);
    expect(model.getLinear('lm_head')).toBeInstanceOf(DenseLinear); // all-linear leaves the output layer alone
    expect(maxAbsDiff(logits(model, x), base)).toBe(0);
    randomizeAll(model, 'hyper', 1);
    expect(maxAbsDiff(logits(model, x), base)).toBeGreaterThan(1e-3);
    x.dispose();
  });

  it('merge then forward equals the unmerged forward to 1e-5', () => {
    const model = tiny();
    const x = ids(SEQ);
    injectLora(model, {
      name: 'hyper',
      r: 4,
      alpha: 16,
      targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
    });
    randomizeAll(model, 'hyper', 2);
    const unmerged = logits(model, x);
    mergeLora(model, 'hyper');
    expect(model.getLinear('layers.0.self_attn.q_proj')).toBeInstanceOf(DenseLinear);
    expect(maxAbsDiff(logits(model, x), unmerged)).toBeLessThan(1e-5);
    x.dispose();
  });

  it('save → load round trip is exact on a fresh copy of the base model', () => {
    const model = tiny();
    const x = ids(SEQ);
    injectLora(model, { name: 'downstream', r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj', 'down_proj'] });
    randomizeAll(model, 'downstream', 3);
    const expected = logits(model, x);
    saveAdapter(model, 'downstream', join(tmp, 'a'), { baseModelNameOrPath: 'tiny' });
    const fresh = tiny();
    loadAdapter(join(tmp, 'a'), fresh, 'downstream');
    expect(maxAbsDiff(logits(fresh, x), expected)).toBe(0);
    x.dispose();
  });

  it("a second adapter does not change the first adapter's outputs", () => {
    const model = tiny();
    const x = ids(SEQ);
    injectLora(model, { name: 'hyper', r: 4, targetModules: ['q_proj', 'v_proj'] });
    randomizeAll(model, 'hyper', 4);
    const hyper = logits(model, x);
    injectLora(model, { name: 'downstream', r: 4, targetModules: ['v_proj', 'o_proj'], seed: 9 });
    randomizeAll(model, 'downstream', 5);
    setActiveAdapters(model, ['hyper']);
    expect(maxAbsDiff(logits(model, x), hyper)).toBe(0);
    setActiveAdapters(model, ['downstream']);
    expect(maxAbsDiff(logits(model, x), hyper)).toBeGreaterThan(1e-3);
    x.dispose();
  });

  it('training only the LoRA weights lowers the LM loss while every base weight stays bit-identical', () => {
    const model = tiny();
    injectLora(model, {
      name: 'hyper',
      r: 4,
      alpha: 8,
      dropout: 0.05,
      targetModules: ['q_proj', 'v_proj', 'up_proj', 'down_proj'],
    });
    const base = new Map([...model.namedWeights()].map(([k, v]) => [k, v.dataSync().slice()]));
    expect([...model.namedWeights().values()].every((v) => !v.trainable)).toBe(true);
    // Tiny task: memorise one fixed sequence.
    const x = ids([[1, 4, 8, 15, 16, 23, 42, 4, 8, 15, 16, 23]]);
    const lossOf = () => {
      const { hidden } = model.forward({ inputIds: x, returnHidden: true, training: true });
      return lmLoss(model, hidden!, x, { training: true });
    };
    const opt = tf.train.adam(0.02);
    const first = tf.tidy(() => lossOf().dataSync()[0]);
    for (let step = 0; step < 25; step++) {
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(lossOf);
        expect(Object.keys(grads).length).toBe(loraParameters(model, 'hyper').length);
        opt.applyGradients(grads as Record<string, tf.Variable>);
        value.dispose();
      });
    }
    const last = tf.tidy(() => lossOf().dataSync()[0]);
    expect(last).toBeLessThan(0.5 * first);
    for (const [k, v] of model.namedWeights()) expect(maxAbsDiff(v.dataSync(), base.get(k)!)).toBe(0);
    opt.dispose();
    x.dispose();
  });

  it('LoRA on an NF4-quantised model trains', () => {
    const model = tiny();
    const report = quantizeModel(model, { blockSize: 64, doubleQuant: true });
    expect(report.quantized).toHaveLength(7 * 2); // lm_head stays float
    expect(model.getLinear('layers.0.mlp.up_proj')).toBeInstanceOf(Nf4Linear);
    injectLora(model, { name: 'q', r: 4, alpha: 8, targetModules: 'all-linear' });
    const x = ids([[1, 4, 8, 15, 16, 23, 42, 4, 8, 15, 16, 23]]);
    const lossOf = () => lmLoss(model, model.forward({ inputIds: x, returnHidden: true, training: true }).hidden!, x);
    const opt = tf.train.adam(0.02);
    const first = tf.tidy(() => lossOf().dataSync()[0]);
    for (let step = 0; step < 25; step++) tf.tidy(() => void opt.minimize(lossOf, false, loraParameters(model, 'q')));
    expect(tf.tidy(() => lossOf().dataSync()[0])).toBeLessThan(0.5 * first);
    opt.dispose();
    x.dispose();
  });
});

function cosine(a: Float32Array, b: Float32Array): number {
  let [ab, aa, bb] = [0, 0, 0];
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

describe.skipIf(!existsSync(STORIES_BIN))(`stories260K in NF4 (needs ${STORIES_BIN})`, () => {
  it('keeps logits close to the float model and most greedy tokens', async () => {
    const float = loadLlama(STORIES_BIN);
    const quant = loadLlama(STORIES_BIN);
    models.push(float, quant);
    const report = quantizeModel(quant, { blockSize: 64, doubleQuant: true });
    const steps = 100;
    const greedyFloat = (await generate(float, [[1]], { maxNewTokens: steps, stopIds: [] })).tokens[0];
    const greedyQuant = (await generate(quant, [[1]], { maxNewTokens: steps, stopIds: [] })).tokens[0];
    // Logits of both models on the float model's greedy text, position by position.
    const x = ids([[1, ...greedyFloat.slice(0, steps - 1)]]);
    const [lf, lq] = [logits(float, x), logits(quant, x)];
    const V = float.config.vocabSize;
    const perPosition = Array.from({ length: steps }, (_, t) =>
      cosine(lf.subarray(t * V, (t + 1) * V), lq.subarray(t * V, (t + 1) * V)),
    );
    const meanCos = perPosition.reduce((s, c) => s + c, 0) / steps;
    const same = greedyFloat.filter((t, i) => t === greedyQuant[i]).length;
    let prefix = 0;
    while (prefix < steps && greedyFloat[prefix] === greedyQuant[prefix]) prefix++;
    let argmaxAgree = 0; // teacher-forced: does the NF4 model pick the float model's next token?
    for (let t = 0; t < steps; t++) {
      const rowF = lf.subarray(t * V, (t + 1) * V);
      const rowQ = lq.subarray(t * V, (t + 1) * V);
      if (rowF.indexOf(Math.max(...rowF)) === rowQ.indexOf(Math.max(...rowQ))) argmaxAgree++;
    }
    console.log(
      `stories260K NF4 (block 64, double quant): ${report.bytesPerParameter.toFixed(4)} bytes/param over ${report.parameters} params; ` +
        `logits cosine mean ${meanCos.toFixed(4)} min ${Math.min(...perPosition).toFixed(4)}; ` +
        `greedy from BOS: ${same}/${steps} tokens equal, first ${prefix} identical; teacher-forced argmax agreement ${argmaxAgree}/${steps}`,
    );
    expect(meanCos).toBeGreaterThan(0.98);
    expect(argmaxAgree).toBeGreaterThan(0.85 * steps);
    expect(prefix).toBeGreaterThan(0);
    x.dispose();
  });
});
