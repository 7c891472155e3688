import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EpisodeSampler,
  collateHyperLlama,
  collateZeroShot,
  makeSyntheticTask,
  type HyperBatch,
} from '@hyperllama/datasets';
import { AdamW, disposeBackend, initBackend } from '@hyperllama/runtime';
import {
  HyperLlama,
  HypernetError,
  PrefixTuning,
  loadHyperLlama,
  prefixedHidden,
  saveHyperLlama,
  trainStep,
} from '../src/index.js';
import { charEncoder, snapshot, tinyModel, varData } from './helpers.js';

const tasks = ['c1', 'c2'].map((v) => makeSyntheticTask('constant', v, { seed: 1, numExamples: 8, numInstances: 8 }));

function batchFor(hl: HyperLlama, seed: number, size = 3): HyperBatch {
  const sampler = new EpisodeSampler(tasks, { seed, k: 2 });
  return collateHyperLlama(
    Array.from({ length: size }, () => sampler.next()),
    { encoder: charEncoder, gistIds: hl.gistIds },
  );
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(() => disposeBackend());

describe('HyperLlama training touches exactly the trainable set', () => {
  it('updates gist rows, hyper and downstream LoRA; every base weight stays bit-identical', async () => {
    const model = tinyModel(3);
    const before = snapshot(model);
    const hl = new HyperLlama(model, {
      k: 2,
      hyper: { r: 4, alpha: 8 },
      downstream: { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] },
      seed: 5,
    });
    const params = hl.trainableVariables();
    const names = Object.keys(params);
    expect(names[0]).toBe('gist_embeddings');
    // 7 linears of layer 0 + k_proj, v_proj of the last layer (nothing else there can change the prefix), × (A, B)
    expect(names.filter((n) => n.startsWith('hyper.')).length).toBe(2 * (7 + 2));
    expect(names.filter((n) => n.startsWith('downstream.')).length).toBe(2 * 2 * 2);
    expect(names.length).toBe(1 + 18 + 8);
    for (const v of model.namedWeights().values()) expect(v.trainable).toBe(false);

    // Gradients at step 1: B factors start at 0, so only they (and the gist rows) can move; nothing reaches the base.
    const batch = batchFor(hl, 0);
    const { grads } = tf.variableGrads(() => hl.loss(batch, { training: true }), Object.values(params));
    const byName = new Map(Object.entries(params).map(([n, v]) => [v.name, n]));
    const gradNames = Object.keys(grads).map((g) => byName.get(g));
    expect(new Set(gradNames)).toEqual(new Set(names));
    const norm = (n: string) => tf.tidy(() => tf.norm(grads[params[n].name]).dataSync()[0]);
    expect(norm('gist_embeddings')).toBeGreaterThan(0); // flows back through the prefix into the gist rows
    expect(norm('hyper.layers.0.self_attn.q_proj.lora_B')).toBeGreaterThan(0);
    expect(norm('downstream.layers.1.self_attn.v_proj.lora_B')).toBeGreaterThan(0);
    tf.dispose(Object.values(grads));

    const start = new Map(names.map((n) => [n, varData(params[n])]));
    const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0 });
    for (let s = 0; s < 3; s++) await trainStep(params, opt, () => hl.loss(batchFor(hl, s), { training: true }));
    for (const n of names) expect(varData(params[n]), n).not.toEqual(start.get(n));
    for (const [n, v] of model.namedWeights()) expect(varData(v), n).toEqual(before.get(n));
    opt.dispose();
    hl.dispose();
    model.dispose();
  });
});

describe('prefix semantics', () => {
  it('the prefix depends on the examples; the downstream pass runs without the hyper adapter', () => {
    const model = tinyModel(4);
    const hl = new HyperLlama(model, { k: 2, seed: 1 });
    // Give the hyper LoRA non-zero B so that it changes outputs.
    for (const [n, v] of Object.entries(hl.trainableVariables()))
      if (n.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.2, 'float32', 7));
    const b = batchFor(hl, 2, 2);
    const other = structuredClone(b);
    const g = b.hyper.gistPositions[0][0];
    other.hyper.inputIds[0][g - 3] = (other.hyper.inputIds[0][g - 3] % 90) + 4; // change one example character
    const keysOf = (batch: HyperBatch) => tf.tidy(() => hl.encode(batch.hyper).keys[1].dataSync() as Float32Array);
    const k1 = keysOf(b);
    const k2 = keysOf(other);
    const rowSize = k1.length / 2;
    expect(k1.slice(0, rowSize)).not.toEqual(k2.slice(0, rowSize)); // row 0 changed
    expect(k1.slice(rowSize)).toEqual(k2.slice(rowSize)); // row 1 did not

    // Downstream pass: equal to the bare base model behind the same prefix (adapter state restored afterwards).
    const prefix = hl.encode(b.hyper);
    const viaHyper = tf.tidy(() => hl.downstreamHidden(b.downstream, prefix).dataSync() as Float32Array);
    const fresh = tinyModel(4); // same seed: same base weights, no adapters at all
    const bare = tf.tidy(() => prefixedHidden(fresh, b.downstream, prefix).dataSync() as Float32Array);
    expect(viaHyper).toEqual(bare);
    prefix.dispose();
    fresh.dispose();
    hl.dispose();
    model.dispose();
  });
});

describe('live tensors', () => {
  it('are the same after step 1 and step 200', async () => {
    const model = tinyModel(6, { numHiddenLayers: 1 });
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2 }, seed: 1 });
    const params = hl.trainableVariables();
    const opt = new AdamW(params, { lr: 1e-3 });
    const batch = batchFor(hl, 1, 1);
    let afterFirst = 0;
    for (let s = 1; s <= 200; s++) {
      await trainStep(params, opt, () => hl.loss(batch, { training: true }), { maxGradNorm: 1 });
      if (s === 1) afterFirst = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(afterFirst);
    opt.dispose();
    hl.dispose();
    model.dispose();
  });
});

