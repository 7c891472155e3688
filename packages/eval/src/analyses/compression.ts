import * as tf from '@tensorflow/tfjs';
import { DEFAULT_TEMPLATE, IGNORE_INDEX, collateFewShot, collateZeroShot, type LmBatch } from '@hyperllama/datasets';
import { prefixedHidden, type HyperLlama, type PrefixLike } from '@hyperllama/hypernet';
import { continuationText, generate } from '@hyperllama/llama-model';
import { rougeLScore } from '../metrics.js';
import { evaluateMethod, labelLogProbs, planTasks, type TaskPlan } from '../protocols.js';
import { disposeHyperLlama, disposePrefix, evalSettings, mean, obtainHyperLlama, pearson, spearman, taskHyperBatch, unitScore, variantPrefix, withAdapters, type AnalysisSetup } from './common.js';
import { fixed, pct, renderScatter, type AnalysisReport } from './report.js';

export interface CompressionAnalysisOptions {
  /** k of the HyperLlama trained when the setup has none. */
  k: number;
  /** Training steps of that HyperLlama. */
  steps: number;
  /** Longest greedy reconstruction, in tokens (default 96). */
  maxReconstructionTokens?: number;
}

/** Negative log-likelihood per token under three contexts: nothing, the task's prefix, the full demonstrations. */
interface Nll {
  none: number;
  prefix: number;
  full: number;
}

interface TaskRow {
  task: string;
  /** HyperLlama's score on the task, on [0, 1]. */
  score: number;
  demonstrations: number;
  /** (a) The demonstrations' own answers. */
  answers: Nll;
  /** (none − prefix) / (none − full): 0 = the prefix helps as much as nothing, 1 = as much as the full examples. */
  answerRetention: number;
  /** (b) The whole demonstration text, teacher-forced ("full" = the text shown once before: copying). */
  reconstruction: Nll;
  reconstructionRetention: number;
  /** (b) ROUGE-L (on [0, 1]) of a greedy continuation of BOS against the demonstration text, behind the prefix and without. */
  regeneration: { prefix: number; none: number };
}

const retention = (n: Nll): number => (n.none - n.full > 1e-6 ? (n.none - n.prefix) / (n.none - n.full) : NaN);

/** Mean negative log-likelihood per labelled token of `batch` (token-weighted over rows). */
function nll(hl: HyperLlama, batch: LmBatch, prefix?: PrefixLike): number {
  const model = hl.model;
  const adapters = hl.hasDownstreamAdapter ? ['downstream'] : [];
  const lp = withAdapters(model, adapters, () => {
    const hidden = prefix
      ? prefixedHidden(model, batch, prefix)
      : tf.tidy(() => model.forward({ inputIds: tf.tensor2d(batch.inputIds, undefined, 'int32'), attentionMask: tf.tensor2d(batch.attentionMask, undefined, 'int32'), returnHidden: true }).hidden!);
    try {
      return labelLogProbs(model, hidden, batch.labels);
    } finally {
      hidden.dispose();
    }
  });
  const all = lp.flat();
  return -mean(all);
}

function lmRow(ids: number[], labelFrom: number): LmBatch {
  return { inputIds: [ids], attentionMask: [ids.map(() => 1)], labels: [ids.map((id, t) => (t >= labelFrom ? id : IGNORE_INDEX))], lengths: [ids.length] };
}

