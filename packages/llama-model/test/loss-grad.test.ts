import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLlama,
  findDenseBase,
  lmLoss,
  type LinearModule,
  type LlamaConfig,
  type LlamaModel,
} from '../src/index.js';

const config: LlamaConfig = {
  vocabSize: 29,
  hiddenSize: 16,
  intermediateSize: 24,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  maxPositionEmbeddings: 32,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  tieWordEmbeddings: true,
  bosTokenId: 1,
  eosTokenId: 2,
};

let model: LlamaModel; // tied head: the fused loss on the embedding table
let untied: LlamaModel; // dense lm_head: the fused loss on [D, V]
let wrapped: LlamaModel; // lm_head behind a wrapper: the generic chunked loss
let frozen: LlamaModel; // untied, every weight frozen but layers.1.self_attn.v_proj: the fused loss without dW
beforeAll(async () => {
  await tf.setBackend('cpu');
  model = createLlama(config, { seed: 11, std: 0.4 });
  untied = createLlama({ ...config, tieWordEmbeddings: false }, { seed: 12, std: 0.4 });
  wrapped = createLlama({ ...config, tieWordEmbeddings: false }, { seed: 12, std: 0.4 });
  frozen = createLlama({ ...config, tieWordEmbeddings: false }, { seed: 13, std: 0.4, trainable: false });
  findDenseBase(frozen.getLinear('layers.1.self_attn.v_proj'))!.weight.trainable = true;
  const head = wrapped.getLinear('lm_head');
  wrapped.setLinear('lm_head', {
    inFeatures: head.inFeatures,
    outFeatures: head.outFeatures,
    apply: (x: tf.Tensor2D) => head.apply(x),
    dispose: () => head.dispose(),
    base: head,
  } as LinearModule);
});
afterAll(() => [model, untied, wrapped, frozen].forEach((m) => m.dispose()));

const inputs = [
  [1, 4, 9, 16, 25, 7],
  [1, 3, 5, 7, 11, 13],
];
const labels = [
  [-100, 4, 9, -100, 25, 7], // ignored labels take no part
  [1, 3, 5, 7, 11, -100],
];

function lossValue(extra: Parameters<LlamaModel['forward']>[0] = {}, chunkRows?: number, m = model): number {
  return tf.tidy(() => {
    const { hidden } = m.forward({ inputIds: tf.tensor2d(inputs, undefined, 'int32'), returnHidden: true, ...extra });
    return lmLoss(m, hidden!, tf.tensor2d(labels, undefined, 'int32'), { chunkRows }).dataSync()[0];
  });
}

describe('lmLoss', () => {
  it.each(['tied', 'untied', 'wrapped'] as const)(
    'is the mean cross-entropy of labels[t+1] given the logits at t over non-ignored labels (HF shift; %s head)',
    (kind) => {
      const m = { tied: model, untied, wrapped }[kind];
      const logits = tf.tidy(() =>
        m.forward({ inputIds: tf.tensor2d(inputs, undefined, 'int32') }).logits!.arraySync(),
      ) as number[][][];
      let total = 0;
      let count = 0;
      for (let b = 0; b < inputs.length; b++) {
        for (let t = 0; t + 1 < inputs[b].length; t++) {
          const y = labels[b][t + 1];
          if (y === -100) continue;
          const row = logits[b][t];
          const max = Math.max(...row);
          const logZ = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
          total += logZ - row[y];
          count++;
        }
      }
      expect(count).toBe(8);
      expect(lossValue({}, undefined, m)).toBeCloseTo(total / count, 5);
    },
  );

  it('does not depend on the chunk size', () => {
    for (const m of [model, wrapped]) {
      expect(lossValue({}, 1, m)).toBeCloseTo(lossValue({}, 1000, m), 6);
      expect(lossValue({}, 3, m)).toBeCloseTo(lossValue({}, 1000, m), 6);
    }
  });
});

/** Central finite difference of the loss along `direction` for a value set by `set`. */
function directional(set: (sign: number) => void, eps: number, loss: () => number): number {
  set(+eps);
  const up = loss();
  set(-eps);
  const down = loss();
  set(0);
  return (up - down) / (2 * eps);
}

