import * as tf from '@tensorflow/tfjs';
import { HyperLlamaError } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ModelError,
  applyRope,
  createLlama,
  disposeCache,
  emptyCache,
  type LlamaConfig,
  type LlamaModel,
} from '../src/index.js';
import { maxAbsDiff } from './helpers.js';

const config: LlamaConfig = {
  vocabSize: 41,
  hiddenSize: 24,
  intermediateSize: 40,
  numHiddenLayers: 2,
  numAttentionHeads: 6,
  numKeyValueHeads: 2,
  headDim: 4,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-6,
  ropeTheta: 1000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
};

let model: LlamaModel;
beforeAll(async () => {
  await tf.setBackend('cpu');
  model = createLlama(config, { seed: 7, std: 0.3 });
});
afterAll(() => model.dispose());

const seq = [5, 17, 3, 40, 22, 9, 31, 12];
const ids = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
const logitsOf = (rows: number[][], extra: Parameters<LlamaModel['forward']>[0] = {}) =>
  tf.tidy(() => model.forward({ inputIds: ids(rows), ...extra }).logits!.arraySync()) as number[][][];

describe('LlamaModel.forward identities', () => {
  it('incremental decoding with the cache gives the logits of one full forward', () => {
    const full = logitsOf([seq]);
    let cache = emptyCache();
    const before = tf.memory().numTensors;
    const steps: number[][] = [];
    // a 3-token chunk, then one token at a time
    for (const [start, end] of [
      [0, 3],
      [3, 4],
      [4, 5],
      [5, 6],
      [6, 7],
      [7, 8],
    ]) {
      const input = ids([seq.slice(start, end)]);
      const out = model.forward({ inputIds: input, cache });
      input.dispose();
      disposeCache(cache);
      cache = out.cache!;
      expect(cache.length).toBe(end);
      steps.push(...(out.logits!.arraySync()[0] as number[][]));
      out.logits!.dispose();
    }
    disposeCache(cache);
    expect(tf.memory().numTensors).toBe(before);
    for (let t = 0; t < seq.length; t++) expect(maxAbsDiff(steps[t], full[0][t])).toBeLessThan(1e-5);
  });

  it('a left-padded batch gives each row the logits of its unpadded single run', () => {
    const rows = [seq, seq.slice(0, 5), seq.slice(2, 3)];
    const T = seq.length;
    const pad = (n: number, v: number) => Array.from({ length: n }, () => v);
    const padded = rows.map((r) => [...pad(T - r.length, 0), ...r]);
    const mask = rows.map((r) => [...pad(T - r.length, 0), ...pad(r.length, 1)]);
    const positions = rows.map((r) => [...pad(T - r.length, 0), ...r.map((_, i) => i)]);
    const batch = logitsOf(padded, {
      attentionMask: tf.tensor2d(mask, undefined, 'int32'),
      positionIds: tf.tensor2d(positions, undefined, 'int32'),
    });
    rows.forEach((r, b) => {
      const single = logitsOf([r]);
      for (let t = 0; t < r.length; t++)
        expect(maxAbsDiff(batch[b][T - r.length + t], single[0][t])).toBeLessThan(1e-5);
    });
  });

  it("a prefix made of a sequence's own K,V equals the forward over the concatenated sequence", () => {
    const full = logitsOf([seq]);
    const P = 5;
    const head = model.forward({ inputIds: ids([seq.slice(0, P)]), returnKV: true });
    const prefix = { keys: head.kv!.map((l) => l.keys), values: head.kv!.map((l) => l.values), length: P };
    const tail = logitsOf([seq.slice(P)], { prefix }); // default positions continue at P
    for (let t = P; t < seq.length; t++) expect(maxAbsDiff(tail[0][t - P], full[0][t])).toBeLessThan(1e-5);
    // a batch-1 prefix serves every row of a batch
    const two = logitsOf([seq.slice(P), seq.slice(P)], { prefix });
    expect(maxAbsDiff(two[1][2], full[0][P + 2])).toBeLessThan(1e-5);
    tf.dispose([head.logits!, ...head.kv!.flatMap((l) => [l.keys, l.values, l.keysPreRope])]);
  });

  it('returned keys are keysPreRope rotated by RoPE at the positions used', () => {
    const out = model.forward({
      inputIds: ids([seq]),
      returnKV: true,
      positionIds: tf.tensor2d([seq.map((_, i) => 10 + 2 * i)], undefined, 'int32'),
    });
    const layer = out.kv![1];
    expect(layer.keys.shape).toEqual([1, config.numKeyValueHeads, seq.length, config.headDim]);
    const rotated = applyRope(
      layer.keysPreRope,
      tf.tensor2d([seq.map((_, i) => 10 + 2 * i)], undefined, 'int32'),
      config.ropeTheta,
      config.headDim,
    );
    expect(maxAbsDiff(rotated.dataSync(), layer.keys.dataSync())).toBeLessThan(1e-6);
    tf.dispose([rotated, out.logits!, ...out.kv!.flatMap((l) => [l.keys, l.values, l.keysPreRope])]);
  });

  it('the result depends on positions only through relative offsets (RoPE), so shifting all positions changes nothing', () => {
    const a = logitsOf([seq]);
    const b = logitsOf([seq], { positionIds: tf.tensor2d([seq.map((_, i) => i + 17)], undefined, 'int32') });
    const c = logitsOf([seq], { positionIds: tf.tensor2d([seq.map((_, i) => 2 * i)], undefined, 'int32') });
    expect(maxAbsDiff(a[0].flat(), b[0].flat())).toBeLessThan(1e-4);
    expect(maxAbsDiff(a[0].flat(), c[0].flat())).toBeGreaterThan(1e-3);
  });

  it('ids ≥ vocabSize take rows of extraEmbeddings; inputsEmbeds is equivalent to embedding the ids', () => {
    const extra = tf.randomNormal([2, config.hiddenSize], 0, 1, 'float32', 3) as tf.Tensor2D;
    const withGist = [5, 17, config.vocabSize + 1, 3];
    const viaIds = logitsOf([withGist], { extraEmbeddings: extra });
    const embeds = tf.tidy(() =>
      tf.concat(
        [
          model.embed(ids([[5, 17]])),
          tf.reshape(tf.slice(extra, [1, 0], [1, -1]), [1, 1, -1]),
          model.embed(ids([[3]])),
        ],
        1,
      ),
    ) as tf.Tensor3D;
    const viaEmbeds = tf.tidy(() => model.forward({ inputsEmbeds: embeds }).logits!.arraySync()) as number[][][];
    expect(maxAbsDiff(viaIds[0].flat(), viaEmbeds[0].flat())).toBeLessThan(1e-6);
    tf.dispose([extra, embeds]);
  });

  it('an explicit additive mask equal to the causal one gives the same logits; hiding a key changes later ones', () => {
    const T = 4;
    const causal = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (j <= i ? 0 : -1e9)));
    const plain = logitsOf([seq.slice(0, T)]);
    const masked = logitsOf([seq.slice(0, T)], { mask: tf.tensor4d([[causal]], [1, 1, T, T]) });
    expect(maxAbsDiff(plain[0].flat(), masked[0].flat())).toBeLessThan(1e-6);
    causal[3][1] = -1e9;
    const hidden = logitsOf([seq.slice(0, T)], { mask: tf.tensor4d([[causal]], [1, 1, T, T]) });
    expect(maxAbsDiff(plain[0].slice(0, 3).flat(), hidden[0].slice(0, 3).flat())).toBeLessThan(1e-6);
    expect(maxAbsDiff(plain[0][3], hidden[0][3])).toBeGreaterThan(1e-4);
  });

  it('returnHidden returns final-normed states that the head maps to the logits', () => {
    const out = model.forward({ inputIds: ids([seq]), returnHidden: true });
    expect(out.logits).toBeUndefined();
    const viaHead = tf.tidy(() =>
      model.logitsFromHidden(tf.reshape(out.hidden!, [seq.length, -1]) as tf.Tensor2D).dataSync(),
    );
    expect(maxAbsDiff(viaHead, logitsOf([seq])[0].flat())).toBeLessThan(1e-6);
    out.hidden!.dispose();
  });

  it('bad inputs throw ModelError naming the field', () => {
    const bad = (f: () => unknown, pattern: RegExp) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ModelError);
      expect(err).toBeInstanceOf(HyperLlamaError);
      expect((err as Error).message).toMatch(pattern);
    };
    const x = ids([seq]);
    const inputs = {
      outOfVocab: tf.tensor2d([[0, 41]], undefined, 'int32'),
      shortMask: tf.ones([1, 3], 'int32') as tf.Tensor2D,
      shortPositions: tf.zeros([1, 2], 'int32') as tf.Tensor2D,
      wideMask: tf.zeros([1, 1, 8, 9]) as tf.Tensor4D,
      oneLayer: tf.zeros([1, 2, 2, 4]) as tf.Tensor4D,
      wrongHeads: tf.zeros([1, 6, 2, 4]) as tf.Tensor4D,
    };
    const before = tf.memory().numTensors;
    bad(() => model.forward({ inputIds: inputs.outOfVocab }), /token id 41/);
    bad(() => model.forward({ inputIds: x, attentionMask: inputs.shortMask }), /attentionMask.*\[1, 8\]/);
    bad(() => model.forward({ inputIds: x, positionIds: inputs.shortPositions }), /positionIds/);
    bad(() => model.forward({ inputIds: x, mask: inputs.wideMask }), /mask.*\[1, 1, 8, 8\]/);
    bad(
      () => model.forward({ inputIds: x, prefix: { keys: [inputs.oneLayer], values: [inputs.oneLayer], length: 2 } }),
      /prefix layers/,
    );
    const wrong = [inputs.wrongHeads, inputs.wrongHeads];
    bad(
      () => model.forward({ inputIds: x, prefix: { keys: wrong, values: wrong, length: 2 } }),
      /prefix keys\/values: expected shape \[B, 2, 2, 4\]/,
    );
    bad(() => model.forward({}), /exactly one of inputIds and inputsEmbeds/);
    bad(() => model.getLinear('layers.9.self_attn.q_proj'), /no linear module/);
    expect(tf.memory().numTensors).toBe(before); // failed calls leave nothing behind
    tf.dispose([x, ...Object.values(inputs)]);
  });

  it('a forward pass leaks no tensors', () => {
    const before = tf.memory().numTensors;
    const input = ids([seq]);
    const out = model.forward({ inputIds: input, returnKV: true, cache: emptyCache() });
    tf.dispose([input, out.logits!, ...out.kv!.flatMap((l) => [l.keys, l.values, l.keysPreRope])]);
    disposeCache(out.cache!);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the returned cache and kv can be disposed independently', () => {
    const input = ids([seq.slice(0, 3)]);
    const out = model.forward({ inputIds: input, returnKV: true, cache: emptyCache() });
    tf.dispose([out.logits!, ...out.kv!.flatMap((l) => [l.keys, l.values, l.keysPreRope])]);
    const next = ids([seq.slice(3, 4)]);
    const step = model.forward({ inputIds: next, cache: out.cache! }); // would throw on disposed tensors
    expect(maxAbsDiff(step.logits!.dataSync(), logitsOf([seq.slice(0, 4)])[0][3])).toBeLessThan(1e-5);
    tf.dispose([input, next, step.logits!]);
    disposeCache(out.cache!);
    disposeCache(step.cache!);
  });
});