function measureTask(setup: AnalysisSetup, hl: HyperLlama, plan: TaskPlan, prefix: PrefixLike, maxTokens: number): Omit<TaskRow, 'score'> {
  const tok = setup.tokenizer;
  const o = { encoder: tok, maxLength: setup.maxLength, useDefinition: false };
  const shown = plan.examples.slice(0, taskHyperBatch(setup, hl, plan.task, plan.examples).hyper.numExamples[0]); // what the hypernetwork read
  const task = { definition: undefined };
  // (a) each demonstration's answer, given nothing / the prefix / all demonstrations (itself included) in context.
  const alone = collateZeroShot(shown.map((target) => ({ task, target })), o);
  const answers: Nll = {
    none: nll(hl, alone),
    prefix: nll(hl, alone, prefix),
    full: mean(shown.map((target) => nll(hl, collateFewShot([{ task, examples: shown, target }], o)))),
  };
  // (b) the demonstration text itself.
  const text = shown.map((e) => DEFAULT_TEMPLATE.prompt(e.input) + DEFAULT_TEMPLATE.answer(e.output) + DEFAULT_TEMPLATE.separator).join('');
  const ids = tok.encode(text, { bos: false, eos: false }).slice(0, setup.maxHyperLength);
  const once = lmRow([tok.bosId, ...ids], 1);
  const reconstruction: Nll = { none: nll(hl, once), prefix: nll(hl, once, prefix), full: nll(hl, lmRow([tok.bosId, ...ids, ...ids], 1 + ids.length)) };
  const n = Math.min(maxTokens, ids.length);
  const reference = continuationText(tok, [tok.bosId], ids.slice(0, n));
  const regenerate = (p?: PrefixLike): number =>
    withAdapters(hl.model, hl.hasDownstreamAdapter ? ['downstream'] : [], () => {
      const out = generate(hl.model, [[tok.bosId]], { maxNewTokens: n, prefix: p, positionOffset: p ? (p.positionOffsets?.[0] ?? p.length) : undefined, stopIds: [tok.eosId], padId: tok.padId }).tokens[0];
      return rougeLScore(continuationText(tok, [tok.bosId], out), [reference]) / 100;
    });
  return {
    task: plan.task.name,
    demonstrations: shown.length,
    answers,
    answerRetention: retention(answers),
    reconstruction,
    reconstructionRetention: retention(reconstruction),
    regeneration: { prefix: regenerate(prefix), none: regenerate() },
  };
}

/**
 * How much of the demonstrations' information the prefix keeps, per task: (a) the downstream loss on the
 * demonstrations' own answers given the prefix, against given the full demonstrations and given nothing; (b) how well
 * the demonstration text can be recovered from the prefix alone (teacher-forced loss and greedy regeneration);
 * (c) the correlation, across tasks, of these measures with HyperLlama's score on the task.
 */
export function analyzeCompression(setup: AnalysisSetup, o: CompressionAnalysisOptions): AnalysisReport {
  const { hl, trained } = obtainHyperLlama(setup, { k: o.k, steps: o.steps });
  try {
    const plans = planTasks(setup.evalTasks, { shots: setup.shots, maxInstances: setup.maxInstances, seed: setup.seed });
    const prefixes = new Map<string, PrefixLike>(plans.map((p) => [p.task.name, variantPrefix(setup, hl, p)]));
    let rows: TaskRow[];
    try {
      setup.log?.(`[compression] scoring HyperLlama on ${plans.length} tasks`);
      const scores = evaluateMethod('hyperllama', plans, { ...evalSettings(setup, hl.model), hyperllama: hl, prefixes });
      rows = plans.map((plan, i) => {
        setup.log?.(`[compression ${i + 1}/${plans.length}] ${plan.task.name}`);
        return { ...measureTask(setup, hl, plan, prefixes.get(plan.task.name)!, o.maxReconstructionTokens ?? 96), score: unitScore(scores[i]) };
      });
    } finally {
      for (const p of prefixes.values()) disposePrefix(p);
    }
    const measures: Array<[string, (r: TaskRow) => number]> = [
      ['answer retention (a)', (r) => r.answerRetention],
      ['answer NLL given the prefix (a)', (r) => r.answers.prefix],
      ['reconstruction retention (b)', (r) => r.reconstructionRetention],
      ['regeneration ROUGE-L from the prefix (b)', (r) => r.regeneration.prefix],
    ];
    const correlations = measures.map(([name, f]) => {
      const ok = rows.filter((r) => Number.isFinite(f(r)));
      return { measure: name, tasks: ok.length, pearson: pearson(ok.map(f), ok.map((r) => r.score)), spearman: spearman(ok.map(f), ok.map((r) => r.score)) };
    });
    const avg = (f: (r: TaskRow) => number) => mean(rows.map(f).filter(Number.isFinite));
    const configuration = { shots: setup.shots, seed: setup.seed, maxInstances: setup.maxInstances, k: hl.k, hyperllama: trained ? `trained here for ${o.steps} steps` : 'given checkpoint', tasks: rows.map((r) => r.task) };
    const cells = (r: Pick<TaskRow, 'answers' | 'answerRetention' | 'reconstruction' | 'reconstructionRetention' | 'regeneration'> & { score: number }, name: string) => [
      name,
      pct(r.score),
      `${fixed(r.answers.none)} / ${fixed(r.answers.prefix)} / ${fixed(r.answers.full)}`,
      fixed(r.answerRetention),
      `${fixed(r.reconstruction.none)} / ${fixed(r.reconstruction.prefix)} / ${fixed(r.reconstruction.full)}`,
      fixed(r.reconstructionRetention),
      `${pct(r.regeneration.none)} / ${pct(r.regeneration.prefix)}`,
    ];
    const meanRow = {
      score: avg((r) => r.score),
      answers: { none: avg((r) => r.answers.none), prefix: avg((r) => r.answers.prefix), full: avg((r) => r.answers.full) },
      answerRetention: avg((r) => r.answerRetention),
      reconstruction: { none: avg((r) => r.reconstruction.none), prefix: avg((r) => r.reconstruction.prefix), full: avg((r) => r.reconstruction.full) },
      reconstructionRetention: avg((r) => r.reconstructionRetention),
      regeneration: { none: avg((r) => r.regeneration.none), prefix: avg((r) => r.regeneration.prefix) },
    };
    return {
      format: 'hyperllama-analysis/1',
      analysis: 'compression',
      created: new Date().toISOString(),
      configuration,
      variants: ['none', 'prefix', 'full'],
      table: {
        header: ['task', 'HyperLlama score (%)', 'answer NLL none / prefix / full', 'answer retention', 'text NLL none / prefix / full', 'text retention', 'regeneration ROUGE-L none / prefix'],
        rows: [...rows.map((r) => cells(r, r.task)), cells(meanRow, 'mean')],
      },
      extraTables: [{ title: 'Correlation with the task score across tasks', header: ['measure', 'tasks', 'Pearson r', 'Spearman ρ'], rows: correlations.map((c) => [c.measure, String(c.tasks), fixed(c.pearson), fixed(c.spearman)]) }],
      data: { tasks: rows, mean: meanRow, correlations },
      interpretation: interpretCompression(meanRow, correlations, rows.length),
      figures: ['compression-answers.svg', 'compression-text.svg'],
    };
  } finally {
    disposeHyperLlama(hl);
  }
}

