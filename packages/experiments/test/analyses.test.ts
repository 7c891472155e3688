import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  collateHyperLlama,
  EpisodeSampler,
  makeSyntheticTask,
  SYNTHETIC_FAMILIES,
  syntheticKinds,
  syntheticTasks,
  type Episode,
  type Task,
} from '@hyperllama/datasets';
import {
  defaultMaskVariants,
  freshTrainEpisodes,
  syntheticFamilyOf,
  writeAnalysis,
  type AnalysisReport,
  type AnalysisSetup,
  type TrainEpisodes,
} from '../src/index.js';
import {
  averageWithError,
  describeTraining,
  gistViewFrom,
  pearson,
  ranks,
  spearman,
  trainVariant,
  trainingEpisodes,
} from '../src/analyses/common.js';
import { renderDotPlot, renderScatter } from '../src/analyses/report.js';
import { demonstrationDraws } from '../src/analyses/sensitivity.js';
import { relatedHeldOutTask, relatedTask, syntheticKindOf, trainSharedPrefix } from '../src/analyses/transfer.js';
import { EvalError, planTasks } from '@hyperllama/eval';
import { charTokenizer, tinyModel } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const variant = (family: string, i = 0) => SYNTHETIC_FAMILIES.find((f) => f.name === family)!.variants[i];
const task = (family: string, i = 0, extra: Partial<Task> = {}): Task => ({
  ...makeSyntheticTask(family, variant(family, i), { seed: 3, numExamples: 10, numInstances: 6 }),
  ...extra,
});