describe('gradients match finite differences', () => {
  it.each([
    ['layers.0.self_attn.q_proj', 'tied'],
    ['lm_head', 'untied'],
    ['lm_head', 'wrapped'],
    ['layers.1.self_attn.v_proj', 'frozen'],
  ] as const)('for a linear weight (%s, %s head)', (name, kind) => {
    const m = { tied: model, untied, wrapped, frozen }[kind];
    const weight = findDenseBase(m.getLinear(name))!.weight;
    const original = weight.clone();
    const loss = () => lossValue({}, undefined, m);
    const { grads, value } = tf.variableGrads(() => {
      const { hidden } = m.forward({ inputIds: tf.tensor2d(inputs, undefined, 'int32'), returnHidden: true });
      return lmLoss(m, hidden!, tf.tensor2d(labels, undefined, 'int32'));
    }, [weight]);
    const g = grads[weight.name];
    const direction = tf.randomNormal(weight.shape, 0, 1, 'float32', 5);
    const predicted = tf.sum(tf.mul(g, direction)).dataSync()[0];
    const measured = directional(
      (s) => weight.assign(tf.tidy(() => tf.add(original, tf.mul(direction, s)))),
      1e-3,
      loss,
    );
    expect(Math.abs(predicted)).toBeGreaterThan(1e-3);
    expect(Math.abs(measured - predicted)).toBeLessThan(2e-3 * Math.max(1, Math.abs(predicted)));
    // and one element at a time, for the largest entries of the gradient
    const flat = g.dataSync();
    const top = Array.from(flat.keys())
      .sort((a, b) => Math.abs(flat[b]) - Math.abs(flat[a]))
      .slice(0, 3);
    for (const i of top) {
      const unit = tf.tidy(() => tf.reshape(tf.oneHot([i], flat.length, 1, 0, 'float32'), weight.shape));
      const fd = directional((s) => weight.assign(tf.tidy(() => tf.add(original, tf.mul(unit, s)))), 1e-3, loss);
      expect(Math.abs(fd - flat[i])).toBeLessThan(2e-3 * Math.max(1, Math.abs(flat[i])));
      unit.dispose();
    }
    tf.dispose([original, g, value, direction]);
  });

  it('for a soft prefix (keys and values of every layer)', () => {
    const P = 3;
    const keys = [0, 1].map((i) => tf.randomNormal([1, 2, P, 4], 0, 1, 'float32', 20 + i) as tf.Tensor4D);
    const values = [0, 1].map((i) => tf.randomNormal([1, 2, P, 4], 0, 1, 'float32', 30 + i) as tf.Tensor4D);
    const loss = (ks: tf.Tensor4D[], vs: tf.Tensor4D[]) => {
      const { hidden } = model.forward({
        inputIds: tf.tensor2d(inputs, undefined, 'int32'),
        returnHidden: true,
        prefix: { keys: ks, values: vs, length: P },
      });
      return lmLoss(model, hidden!, tf.tensor2d(labels, undefined, 'int32'));
    };
    const all = [...keys, ...values];
    const grads = tf.grads((...xs: tf.Tensor[]) => loss(xs.slice(0, 2) as tf.Tensor4D[], xs.slice(2) as tf.Tensor4D[]))(
      all,
    );
    const directions = all.map((t, i) => tf.randomNormal(t.shape, 0, 1, 'float32', 40 + i));
    const predicted = grads.reduce((s, g, i) => s + tf.tidy(() => tf.sum(tf.mul(g, directions[i])).dataSync()[0]), 0);
    const at = (s: number) =>
      tf.tidy(() => {
        const moved = all.map((t, i) => tf.add(t, tf.mul(directions[i], s)) as tf.Tensor4D);
        return loss(moved.slice(0, 2), moved.slice(2)).dataSync()[0];
      });
    const eps = 1e-3;
    const measured = (at(eps) - at(-eps)) / (2 * eps);
    expect(Math.abs(predicted)).toBeGreaterThan(1e-3);
    expect(Math.abs(measured - predicted)).toBeLessThan(2e-3 * Math.max(1, Math.abs(predicted)));
    // every layer's keys and values receive gradient
    for (const g of grads) expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0])).toBeGreaterThan(1e-6);
    tf.dispose([...all, ...grads, ...directions]);
  });
});