/** Scatter plots of each task's retention against its score. */
export function compressionFigures(r: AnalysisReport): Record<string, string> {
  const rows = (r.data as { tasks: TaskRow[] }).tasks;
  const short = (t: string) => t.replace(/^synth_/, '');
  return {
    'compression-answers.svg': renderScatter(
      rows.map((t) => ({ x: t.answerRetention, y: 100 * t.score, label: short(t.task) })),
      { title: 'Answer retention (a) against HyperLlama score, per task', xLabel: 'answer retention: (NLL none − prefix) / (none − full)', yLabel: 'HyperLlama score (%)' },
    ),
    'compression-text.svg': renderScatter(
      rows.map((t) => ({ x: t.reconstructionRetention, y: 100 * t.score, label: short(t.task) })),
      { title: 'Demonstration-text retention (b) against HyperLlama score, per task', xLabel: 'text retention: (NLL none − prefix) / (none − full)', yLabel: 'HyperLlama score (%)' },
    ),
  };
}

function interpretCompression(m: { answers: Nll; answerRetention: number; reconstruction: Nll; reconstructionRetention: number; regeneration: { none: number; prefix: number } }, correlations: Array<{ measure: string; tasks: number; pearson: number; spearman: number }>, tasks: number): string {
  const a = `On average the prefix brings the loss on the demonstrations' own answers from ${fixed(m.answers.none)} (nothing) to ${fixed(m.answers.prefix)} nats per token, against ${fixed(m.answers.full)} with the full demonstrations in context: a retention of ${fixed(m.answerRetention)} (0 = no better than nothing, 1 = as good as seeing the examples).`;
  const b = `For the demonstration text itself the retention is ${fixed(m.reconstructionRetention)} (${fixed(m.reconstruction.none)} → ${fixed(m.reconstruction.prefix)} nats/token; copying from context reaches ${fixed(m.reconstruction.full)}), and greedy regeneration from the prefix alone overlaps the text with ROUGE-L ${pct(m.regeneration.prefix)} against ${pct(m.regeneration.none)} without it: the prefix keeps ${m.reconstructionRetention < 0.3 ? 'the format and some task statistics rather than the examples themselves' : 'a substantial part of the examples'}.`;
  const c0 = correlations[0];
  const c = `Across ${tasks} tasks the answer retention correlates with the task score at Spearman ρ = ${fixed(c0.spearman)} (Pearson ${fixed(c0.pearson)}); with this few tasks a |ρ| below about ${fixed(2 / Math.sqrt(Math.max(1, tasks - 1)))} is indistinguishable from no correlation.`;
  return [a, b, c].join(' ');
}