describe('checkpoints', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hypernet-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips (same prefix) and refuses a different base', () => {
    const model = tinyModel(8);
    const hl = new HyperLlama(model, { k: 3, scheme: 'continue', downstream: { r: 2 }, seed: 2 });
    for (const v of Object.values(hl.trainableVariables())) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', 3));
    const b = batchFor(hl, 3, 2);
    const before = tf.tidy(() => hl.loss(b).dataSync()[0]);
    saveHyperLlama(hl, join(dir, 'ckpt'), { basePath: 'tiny-random-8' });

    const again = tinyModel(8);
    const { hyperllama, config } = loadHyperLlama(join(dir, 'ckpt'), again);
    expect(config).toMatchObject({ k: 3, scheme: 'continue', base_model: { path: 'tiny-random-8' } });
    expect(tf.tidy(() => hyperllama.loss(b).dataSync()[0])).toBe(before);

    const otherBase = tinyModel(9);
    expect(() => loadHyperLlama(join(dir, 'ckpt'), otherBase)).toThrowError(HypernetError);
    try {
      loadHyperLlama(join(dir, 'ckpt'), otherBase);
    } catch (e) {
      expect((e as HypernetError).code).toBe('HYPERNET_BASE_MISMATCH');
    }
    for (const m of [model, again, otherBase]) m.dispose();
  });
});

describe('PrefixTuning', () => {
  it('random init follows the key/value statistics; only the prefix trains', async () => {
    const model = tinyModel(10);
    const before = snapshot(model);
    const sampleIds = [charEncoder.encode('Input: apple\nOutput: zorp')];
    const pt = PrefixTuning.random(model, 4, { sampleIds, seed: 1 });
    const real = tf.tidy(() => {
      const kv = model.forward({ inputIds: tf.tensor2d(sampleIds, undefined, 'int32'), returnKV: true }).kv!;
      return [tf.moments(kv[1].values).mean.dataSync()[0], Math.sqrt(tf.moments(kv[1].values).variance.dataSync()[0])];
    });
    const mine = tf.tidy(() => [
      tf.moments(pt.values[1]).mean.dataSync()[0],
      Math.sqrt(tf.moments(pt.values[1]).variance.dataSync()[0]),
    ]);
    expect(Math.abs(mine[0] - real[0])).toBeLessThan(0.35 * real[1] + 1e-3);
    expect(mine[1] / real[1]).toBeGreaterThan(0.6);
    expect(mine[1] / real[1]).toBeLessThan(1.5);

    const episodes = new EpisodeSampler(tasks, { seed: 1, k: 0 });
    const batch = collateZeroShot(
      Array.from({ length: 4 }, () => episodes.next()),
      { encoder: charEncoder },
    );
    const params = pt.trainableVariables();
    const opt = new AdamW(params, { lr: 0.05, weightDecay: 0 });
    const first = (await trainStep(params, opt, () => pt.loss(model, batch, { training: true }))).loss;
    let last = first;
    for (let s = 0; s < 30; s++)
      last = (await trainStep(params, opt, () => pt.loss(model, batch, { training: true }))).loss;
    expect(last).toBeLessThan(first - 0.2);
    for (const [n, v] of model.namedWeights()) expect(varData(v), n).toEqual(before.get(n));
    opt.dispose();
    pt.dispose();
    model.dispose();
  });
});

describe('the prefix-swap control', () => {
  it('equals the loss of a batch whose hyper inputs were rotated by hand, and the own loss when every row reads the same', () => {
    const model = tinyModel(3);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 4, alpha: 8 }, seed: 5 });
    // Make the prefix depend on its input: the LoRA B factors start at 0, so move them off zero.
    for (const v of Object.values(hl.trainableVariables()))
      v.assign(tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.05, 'float32', 1))));
    const batch = batchFor(hl, 0, 3);
    const roll = <T>(xs: T[]): T[] => [...xs.slice(1), xs[0]];
    const h = batch.hyper;
    const rotated: HyperBatch = {
      hyper: {
        inputIds: roll(h.inputIds),
        attentionMask: roll(h.attentionMask),
        gistPositions: roll(h.gistPositions),
        lengths: roll(h.lengths),
        numExamples: roll(h.numExamples),
      },
      downstream: batch.downstream,
    };
    const swapped = tf.tidy(() => hl.swappedLoss(batch).dataSync()[0]);
    const byHand = tf.tidy(() => hl.loss(rotated).dataSync()[0]);
    const own = tf.tidy(() => hl.loss(batch).dataSync()[0]);
    expect(Math.abs(swapped - byHand)).toBeLessThan(1e-5);
    expect(Math.abs(swapped - own)).toBeGreaterThan(1e-4); // the rows differ, so the control is not vacuous

    // Every row the same episode: another row's prefix is the row's own, so the gap is exactly 0.
    const one = new EpisodeSampler(tasks, { seed: 9, k: 2 }).next();
    const same = collateHyperLlama([one, one, one], { encoder: charEncoder, gistIds: hl.gistIds });
    const [a, b] = tf.tidy(() => [hl.loss(same).dataSync()[0], hl.swappedLoss(same).dataSync()[0]]);
    expect(b).toBe(a);
    expect(() => hl.swappedLoss(collateHyperLlama([one], { encoder: charEncoder, gistIds: hl.gistIds }))).toThrow(
      HypernetError,
    );
    hl.dispose();
    model.dispose();
  });
});