describe('statistics', () => {
  it('Pearson and Spearman match hand-computed values; ranks average ties', () => {
    expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(pearson([1, 2, 3], [6, 4, 2])).toBeCloseTo(-1, 12);
    // dx = dy up to a swap of the middle pair: Σdxdy = 4, Σdx² = Σdy² = 5.
    expect(pearson([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(0.8, 12);
    expect(Number.isNaN(pearson([1, 1, 1], [1, 2, 3]))).toBe(true);
    expect(ranks([10, 20, 20, 5])).toEqual([2, 3.5, 3.5, 1]);
    // A monotone but non-linear relation: Spearman 1, Pearson below 1.
    expect(spearman([1, 2, 3, 4], [1, 8, 27, 1000])).toBeCloseTo(1, 12);
    expect(pearson([1, 2, 3, 4], [1, 8, 27, 1000])).toBeLessThan(0.9);
  });

  it('the macro average and its standard error follow from the per-instance scores', () => {
    const r = averageWithError([
      { task: 'a', metric: 'accuracy', scores: [1, 0] },
      { task: 'b', metric: 'rougeL', scores: [100, 100, 100, 100] },
    ]);
    expect(r.average).toBeCloseTo(0.75, 12); // (0.5 + 1) / 2
    expect(r.stderr).toBeCloseTo(Math.sqrt(0.25 / 2) / 2, 12); // task a: variance 0.25 over 2 instances; task b: none
  });
});

describe('gistViewFrom', () => {
  it('points at the first token of the last m packed demonstrations, whatever the left padding', () => {
    const t = task('reverse');
    const rows = [t.examples.slice(0, 2), t.examples.slice(2, 6)].map((examples) => ({
      task: t,
      examples,
      target: t.instances[0],
    }));
    const { hyper } = collateHyperLlama(rows, { encoder: charTokenizer, gistIds: [98, 99] });
    for (const m of [1, 2, 3]) {
      const from = gistViewFrom(hyper, rows, m, { encoder: charTokenizer });
      rows.forEach((row, b) => {
        const n = hyper.numExamples[b];
        const first = hyper.attentionMask[b].indexOf(1);
        if (m >= n) return expect(from[b]).toBe(first + 1); // nothing hidden
        const rest = charTokenizer.decode(hyper.inputIds[b].slice(from[b]));
        const expected = charTokenizer.decode(charTokenizer.encode(`Input: ${row.examples[n - m].input}\nOutput:`)); // this tokenizer has no newline
        expect(rest.startsWith(expected)).toBe(true);
        expect(charTokenizer.decode(hyper.inputIds[b].slice(from[b] - 1)).startsWith(expected)).toBe(false);
        expect(hyper.inputIds[b][first]).toBe(1); // BOS before it
      });
    }
    expect(() => gistViewFrom(hyper, rows, 0, { encoder: charTokenizer })).toThrow(EvalError);
  });
});

describe('mask variants and related tasks', () => {
  it('the default variants cover the standard mask, both controls, the last-m restrictions and k = 1..16', () => {
    const v = defaultMaskVariants(4, 4);
    expect(v.map((x) => x.id)).toEqual([
      'standard',
      'positive',
      'negative',
      'last-1',
      'last-2',
      'k1',
      'k2',
      'k8',
      'k16',
    ]);
    expect(v.find((x) => x.id === 'positive')!.view).toBe('examples-and-gists');
    expect(v.find((x) => x.id === 'negative')!.view).toBe('nothing');
    expect(v.find((x) => x.id === 'k16')!.k).toBe(16);
    expect(defaultMaskVariants(2, 2).map((x) => x.id)).toEqual([
      'standard',
      'positive',
      'negative',
      'last-1',
      'k1',
      'k4',
      'k8',
      'k16',
    ]);
  });

  it('a related task is another parameter of the same family, else the same category, else none', () => {
    expect(syntheticFamilyOf('synth_symbol_rule_abc')).toBe('symbol_rule');
    expect(syntheticFamilyOf('synth_date_format_x')).toBe('date_format');
    expect(syntheticFamilyOf('task1_sni')).toBeUndefined();
    const sortA = task('sort', 0);
    const sortB = task('sort', 1);
    const reverse = task('reverse');
    expect(relatedTask(sortA, [reverse, sortA, sortB])).toEqual({ task: sortB, relation: 'same family' });
    const sni = { ...reverse, name: 'task001', category: 'Translation' };
    const sni2 = { ...reverse, name: 'task002', category: 'Translation' };
    expect(relatedTask(sni, [sortA, sni, sni2])).toEqual({ task: sni2, relation: 'same category' });
    expect(relatedTask({ ...sni, category: 'Other' }, [sortA, sni2])).toBeUndefined();
  });
});

describe('held-out synthetic tasks and their related tasks', () => {
  const heldOut = syntheticTasks({ seed: 0 }).heldOutParams;

  it('syntheticFamilyOf and syntheticKindOf read held-out task names', () => {
    expect(syntheticFamilyOf('synth_symbol_rule_vowel_first_l2_heldout')).toBe('symbol_rule');
    expect(syntheticFamilyOf('synth_case_title_heldout_seed1')).toBe('case');
    expect(syntheticKindOf('synth_symbol_rule_vowel_first_l2_heldout')).toEqual({
      family: 'symbol_rule',
      variant: 'vowel_first_l2',
      pool: 'heldout',
    });
    expect(syntheticKindOf('synth_reverse_words')).toEqual({ family: 'reverse', variant: 'words', pool: 'train' });
    expect(syntheticKindOf('synth_case_title_heldout_seed1')).toBeUndefined();
    for (const t of heldOut) expect(syntheticKindOf(t.name)?.pool).toBe('heldout');
  });

  it("a held-out target's related task is its family and variant with other held-out content, under another name", () => {
    for (const family of ['lookup', 'constant', 'symbol_rule']) {
      const target = heldOut.find((t) => syntheticFamilyOf(t.name) === family)!;
      const r = relatedTask(target, heldOut, { seed: 0 })!;
      expect(r.relation).toBe('same family');
      expect(r.task.name).toBe(`${target.name}_seed1`);
      expect(syntheticFamilyOf(r.task.name)).toBe(family);
      expect(r.task.examples).toHaveLength(target.examples.length);
      expect(r.task.instances).toHaveLength(target.instances.length);
      // Other content: the same kind drawn with seed 1, not the target's mapping.
      const { name: _n, ...fromSeed1 } = makeSyntheticTask(
        syntheticKindOf(target.name)!.family,
        syntheticKindOf(target.name)!.variant,
        { seed: 1, pool: 'heldout' },
      );
      const { name: _m, ...related } = r.task;
      expect(related).toEqual(fromSeed1);
      expect(r.task.examples).not.toEqual(target.examples);
    }
    // The seed the target was made with is skipped: never the target itself.
    expect(relatedHeldOutTask(heldOut[0], -1)!.name).toBe(`${heldOut[0].name}_seed1`);
    // Without a seed, or for a target that is not held-out synthetic, the pool decides.
    const target = heldOut[0];
    const sameFamily = { ...target, name: `${target.name}_copy` };
    expect(relatedTask(target, [sameFamily])).toEqual({ task: sameFamily, relation: 'same family' });
    expect(relatedHeldOutTask(task('reverse'), 0)).toBeUndefined();
  });
});

describe('training data of the analyses', () => {
  const kinds = syntheticKinds({ seed: 0 }).train;
  const base = {
    tokenizer: charTokenizer,
    evalTasks: [],
    seed: 7,
    shots: 4,
    maxInstances: 2,
    maxLength: 160,
    maxHyperLength: 160,
    maxNewTokens: 4,
    batchSize: 4,
  };

  it('fresh-content training episodes: training kinds only, shots in the range, new content for the same kind', () => {
    const source = freshTrainEpisodes(kinds)(0, [2, 16]);
    const episodes = Array.from({ length: 300 }, () => source.next());
    const trainNames = new Set(kinds.map((k) => `synth_${k.family}_${k.variant}`));
    for (const e of episodes) {
      expect(trainNames.has(e.task.name)).toBe(true);
      expect(e.examples.length).toBeGreaterThanOrEqual(2);
      expect(e.examples.length).toBeLessThanOrEqual(16);
    }
    // Two draws of the same kind carry different content: constant answers and lookup tables change from episode to episode.
    const byKind = new Map<string, Episode[]>();
    for (const e of episodes) byKind.set(e.task.name, [...(byKind.get(e.task.name) ?? []), e]);
    const answers = (family: string) =>
      [...byKind.entries()]
        .filter(([name]) => syntheticFamilyOf(name) === family)
        .map(([, es]) => {
          // input → the answers it got over the kind's episodes (a fixed task would give each input one answer)
          const seen = new Map<string, Set<string>>();
          for (const x of es.flatMap((e) => [...e.examples, e.target]))
            seen.set(x.input, (seen.get(x.input) ?? new Set()).add(x.output));
          return {
            episodes: es.length,
            distinctOutputs: new Set(es.flatMap((e) => [...e.examples, e.target].map((x) => x.output))).size,
            remapped: [...seen.values()].some((o) => o.size >= 2),
          };
        });
    // constant: every episode of a kind has one answer, and it changes between episodes of the same kind.
    expect(answers('constant').some((c) => c.episodes >= 2 && c.distinctOutputs >= 2)).toBe(true);
    // lookup and symbol_rule: the same input gets different answers in different episodes of the same kind.
    for (const family of ['lookup', 'symbol_rule']) expect(answers(family).some((c) => c.remapped)).toBe(true);
    expect(freshTrainEpisodes(kinds).description).toMatch(/fresh-content/);
  });

  it('trainingEpisodes prefers the episode source; fixed tasks only without it; neither is an error', () => {
    const calls: Array<[number, number | [number, number]]> = [];
    const fresh = freshTrainEpisodes(kinds);
    const spy: TrainEpisodes = Object.assign(
      (seed: number, k: number | [number, number]) => (calls.push([seed, k]), fresh(seed, k)),
      { description: 'spy episodes' },
    );
    const fixed = [task('reverse'), task('case')];
    const setup: AnalysisSetup = {
      ...base,
      loadModel: () => tinyModel(0),
      trainEpisodes: spy,
      trainTasks: fixed,
      trainShots: [2, 4],
    };
    expect(trainingEpisodes(setup).next().task.name.startsWith('synth_')).toBe(true);
    expect(calls).toEqual([[7, [2, 4]]]);
    expect(describeTraining(setup)).toBe('spy episodes, 2-4 shots');
    const fromTasks = trainingEpisodes({ ...setup, trainEpisodes: undefined });
    expect(fromTasks).toBeInstanceOf(EpisodeSampler);
    expect(fromTasks.next().examples).toHaveLength(4); // the maximum of the range
    expect(describeTraining({ ...setup, trainEpisodes: undefined })).toBe(
      'episodes of 2 fixed training tasks, 4 shots',
    );
    expect(() => trainingEpisodes({ ...base, loadModel: () => tinyModel(0) })).toThrow(EvalError);
  });

  it('trainVariant and the shared prefix train on the episode source (not the training tasks)', async () => {
    const calls: Array<number | [number, number]> = [];
    let drawn = 0;
    const fresh = freshTrainEpisodes(kinds);
    const spy: TrainEpisodes = (seed, k) => {
      calls.push(k);
      const s = fresh(seed, k);
      return { next: () => (drawn++, s.next()) };
    };
    // trainTasks would throw if sampled: EpisodeSampler needs at least one task, and here there is none to draw from.
    const setup: AnalysisSetup = {
      ...base,
      loadModel: () => tinyModel(1),
      trainEpisodes: spy,
      trainTasks: [],
      trainShots: [2, 3],
    };
    const { hl, steps, firstLoss, lastLoss } = await trainVariant(setup, { k: 2, steps: 2, batchSize: 2 });
    try {
      expect(steps).toBe(2);
      expect(Number.isFinite(firstLoss) && Number.isFinite(lastLoss)).toBe(true);
      expect(calls).toEqual([[2, 3]]);
      expect(drawn).toBe(4);
      const pt = await trainSharedPrefix(setup, hl.model, { length: 2, steps: 1, batchSize: 2 });
      pt.dispose();
      expect(calls).toEqual([[2, 3], 0]);
      expect(drawn).toBe(8); // one batch to initialise, one per step
    } finally {
      hl.dispose();
      hl.model.dispose();
    }
  });
});

describe('demonstrationDraws', () => {
  it('varies the demonstrations (sets, then orders of the first set) and keeps the evaluated instances', () => {
    const tasks = [task('reverse'), task('case')];
    const plans = planTasks(tasks, { shots: 4, maxInstances: 3, seed: 0 });
    const sets = demonstrationDraws(plans, { draws: 3, orders: 2, shots: 4, seed: 0 });
    expect(sets.map((s) => `${s.kind}${s.index}`)).toEqual(['draw0', 'draw1', 'draw2', 'order0', 'order1']);
    for (const s of sets) {
      s.plans.forEach((p, t) => {
        expect(p.instances).toBe(plans[t].instances);
        expect(p.examples).toHaveLength(4);
        expect(p.examples.every((e) => tasks[t].examples.includes(e))).toBe(true);
      });
    }
    expect(sets[1].plans[0].examples).not.toEqual(sets[0].plans[0].examples);
    const sorted = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).sort();
    expect(sorted(sets[3].plans[0].examples)).toEqual(sorted(sets[0].plans[0].examples));
    expect(() => demonstrationDraws(plans, { draws: 1, orders: 0, shots: 4, seed: 0 })).toThrow(/draws/);
  });
});

describe('figures and report files', () => {
  it('scatter and dot plots mark every finite point with its data', () => {
    const s = renderScatter(
      [
        { x: 0.5, y: 40, label: 'a<b' },
        { x: 2, y: 80, label: 'c' },
        { x: NaN, y: 10, label: 'skipped' },
      ],
      { title: 't', xLabel: 'x', yLabel: 'y' },
    );
    expect(s.match(/data-label=/g)).toHaveLength(2);
    expect(s).toContain('data-label="a&lt;b" data-x="0.5" data-y="40"');
    expect(s).not.toContain('skipped');
    const d = renderDotPlot(
      ['t1', 't2'],
      [
        { name: 'hyperllama', values: [[10, 20], [30]] },
        { name: 'icl', values: [[50], [60, 70, 80]] },
      ],
      { title: 't', yLabel: 'y' },
    );
    expect(d.match(/data-series="hyperllama"/g)).toHaveLength(3);
    expect(d.match(/data-series="icl" data-group="t2"/g)).toHaveLength(3);
  });

  it('writeAnalysis refuses a report whose listed figure is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'analysis-'));
    const r: AnalysisReport = {
      format: 'hyperllama-analysis/1',
      analysis: 'masks',
      created: 'now',
      configuration: {},
      variants: [],
      table: { header: ['a'], rows: [] },
      data: {},
      interpretation: '',
      figures: ['x.svg'],
    };
    try {
      expect(() => writeAnalysis(r, {}, dir)).toThrow(/x\.svg/);
      expect(writeAnalysis({ ...r, figures: [] }, {}, dir).figures).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