describe('linear modules', () => {
  it('lists HF-named modules and lets a wrapper replace one', () => {
    expect(model.linearNames()).toEqual([
      ...[0, 1].flatMap((i) =>
        ['q_proj', 'k_proj', 'v_proj', 'o_proj']
          .map((m) => `layers.${i}.self_attn.${m}`)
          .concat(['gate_proj', 'up_proj', 'down_proj'].map((m) => `layers.${i}.mlp.${m}`)),
      ),
      'lm_head',
    ]);
    const base = model.getLinear('layers.0.self_attn.v_proj');
    const before = logitsOf([seq]);
    // A wrapper that doubles the output changes the logits; putting the base back restores them.
    const doubled = {
      inFeatures: base.inFeatures,
      outFeatures: base.outFeatures,
      apply: (x: tf.Tensor2D) => tf.mul(base.apply(x), 2) as tf.Tensor2D,
      dispose: () => base.dispose(),
      base,
    };
    model.setLinear('layers.0.self_attn.v_proj', doubled);
    expect(maxAbsDiff(before[0].flat(), logitsOf([seq])[0].flat())).toBeGreaterThan(1e-3);
    expect(model.namedWeights().get('model.layers.0.self_attn.v_proj.weight')).toBeDefined(); // found through `base`
    model.setLinear('layers.0.self_attn.v_proj', base);
    expect(maxAbsDiff(before[0].flat(), logitsOf([seq])[0].flat())).toBe(0);
    expect(() =>
      model.setLinear('layers.0.self_attn.v_proj', {
        inFeatures: 3,
        outFeatures: 8,
        apply: (x: tf.Tensor2D) => x,
        dispose: () => {},
      }),
    ).toThrow(ModelError);
  });
});
