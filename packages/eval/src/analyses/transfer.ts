import { EpisodeSampler, SYNTHETIC_FAMILIES, collateZeroShot, syntheticTaskName, type Task } from '@hyperllama/datasets';
import { PrefixTuning, trainStep } from '@hyperllama/hypernet';
import type { KVPrefix, LlamaModel } from '@hyperllama/llama-model';
import { AdamW } from '@hyperllama/runtime';
import type { TaskScores } from '../aggregate.js';
import { EvalError } from '../errors.js';
import { evaluatePrefixTuning, planTasks } from '../protocols.js';
import { buildReport, renderCurves, type CurvePoint, type MethodResult } from '../report.js';
import { disposeHyperLlama, disposePrefix, evalSettings, obtainHyperLlama, variantPrefix, withAdapters, type AnalysisSetup } from './common.js';
import { pct, type AnalysisReport } from './report.js';

export interface TransferAnalysisOptions {
  /** Prefix-tuning steps per target task, and the evaluation interval. */
  steps: number;
  evalEvery: number;
  lr?: number;
  /** k and training steps of the HyperLlama trained when the setup has none. */
  k: number;
  hyperSteps: number;
  /** A trained shared prefix (batch 1); default: one trained here on the training tasks for `sharedSteps`. */
  sharedPrefix?: KVPrefix;
  sharedSteps: number;
  /** Where related source tasks are looked for (default: the evaluated and the training tasks). */
  pool?: readonly Task[];
}

/** The synthetic family of a task name (`synth_<family>_<variant>`), if it is one. */
export function syntheticFamilyOf(name: string): string | undefined {
  return SYNTHETIC_FAMILIES.map((f) => f.name)
    .filter((f) => name.startsWith(syntheticTaskName(f, '')))
    .sort((a, b) => b.length - a.length)[0];
}

/** A task related to `target`: the same synthetic family with another parameter, else the same category; first in pool order. */
export function relatedTask(target: Task, pool: readonly Task[]): { task: Task; relation: 'same family' | 'same category' } | undefined {
  const others = pool.filter((t) => t.name !== target.name);
  const family = syntheticFamilyOf(target.name);
  const sameFamily = family ? others.find((t) => syntheticFamilyOf(t.name) === family) : undefined;
  if (sameFamily) return { task: sameFamily, relation: 'same family' };
  const sameCategory = target.category ? others.find((t) => t.category === target.category) : undefined;
  return sameCategory ? { task: sameCategory, relation: 'same category' } : undefined;
}

/** A single prefix trained on zero-shot rows of every training task (the "shared" initialisation). */
export function trainSharedPrefix(setup: AnalysisSetup, model: LlamaModel, o: { length: number; steps: number; lr?: number; batchSize?: number }): PrefixTuning {
  const copts = { encoder: setup.tokenizer, maxLength: setup.maxLength };
  const sampler = new EpisodeSampler([...setup.trainTasks], { seed: setup.seed, k: 0 });
  const draw = () => collateZeroShot(Array.from({ length: o.batchSize ?? 8 }, () => sampler.next()), copts);
  return withAdapters(model, [], () => {
    const pt = PrefixTuning.random(model, o.length, { sampleIds: draw().inputIds, seed: setup.seed });
    const optimizer = new AdamW(pt.trainableVariables(), { lr: o.lr ?? 3e-3, weightDecay: 0 });
    for (let step = 0; step < o.steps; step++) {
      const batch = draw();
      trainStep(pt.trainableVariables(), optimizer, () => pt.loss(model, batch, { training: true }), { maxGradNorm: 1 });
    }
    optimizer.dispose();
    return pt;
  });
}

const INITS = ['related-task', 'own-task', 'shared', 'random'] as const;
type Init = (typeof INITS)[number];

/**
 * Prefix tuning on each target task B from four initialisations: the HyperLlama prefix of a related task A (same
 * family, another parameter; else same category), B's own HyperLlama prefix, the shared prefix, and random; curves
 * of the average score over steps.
 */
