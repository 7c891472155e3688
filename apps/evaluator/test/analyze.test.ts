import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exportSniTasks,
  isControlTask,
  makeSyntheticTask,
  SYNTHETIC_FAMILIES,
  syntheticKinds,
  syntheticTasks,
} from '@hyperllama/datasets';
import { miniatureTasks, syntheticFamilyOf } from '@hyperllama/experiments';
import { disposeBackend } from '@hyperllama/runtime';
import { charTokenizer } from '@hyperllama/training';
import {
  ANALYZE_BUDGETS,
  analysisTrainEpisodes,
  defaultAnalysisTasks,
  trainShotsFor,
} from '../src/commands/analyze.js';
import { cli, writeTinyBase, writeUntrainedCheckpoint } from './helpers.js';

let tmp: string;
let modelDir: string;
let ckpt: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = mkdtempSync(join(tmpdir(), 'hyperllama-analyze-'));
  const tokenizer = charTokenizer();
  modelDir = join(tmp, 'base');
  const model = writeTinyBase(modelDir, tokenizer, { vocabSize: tokenizer.numTokens, padTokenId: 0 });
  ckpt = join(tmp, 'ckpt');
  writeUntrainedCheckpoint(model, modelDir, ckpt, { k: 2, r: 2, alpha: 4, seed: 1 });
  model.dispose();
});
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await disposeBackend();
});

/** Runs `analyze <name> --quick` and returns the parsed results.json after checking the files the report lists. */
async function quick(
  name: string,
  ...extra: string[]
): Promise<{ report: Record<string, any>; stdout: string; out: string }> {
  const out = join(tmp, name);
  const r = await cli('analyze', name, '--quick', '--out', out, '--backend', 'wasm', ...extra);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  const report = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  expect(report.format).toBe('hyperllama-analysis/1');
  expect(report.analysis).toBe(name);
  expect(report.figures.length).toBeGreaterThan(0);
  for (const f of report.figures) expect(readFileSync(join(out, f), 'utf8')).toMatch(/^<svg [^]*<\/svg>\n$/);
  const md = readFileSync(join(out, 'results.md'), 'utf8');
  for (const v of report.variants) expect(md).toContain(v);
  expect(md).toContain('## Interpretation');
  expect(report.interpretation.length).toBeGreaterThan(50);
  expect(report.table.rows.every((row: string[]) => row.length === report.table.header.length)).toBe(true);
  expect(r.stdout).toContain(join(out, 'results.json'));
  return { report, stdout: r.stdout, out };
}

describe('analysis defaults', () => {
  it("the default tasks are the main job's headline tasks for the screened families (held-out content, families in turn), never control tasks", () => {
    expect(ANALYZE_BUDGETS.full.tasks).toBe(16);
    expect(ANALYZE_BUDGETS.quick.tasks).toBe(2);
    for (const seed of [0, 1]) {
      const tasks = defaultAnalysisTasks(seed, ANALYZE_BUDGETS.full);
      expect(tasks).toHaveLength(16);
      expect(tasks.map((t) => t.name)).toEqual(
        miniatureTasks(seed, { headlineTasks: 16, controlTasksPerFamily: 1 }).headline.map((t) => t.name),
      );
      for (const t of tasks) {
        expect(isControlTask(t.name)).toBe(false);
        expect(t.name).toMatch(/_heldout$/);
      }
      // one family at a time: the first tasks are all of different families
      const families = tasks.map((t) => syntheticFamilyOf(t.name));
      expect(new Set(families.slice(0, 8)).size).toBe(8);
      const trained = new Set(syntheticTasks({ seed }).train.map((t) => t.name));
      for (const t of tasks) expect(trained.has(t.name.replace(/_heldout$/, ''))).toBe(false);
    }
    expect(defaultAnalysisTasks(0, ANALYZE_BUDGETS.quick).map((t) => t.name)).toEqual(
      defaultAnalysisTasks(0, ANALYZE_BUDGETS.full)
        .slice(0, 2)
        .map((t) => t.name),
    );
    // With the screen's families: the main job's headline tasks, those families in turn.
    const screened = defaultAnalysisTasks(0, ANALYZE_BUDGETS.full, ['lookup', 'constant', 'count']);
    expect(screened.map((t) => t.name)).toEqual(
      miniatureTasks(0, { headlineTasks: 16, controlTasksPerFamily: 1 }, ['lookup', 'constant', 'count']).headline.map(
        (t) => t.name,
      ),
    );
    expect(screened.slice(0, 3).map((t) => syntheticFamilyOf(t.name))).toEqual(['lookup', 'constant', 'count']);
    // No family passed the screen: the unscreened list.
    expect(defaultAnalysisTasks(0, ANALYZE_BUDGETS.full, []).map((t) => t.name)).toEqual(
      defaultAnalysisTasks(0, ANALYZE_BUDGETS.full).map((t) => t.name),
    );
    expect(trainShotsFor(16)).toEqual([2, 16]);
    expect(trainShotsFor(1)).toEqual([1, 1]);
  });

  it('without --train-tasks the analyses train on fresh-content episodes of the training kinds', () => {
    const kinds = new Set(syntheticKinds({ seed: 0 }).train.map((k) => `synth_${k.family}_${k.variant}`));
    const factory = analysisTrainEpisodes(0);
    expect(factory.description).toMatch(/fresh-content/);
    const source = factory(0, trainShotsFor(16));
    const episodes = Array.from({ length: 200 }, () => source.next());
    for (const e of episodes) {
      expect(kinds.has(e.task.name)).toBe(true);
      expect(e.examples.length).toBeGreaterThanOrEqual(2);
      expect(e.examples.length).toBeLessThanOrEqual(16);
    }
    // Two draws of the same kind carry different content (a fixed training task would repeat its constant answer).
    const constant = episodes.filter((e) => syntheticFamilyOf(e.task.name) === 'constant');
    const byKind = new Map<string, Set<string>>();
    for (const e of constant) byKind.set(e.task.name, (byKind.get(e.task.name) ?? new Set()).add(e.target.output));
    expect([...byKind.values()].some((answers) => answers.size >= 2)).toBe(true);
    // ... and the same seed gives the same stream (reproducible runs).
    const again = analysisTrainEpisodes(0)(0, trainShotsFor(16));
    expect(Array.from({ length: 5 }, () => again.next().examples)).toEqual(episodes.slice(0, 5).map((e) => e.examples));
  });
});

