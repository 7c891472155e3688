import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collateHyperLlama, makeSyntheticTask, type HyperBatch } from '@hyperllama/datasets';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { HyperLlama, HypernetError, loadHyperLlama, saveHyperLlama, type DownstreamView } from '../src/index.js';
import { charEncoder, tinyModel } from './helpers.js';

const task = makeSyntheticTask('constant', 'c1', { seed: 1, numExamples: 8, numInstances: 8 });

/** Row 0 with 2 examples, row 1 with 3 (so row 0 is left-padded). */
function batchFor(hl: HyperLlama): HyperBatch {
  return collateHyperLlama(
    [
      { task, examples: task.examples.slice(0, 2), target: task.instances[0] },
      { task, examples: task.examples.slice(2, 5), target: task.instances[1] },
    ],
    { encoder: charEncoder, gistIds: hl.gistIds },
  );
}

function rowOf(b: HyperBatch, r: number): HyperBatch {
  const h = b.hyper;
  const first = h.attentionMask[r].indexOf(1);
  const cut = (x: number[][]) => [x[r].slice(first)];
  const d = b.downstream;
  const len = d.lengths[r];
  return {
    hyper: {
      inputIds: cut(h.inputIds),
      attentionMask: cut(h.attentionMask),
      gistPositions: [h.gistPositions[r].map((t) => t - first)],
      lengths: [h.lengths[r]],
      numExamples: [h.numExamples[r]],
    },
    downstream: {
      inputIds: [d.inputIds[r].slice(0, len)],
      attentionMask: [d.attentionMask[r].slice(0, len)],
      labels: [d.labels[r].slice(0, len)],
      lengths: [len],
    },
  };
}

function hiddenOf(hl: HyperLlama, batch: HyperBatch, opts: { gistViewFrom?: number[] } = {}): number[][][] {
  return tf.tidy(() => {
    const prefix = hl.encode(batch.hyper, opts);
    return hl.downstreamHidden(batch.downstream, prefix).arraySync();
  });
}