export function analyzeTransfer(setup: AnalysisSetup, o: TransferAnalysisOptions): AnalysisReport {
  const pool = o.pool ?? [...setup.evalTasks, ...setup.trainTasks];
  const pairs = setup.evalTasks.map((t) => ({ target: t, source: relatedTask(t, pool) })).filter((p) => p.source !== undefined) as Array<{ target: Task; source: { task: Task; relation: 'same family' | 'same category' } }>;
  if (pairs.length === 0) throw new EvalError('NO_RELATED_TASK', 'transfer: no evaluated task has a related task (same synthetic family or same category) in the pool', { field: 'tasks' });
  const { hl, trained } = obtainHyperLlama(setup, { k: o.k, steps: o.hyperSteps });
  let shared: KVPrefix | undefined = o.sharedPrefix;
  let ownShared: PrefixTuning | undefined;
  try {
    if (!shared) {
      setup.log?.(`[transfer] training a shared prefix (length ${hl.k}, ${o.sharedSteps} steps)`);
      ownShared = trainSharedPrefix(setup, hl.model, { length: hl.k, steps: o.sharedSteps });
      shared = ownShared.prefix();
    }
    const s = { ...evalSettings(setup, hl.model), hyperllama: hl };
    const final: Record<Init, TaskScores[]> = { 'related-task': [], 'own-task': [], shared: [], random: [] };
    const curves: Record<Init, CurvePoint[]> = { 'related-task': [], 'own-task': [], shared: [], random: [] };
    const addCurve = (init: Init, curve: CurvePoint[]) => {
      for (const p of curve) {
        const at = curves[init].find((c) => c.step === p.step);
        if (at) at.scores.push(...p.scores);
        else curves[init].push({ step: p.step, scores: [...p.scores] });
      }
    };
    pairs.forEach(({ target, source }, i) => {
      setup.log?.(`[transfer ${i + 1}/${pairs.length}] ${target.name} (from ${source.task.name}, ${source.relation})`);
      const [planB] = planTasks([target], { shots: setup.shots, maxInstances: setup.maxInstances, seed: setup.seed });
      const [planA] = planTasks([source.task], { shots: setup.shots, maxInstances: setup.maxInstances, seed: setup.seed });
      const sourcePrefix = variantPrefix(setup, hl, planA);
      try {
        const common = { steps: o.steps, evalEvery: o.evalEvery, lr: o.lr ?? 1e-2, seed: setup.seed };
        const runs: Array<[Init, Parameters<typeof evaluatePrefixTuning>[2]]> = [
          ['related-task', { ...common, init: 'shared', sharedPrefix: sourcePrefix }],
          ['own-task', { ...common, init: 'hyper' }],
          ['shared', { ...common, init: 'shared', sharedPrefix: shared }],
          ['random', { ...common, init: 'random', length: hl.k }],
        ];
        for (const [init, p] of runs) {
          const r = evaluatePrefixTuning([planB], s, p);
          final[init].push(...r.scores);
          addCurve(init, r.curve);
        }
      } finally {
        disposePrefix(sourcePrefix);
      }
    });
    const configuration = { shots: setup.shots, seed: setup.seed, maxInstances: setup.maxInstances, steps: o.steps, evalEvery: o.evalEvery, lr: o.lr ?? 1e-2, k: hl.k, hyperllama: trained ? `trained here for ${o.hyperSteps} steps` : 'given checkpoint', sharedPrefix: o.sharedPrefix ? 'given' : `trained here for ${o.sharedSteps} steps`, pairs: pairs.map((p) => ({ target: p.target.name, source: p.source.task.name, relation: p.source.relation })) };
    const results: MethodResult[] = INITS.map((init) => ({ method: init, configuration: { init }, scores: final[init], curve: curves[init] }));
    const evaluation = buildReport(results, configuration);
    const steps = evaluation.methods['random'].curve!.map((p) => p.step);
    const first = (init: Init) => evaluation.methods[init].curve![0].average;
    return {
      format: 'hyperllama-analysis/1',
      analysis: 'transfer',
      created: evaluation.created,
      configuration,
      variants: [...INITS],
      table: {
        header: ['initialisation', ...steps.map((st) => `step ${st}`)],
        rows: INITS.map((init) => [init, ...evaluation.methods[init].curve!.map((p) => pct(unit(p.average, evaluation.methods[init].metric)))]),
      },
      extraTables: [
        {
          title: 'Final score per target task (%)',
          header: ['target task', 'source task (relation)', ...INITS],
          rows: pairs.map(({ target, source }) => [target.name, `${source.task.name} (${source.relation})`, ...INITS.map((init) => pct(unit(evaluation.methods[init].tasks[target.name], evaluation.methods[init].taskDetails[target.name].metric)))]),
        },
      ],
      data: { pairs: configuration.pairs, curves: Object.fromEntries(INITS.map((init) => [init, evaluation.methods[init].curve])) },
      evaluation,
      interpretation: interpretTransfer(evaluation.methods, first, pairs.length, setup.maxInstances),
      figures: ['transfer.svg'],
    };
  } finally {
    ownShared?.dispose();
    disposeHyperLlama(hl);
  }
}

/** A score on [0, 1] whatever its metric (`mixed` averages already are). */
function unit(value: number, metric: string): number {
  return metric === 'rougeL' ? value / 100 : value;
}

/** The curves of the four initialisations. */
export function transferFigures(r: AnalysisReport): Record<string, string> {
  return { 'transfer.svg': renderCurves(r.evaluation!) };
}

function interpretTransfer(methods: NonNullable<AnalysisReport['evaluation']>['methods'], first: (init: Init) => number, targets: number, instances: number): string {
  const at = (init: Init) => pct(unit(first(init), methods[init].metric));
  const end = (init: Init) => pct(unit(methods[init].average, methods[init].metric));
  const order = [...INITS].sort((a, b) => unit(methods[b].average, methods[b].metric) - unit(methods[a].average, methods[a].metric));
  return [
    `Before any tuning (step 0) the initialisations score: related task ${at('related-task')}, own task ${at('own-task')}, shared ${at('shared')}, random ${at('random')}; after tuning: ${INITS.map((i) => `${i} ${end(i)}`).join(', ')} (best first: ${order.join(' > ')}).`,
    `A related task's prefix ${unit(methods['related-task'].average, methods['related-task'].metric) >= unit(methods.random.average, methods.random.metric) ? 'is at least as good a starting point as random' : 'starts and ends below random'}, and ${unit(methods['related-task'].average, methods['related-task'].metric) >= unit(methods['own-task'].average, methods['own-task'].metric) ? 'matches or beats' : 'stays below'} the task's own prefix.`,
    `These are ${targets} target tasks with at most ${instances} instances each and one seed: differences of a few points are within noise, and the curves are short.`,
  ].join(' ');
}