describe('hyperllama-eval analyze --quick', () => {
  it('masks: every variant is trained (on fresh-content episodes), evaluated on every task and reported with its prefix positions', async () => {
    const { report, out } = await quick('masks', '--model', modelDir);
    const ids = ['standard', 'positive', 'negative', 'last-1', 'last-8', 'k1', 'k2', 'k8', 'k16'];
    expect(report.variants).toEqual(ids);
    expect(Object.keys(report.evaluation.methods)).toEqual(ids);
    const tasks = report.configuration.tasks;
    expect(tasks).toEqual(defaultAnalysisTasks(0, ANALYZE_BUDGETS.quick).map((t) => t.name));
    expect(report.configuration.shots).toBe(16);
    expect(report.configuration.trainShots).toEqual([2, 16]);
    expect(report.configuration.training).toMatch(
      /^fresh-content episodes of \d+ synthetic task kinds .*, 2-16 shots$/,
    );
    expect(report.configuration.trainTasks).toMatch(/^fresh-content episodes/);
    const byId = Object.fromEntries(report.data.variants.map((v: any) => [v.id, v]));
    for (const id of ids) {
      expect(Object.keys(report.evaluation.methods[id].tasks)).toEqual(tasks);
      expect(byId[id].average).toBeGreaterThanOrEqual(0);
      expect(byId[id].average).toBeLessThanOrEqual(1);
    }
    // Prefix positions follow from the variant: k gists; the whole hyper input (more than k) for the positive control; none for the negative.
    for (const k of [1, 2, 8, 16]) expect(byId[`k${k}`].prefixPositions).toBe(k);
    expect(byId.standard.prefixPositions).toBe(4);
    expect(byId.positive.prefixPositions).toBeGreaterThan(byId.positive.exampleTokens);
    expect(byId.negative.prefixPositions).toBe(0);
    expect(byId.negative.trainSteps).toBe(0);
    expect(byId.standard.trainSteps).toBe(1);
    const svg = readFileSync(join(out, 'masks.svg'), 'utf8');
    for (const id of ids) expect(svg).toContain(`data-method="${id}"`);
    for (const id of ids) expect(byId[id].answerNll).toBeGreaterThan(0);
  });

  it('compression: the three contexts, both retentions and the correlations, per task', async () => {
    const { report } = await quick('compression', '--checkpoint', ckpt);
    expect(report.configuration.hyperllama).toBe('given checkpoint');
    expect(report.data.tasks).toHaveLength(2);
    for (const t of report.data.tasks) {
      for (const n of [t.answers, t.reconstruction])
        for (const c of ['none', 'prefix', 'full']) expect(Number.isFinite(n[c]) && n[c] > 0).toBe(true);
      expect(t.regeneration.prefix).toBeGreaterThanOrEqual(0);
    }
    expect(report.data.correlations.map((c: any) => c.measure)).toHaveLength(4);
    expect(report.table.rows.at(-1)[0]).toBe('mean');
  });

  it('sensitivity: HyperLlama and ICL over draws and orders, with mean, spread and worst case', async () => {
    const { report } = await quick('sensitivity', '--model', modelDir);
    expect(report.variants).toEqual(['hyperllama', 'icl']);
    for (const t of report.data.tasks) {
      for (const m of ['hyperllama', 'icl']) {
        expect(t[m].drawScores).toHaveLength(2);
        expect(t[m].orderScores).toHaveLength(1);
        expect(t[m].draws.worst).toBeLessThanOrEqual(t[m].draws.mean);
        expect(t[m].drawNlls).toHaveLength(2);
        for (const x of t[m].drawNlls) expect(x).toBeGreaterThan(0);
      }
    }
    expect(report.table.rows.filter((r: string[]) => r[0] === 'average').map((r: string[]) => r[1])).toEqual([
      'hyperllama',
      'icl',
    ]);
  });

  it('transfer: curves for the four initialisations on targets that have a related task', async () => {
    const { report, out } = await quick('transfer', '--model', modelDir);
    const inits = ['related-task', 'own-task', 'shared', 'random'];
    expect(report.variants).toEqual(inits);
    expect(report.configuration.pairs.map((p: any) => p.target)).toEqual(
      defaultAnalysisTasks(0, ANALYZE_BUDGETS.quick).map((t) => t.name),
    );
    for (const p of report.configuration.pairs) {
      // held-out target: the same family and variant with other held-out content
      expect(p.relation).toBe('same family');
      expect(p.source).toBe(`${p.target}_seed1`);
      expect(syntheticFamilyOf(p.source)).toBe(syntheticFamilyOf(p.target));
    }
    expect(report.configuration.sharedPrefix).toMatch(/fresh-content episodes/);
    for (const i of inits) {
      expect(report.evaluation.methods[i].curve.map((c: any) => c.step)).toEqual([0, 1]);
      expect(report.data.nllCurves[i].map((c: any) => c.step)).toEqual([0, 1]);
      for (const c of report.data.nllCurves[i]) expect(c.answerNll).toBeGreaterThan(0);
    }
    expect(readFileSync(join(out, 'transfer-nll.svg'), 'utf8').match(/data-series=/g)).toHaveLength(4);
    expect(existsSync(join(out, 'transfer.svg'))).toBe(true);
  });

  it('runs on user task files (evaluated and training tasks) and a subset of variants', async () => {
    const dir = join(tmp, 'user-tasks');
    const mk = (family: string, i: number) =>
      makeSyntheticTask(family, SYNTHETIC_FAMILIES.find((f) => f.name === family)!.variants[i], {
        seed: 5,
        numExamples: 6,
        numInstances: 3,
      });
    exportSniTasks([mk('symbol_rule', 0), { ...mk('constant', 0), metric: 'rougeL' }], join(dir, 'eval'));
    exportSniTasks([mk('reverse', 0)], join(dir, 'train'));
    const { report } = await quick(
      'masks',
      '--model',
      modelDir,
      '--tasks',
      join(dir, 'eval'),
      '--train-tasks',
      join(dir, 'train'),
      '--variants',
      'standard,positive',
      '--shots',
      '3',
    );
    expect(report.variants).toEqual(['standard', 'positive']);
    expect(report.configuration.tasks).toHaveLength(2);
    expect(report.configuration.shots).toBe(3);
    expect(report.configuration.training).toBe('episodes of 1 fixed training tasks, 3 shots'); // the task file, not fresh episodes
    expect(report.evaluation.methods.standard.metric).toBe('mixed'); // accuracy and ROUGE-L tasks together
  });

  it('rejects an unknown analysis or variant with exit code 2', async () => {
    const bad = await cli('analyze', 'everything', '--quick');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected one of masks, compression, sensitivity, transfer');
    const v = await cli(
      'analyze',
      'masks',
      '--quick',
      '--model',
      modelDir,
      '--variants',
      'standard,bogus',
      '--backend',
      'cpu',
      '--out',
      join(tmp, 'x'),
    );
    expect(v.code).toBe(2);
    expect(v.stderr).toContain('unknown bogus');
  });
});