function prefixValues(hl: HyperLlama, batch: HyperBatch, gistViewFrom?: number[]): Float32Array {
  return tf.tidy(() => {
    const p = hl.encode(batch.hyper, { gistViewFrom });
    return tf.concat([...p.keys, ...p.values].map((t) => tf.reshape(t, [-1]))).dataSync() as Float32Array;
  });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const flat = (x: number[][]) => x.flat();

beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(() => disposeBackend());

describe('downstream views (attention-mask ablations)', () => {
  it('examples-and-gists equals one causal pass over [hyper input; downstream row] (hyper LoRA is the identity at init)', () => {
    const model = tinyModel(4);
    const hl = new HyperLlama(model, { k: 2, seed: 1, downstreamView: 'examples-and-gists' });
    const batch = batchFor(hl);
    const both = hiddenOf(hl, batch);
    for (const r of [0, 1]) {
      const one = rowOf(batch, r);
      const H = one.hyper.inputIds[0].length;
      const T = one.downstream.inputIds[0].length;
      const prefix = tf.tidy(() => hl.encode(one.hyper) as unknown as tf.TensorContainer) as unknown as ReturnType<
        typeof hl.encode
      >;
      expect(prefix.length).toBe(H); // every example token and every gist is a prefix position
      expect(prefix.positionOffsets).toEqual([H]);
      prefix.dispose();
      // Reference: the concatenated sequence under a plain causal mask, read at the downstream rows.
      const reference = tf.tidy(() => {
        const ids = tf.tensor2d([[...one.hyper.inputIds[0], ...one.downstream.inputIds[0]]], undefined, 'int32');
        const h = model.forward({ inputIds: ids, extraEmbeddings: hl.gistEmbeddings, returnHidden: true }).hidden!;
        return tf.slice(h, [0, H, 0], [1, T, -1]).arraySync()[0];
      });
      // Row r of the padded batch (prefix padding hidden by the prefix's attention mask) gives the same states.
      expect(maxDiff(flat(both[r].slice(0, T)), flat(reference))).toBeLessThan(1e-4);
    }
    hl.dispose();
    model.dispose();
  });

  it('nothing equals a pass with no prefix at all, whatever the examples', () => {
    const model = tinyModel(5);
    const hl = new HyperLlama(model, { k: 3, seed: 2, downstreamView: 'nothing' });
    const batch = batchFor(hl);
    const withHidden = hiddenOf(hl, batch);
    const plain = tf.tidy(() =>
      model
        .forward({
          inputIds: tf.tensor2d(batch.downstream.inputIds, undefined, 'int32'),
          attentionMask: tf.tensor2d(batch.downstream.attentionMask, undefined, 'int32'),
          returnHidden: true,
        })
        .hidden!.arraySync(),
    );
    batch.downstream.lengths.forEach((len, r) =>
      expect(maxDiff(flat(withHidden[r].slice(0, len)), flat(plain[r].slice(0, len)))).toBeLessThan(1e-4),
    );
    // The standard view on the same weights does depend on the prefix (the control is not vacuous).
    const standard = new HyperLlama(tinyModel(5), { k: 3, seed: 2 });
    const g = hiddenOf(standard, batchFor(standard));
    expect(
      maxDiff(flat(g[0].slice(0, batch.downstream.lengths[0])), flat(plain[0].slice(0, batch.downstream.lengths[0]))),
    ).toBeGreaterThan(1e-3);
    standard.dispose();
    standard.model.dispose();
    hl.dispose();
    model.dispose();
  });

  it('gistViewFrom hides the earlier examples from the gists (a 2-layer model cannot leak them into the prefix)', () => {
    const model = tinyModel(6);
    const hl = new HyperLlama(model, { k: 2, seed: 3 });
    const batch = rowOf(batchFor(hl), 1); // BOS, 3 examples, 2 gists
    const gists = batch.hyper.gistPositions[0];
    const from = Math.floor(gists[0] / 2);
    const perturbed = (col: number): HyperBatch => {
      const ids = batch.hyper.inputIds[0].slice();
      ids[col] = ids[col] === 40 ? 41 : 40;
      return { ...batch, hyper: { ...batch.hyper, inputIds: [ids] } };
    };
    const base = prefixValues(hl, batch, [from]);
    // In layer 0 the gists read only tokens from `from` on; layer 1's gist K/V come from those reads: earlier tokens cannot reach them.
    expect(maxDiff(prefixValues(hl, perturbed(from - 1), [from]), base)).toBe(0);
    expect(maxDiff(prefixValues(hl, perturbed(from), [from]), base)).toBeGreaterThan(1e-6);
    // Without the restriction the same earlier token does change the prefix.
    expect(maxDiff(prefixValues(hl, perturbed(from - 1)), prefixValues(hl, batch))).toBeGreaterThan(1e-6);
    expect(() => prefixValues(hl, batch, [0])).toThrow(HypernetError);
    expect(() => prefixValues(hl, batch, [gists[0] + 1])).toThrow(/gistViewFrom\[0\]/);
    hl.dispose();
    model.dispose();
  });

  it('rejects an unknown view and round-trips a non-standard one through a checkpoint', () => {
    const model = tinyModel(7);
    expect(() => new HyperLlama(model, { k: 2, downstreamView: 'everything' as DownstreamView })).toThrow(
      /downstreamView/,
    );
    const hl = new HyperLlama(tinyModel(7), { k: 2, seed: 1, downstreamView: 'examples-and-gists' });
    const dir = mkdtempSync(join(tmpdir(), 'hl-view-'));
    try {
      saveHyperLlama(hl, dir, { basePath: null });
      expect(JSON.parse(readFileSync(join(dir, 'hypernet_config.json'), 'utf8')).downstream_view).toBe(
        'examples-and-gists',
      );
      const { hyperllama } = loadHyperLlama(dir, model);
      expect(hyperllama.downstreamView).toBe('examples-and-gists');
      hyperllama.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      hl.dispose();
      hl.model.dispose();
      model.dispose();
    }
  });
});
