import {
  SYNTHETIC_FAMILIES,
  collateZeroShot,
  makeSyntheticTask,
  syntheticTaskName,
  type ContentPool,
  type Example,
  type SyntheticKind,
  type Task,
} from '@hyperllama/datasets';
import { PrefixTuning, fit, type HyperLlama } from '@hyperllama/hypernet';
import type { Prefix } from '@hyperllama/gist-attention';
import type { LlamaModel } from '@hyperllama/llama-model';
import { withActiveAdapters } from '@hyperllama/lora';
import { AdamW, Rng, mean } from '@hyperllama/runtime';
import {
  buildReport,
  type CurvePoint,
  EvalError,
  evaluateMethod,
  finiteMean,
  type MethodResult,
  renderCurves,
  type TaskPlan,
  type TaskScores,
} from '@hyperllama/eval';
import {
  describeTraining,
  disposeHyperLlama,
  evalSettings,
  obtainHyperLlama,
  setupPlans,
  trainingEpisodes,
  variantPrefix,
  type AnalysisSetup,
} from './common.js';
import { fixed, pct, renderLines, type AnalysisReport } from './report.js';

/** A prefix-tuning start from a task's HyperLlama prefix. */
function fromHyper(setup: AnalysisSetup, hl: HyperLlama, plan: TaskPlan): PrefixTuning {
  const prefix = variantPrefix(setup, hl, plan);
  try {
    return PrefixTuning.fromPrefix(prefix);
  } finally {
    prefix.dispose();
  }
}

function addPoint(curve: CurvePoint[], step: number, scores: TaskScores): void {
  const at = curve.find((c) => c.step === step);
  if (at) at.scores.push(scores);
  else curve.push({ step, scores: [scores] });
}

export interface TransferAnalysisOptions {
  /** Prefix-tuning steps per target task, and the evaluation interval. */
  steps: number;
  evalEvery: number;
  lr?: number;
  /** Examples per prefix-tuning minibatch, drawn seeded from the target's tuning pool (default 8). */
  batchSize?: number;
  /** k and training steps of the HyperLlama trained when the setup has none. */
  k: number;
  hyperSteps: number;
  /** A trained shared prefix (batch 1); default: one trained here on the training tasks for `sharedSteps`. */
  sharedPrefix?: Prefix;
  sharedSteps: number;
  /**
   * Where related source tasks are looked for, for targets that are not held-out synthetic tasks (default: the
   * evaluated and the training tasks); a held-out synthetic target gets a generated one (see {@link relatedTask}).
   */
  pool?: readonly Task[];
}

/**
 * The synthetic family of a task name (`synth_<family>_<variant>`, `…_heldout` for held-out content, or anything
 * further after it), if it is one: the longest family name the task name starts with.
 */
export function syntheticFamilyOf(name: string): string | undefined {
  return SYNTHETIC_FAMILIES.map((f) => f.name)
    .filter((f) => name.startsWith(syntheticTaskName(f, '')))
    .sort((a, b) => b.length - a.length)[0];
}

/** The family, variant and content pool of an exact synthetic task name (`synth_<family>_<variant>[_heldout]`), if it is one. */
export function syntheticKindOf(name: string): (SyntheticKind & { pool: ContentPool }) | undefined {
  for (const f of SYNTHETIC_FAMILIES) {
    for (const variant of f.variants) {
      for (const pool of ['train', 'heldout'] as const)
        if (syntheticTaskName(f.name, variant, pool) === name) return { family: f.name, variant, pool };
    }
  }
  return undefined;
}

/**
 * Another task of a held-out synthetic task's family and variant, with other held-out content: generated like it
 * (`makeSyntheticTask(family, variant, { pool: 'heldout' })`, as many examples and instances) from seed `seed + 1`
 * (or the next seed whose examples differ from the target's), named `<target>_seed<s>`. Undefined when `target` is
 * not a held-out synthetic task.
 */
export function relatedHeldOutTask(target: Task, seed: number): Task | undefined {
  const kind = syntheticKindOf(target.name);
  if (!kind || kind.pool !== 'heldout') return undefined;
  const same = JSON.stringify(target.examples);
  let task: Task | undefined;
  for (let s = seed + 1; s <= seed + 8; s++) {
    task = makeSyntheticTask(kind.family, kind.variant, {
      seed: s,
      pool: 'heldout',
      numExamples: target.examples.length,
      numInstances: target.instances.length,
    });
    task.name = `${target.name}_seed${s}`;
    if (JSON.stringify(task.examples) !== same) break;
  }
  return task;
}

/**
 * A task related to `target`. A held-out synthetic target (held-out content, name ending `_heldout`) with `o.seed`
 * gets {@link relatedHeldOutTask}: its family and variant with other held-out content (relation `same family`).
 * Otherwise, first in pool order: a task of the same synthetic family (another parameter), else of the same category.
 */
export function relatedTask(
  target: Task,
  pool: readonly Task[],
  o: { seed?: number } = {},
): { task: Task; relation: 'same family' | 'same category' } | undefined {
  const generated = o.seed === undefined ? undefined : relatedHeldOutTask(target, o.seed);
  if (generated) return { task: generated, relation: 'same family' };
  const others = pool.filter((t) => t.name !== target.name);
  const family = syntheticFamilyOf(target.name);
  const sameFamily = family ? others.find((t) => syntheticFamilyOf(t.name) === family) : undefined;
  if (sameFamily) return { task: sameFamily, relation: 'same family' };
  const sameCategory = target.category ? others.find((t) => t.category === target.category) : undefined;
  return sameCategory ? { task: sameCategory, relation: 'same category' } : undefined;
}

/**
 * A single prefix trained on zero-shot rows of the setup's training data (the "shared" initialisation): the targets of
 * its training episodes ({@link trainingEpisodes} with k = 0: fresh-content episodes, else the training tasks).
 */
export async function trainSharedPrefix(
  setup: AnalysisSetup,
  model: LlamaModel,
  o: { length: number; steps: number; lr?: number; batchSize?: number },
): Promise<PrefixTuning> {
  const copts = { encoder: setup.tokenizer, maxLength: setup.maxLength };
  const sampler = trainingEpisodes(setup, 0);
  const draw = () =>
    collateZeroShot(
      Array.from({ length: o.batchSize ?? 8 }, () => sampler.next()),
      copts,
    );
  return withActiveAdapters(model, [], async () => {
    const pt = PrefixTuning.random(model, o.length, { sampleIds: draw().inputIds, seed: setup.seed });
    const optimizer = new AdamW(pt.trainableVariables(), { lr: o.lr ?? 3e-3, weightDecay: 0 });
    await fit({
      params: pt.trainableVariables(),
      optimizer,
      steps: o.steps,
      maxGradNorm: 1,
      objective: () => {
        const batch = draw();
        return () => pt.loss(model, batch, { training: true });
      },
    });
    optimizer.dispose();
    return pt;
  });
}

/** How transfer picks each target's related task, in words (reports record it). */
const RELATED_TASKS =
  'a held-out synthetic target: its family and variant with other held-out content (seed + 1); another target: a task of its synthetic family (another parameter), else of its category, from the pool';

const INITS = ['related-task', 'own-task', 'shared', 'random'] as const;
type Init = (typeof INITS)[number];

/**
 * Prefix tuning on each target task B from four initialisations: the HyperLlama prefix of a related task A (for a
 * held-out synthetic B its family and variant with other held-out content, see {@link relatedTask}; else same
 * family, another parameter; else same category), B's own HyperLlama prefix, the shared prefix, and random; curves
 * of the average score over steps.
 */
export async function analyzeTransfer(setup: AnalysisSetup, o: TransferAnalysisOptions): Promise<AnalysisReport> {
  const pool = o.pool ?? [...setup.evalTasks, ...(setup.trainTasks ?? [])];
  const pairs = setup.evalTasks
    .map((t) => ({ target: t, source: relatedTask(t, pool, { seed: setup.seed }) }))
    .filter((p) => p.source !== undefined) as Array<{
    target: Task;
    source: { task: Task; relation: 'same family' | 'same category' };
  }>;
  if (pairs.length === 0)
    throw new EvalError(
      'NO_RELATED_TASK',
      'transfer: no evaluated task has a related task (same synthetic family or same category) in the pool',
      { field: 'tasks' },
    );
  const { hl, trained } = await obtainHyperLlama(setup, { k: o.k, steps: o.hyperSteps });
  let shared: Prefix | undefined = o.sharedPrefix;
  let ownShared: PrefixTuning | undefined;
  try {
    if (!shared) {
      setup.log?.(`[transfer] training a shared prefix (length ${hl.k}, ${o.sharedSteps} steps)`);
      ownShared = await trainSharedPrefix(setup, hl.model, { length: hl.k, steps: o.sharedSteps });
      shared = ownShared.prefix();
    }
    const s = evalSettings(setup, hl.model);
    const final: Record<Init, TaskScores[]> = { 'related-task': [], 'own-task': [], shared: [], random: [] };
    const curves: Record<Init, CurvePoint[]> = { 'related-task': [], 'own-task': [], shared: [], random: [] };
    // nll[init][step] = per target task, the evaluated instances' answer loss (no EOS) behind the prefix being tuned
    const nll: Record<Init, Map<number, number[]>> = {
      'related-task': new Map(),
      'own-task': new Map(),
      shared: new Map(),
      random: new Map(),
    };
    const evalSteps = [
      ...new Set([
        0,
        ...Array.from({ length: Math.floor(o.steps / o.evalEvery) }, (_, i) => (i + 1) * o.evalEvery),
        o.steps,
      ]),
    ];
    for (const [i, { target, source }] of pairs.entries()) {
      setup.log?.(`[transfer ${i + 1}/${pairs.length}] ${target.name} (from ${source.task.name}, ${source.relation})`);
      const [planB] = setupPlans(setup, [target], hl.k);
      const [planA] = setupPlans(setup, [source.task], hl.k);
      // Prefix tuning trains on B's tuning pool (never an evaluated instance), seeded minibatches shared by every start.
      const pool = planB.pool ?? planB.examples;
      const asRows = (xs: readonly Example[]) =>
        collateZeroShot(
          xs.map((t) => ({ task: { definition: undefined }, target: t })),
          { encoder: setup.tokenizer, maxLength: setup.maxLength, useDefinition: false },
        );
      const train = asRows(pool);
      const rng = new Rng(setup.seed).fork(`transfer/${target.name}`);
      const batches = Array.from({ length: o.steps }, () =>
        asRows(rng.sample(pool, Math.min(o.batchSize ?? 8, pool.length))),
      );
      const starts: Record<Init, () => PrefixTuning> = {
        'related-task': () => fromHyper(setup, hl, planA),
        'own-task': () => fromHyper(setup, hl, planB),
        shared: () => PrefixTuning.fromPrefix(shared!),
        random: () =>
          withActiveAdapters(hl.model, [], () =>
            PrefixTuning.random(hl.model, hl.k, { sampleIds: train.inputIds, seed: setup.seed }),
          ),
      };
      for (const init of INITS) {
        const pt = starts[init]();
        const optimizer = new AdamW(pt.trainableVariables(), { lr: o.lr ?? 1e-2, weightDecay: 0 });
        const score = async (step: number) => {
          const prefixes = new Map([[target.name, pt.prefix()]]);
          const [scores] = await evaluateMethod('hyperllama', [planB], { ...s, prefixes });
          addPoint(curves[init], step, scores);
          nll[init].set(step, [...(nll[init].get(step) ?? []), finiteMean(scores.answerLoss ?? [])]);
          if (step === o.steps) final[init].push(scores);
        };
        try {
          await fit({
            params: pt.trainableVariables(),
            optimizer,
            steps: o.steps,
            maxGradNorm: 1,
            objective: (step) => () =>
              withActiveAdapters(hl.model, [], () => pt.loss(hl.model, batches[step], { training: true })),
            evaluate: { at: (step) => evalSteps.includes(step), run: score },
          });
        } finally {
          optimizer.dispose();
          pt.dispose();
        }
      }
    }
    const configuration = {
      shots: setup.shots,
      seed: setup.seed,
      maxInstances: setup.maxInstances,
      steps: o.steps,
      evalEvery: o.evalEvery,
      lr: o.lr ?? 1e-2,
      batchSize: o.batchSize ?? 8,
      tuningPool: "the target task's pool (its examples, else instances not evaluated)",
      k: hl.k,
      hyperllama: trained ? `trained here for ${o.hyperSteps} steps on ${describeTraining(setup)}` : 'given checkpoint',
      sharedPrefix: o.sharedPrefix
        ? 'given'
        : `trained here for ${o.sharedSteps} steps on zero-shot rows: ${describeTraining(setup, 0)}`,
      relatedTasks: RELATED_TASKS,
      pairs: pairs.map((p) => ({ target: p.target.name, source: p.source.task.name, relation: p.source.relation })),
    };
    const results: MethodResult[] = INITS.map((init) => ({
      method: init,
      configuration: { init },
      scores: final[init],
      curve: curves[init],
    }));
    const evaluation = buildReport(results, configuration);
    const steps = evaluation.methods['random'].curve!.map((p) => p.step);
    const first = (init: Init) => evaluation.methods[init].curve![0].average;
    const nllCurves = Object.fromEntries(
      INITS.map((init) => [init, evalSteps.map((step) => ({ step, answerNll: mean(nll[init].get(step)!) }))]),
    ) as Record<Init, Array<{ step: number; answerNll: number }>>;
    return {
      format: 'hyperllama-analysis/1',
      analysis: 'transfer',
      created: evaluation.created,
      configuration,
      variants: [...INITS],
      table: {
        header: ['initialisation', ...steps.map((st) => `step ${st}`)],
        rows: INITS.map((init) => [
          init,
          ...evaluation.methods[init].curve!.map((p) => pct(unit(p.average, evaluation.methods[init].metric))),
        ]),
      },
      extraTables: [
        {
          title: 'Answer loss of the evaluated instances (nats/token without EOS, lower is better)',
          header: ['initialisation', ...steps.map((st) => `step ${st}`)],
          rows: INITS.map((init) => [init, ...nllCurves[init].map((p) => fixed(p.answerNll))]),
        },
        {
          title: 'Final score per target task (%)',
          header: ['target task', 'source task (relation)', ...INITS],
          rows: pairs.map(({ target, source }) => [
            target.name,
            `${source.task.name} (${source.relation})`,
            ...INITS.map((init) =>
              pct(
                unit(
                  evaluation.methods[init].tasks[target.name],
                  evaluation.methods[init].taskDetails[target.name].metric,
                ),
              ),
            ),
          ]),
        },
      ],
      data: {
        pairs: configuration.pairs,
        curves: Object.fromEntries(INITS.map((init) => [init, evaluation.methods[init].curve])),
        nllCurves,
      },
      evaluation,
      interpretation: interpretTransfer(evaluation.methods, first, nllCurves, pairs.length, setup.maxInstances),
      figures: ['transfer.svg', 'transfer-nll.svg'],
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
  const nll = (r.data as { nllCurves: Record<Init, Array<{ step: number; answerNll: number }>> }).nllCurves;
  return {
    'transfer.svg': renderCurves(r.evaluation!),
    'transfer-nll.svg': renderLines(
      INITS.map((init) => ({ name: init, points: nll[init].map((p) => ({ x: p.step, y: p.answerNll })) })),
      {
        title: 'Prefix tuning by initialisation: answer loss of the evaluated instances',
        xLabel: 'prefix-tuning steps',
        yLabel: 'answer loss (nats/token, no EOS)',
      },
    ),
  };
}

function interpretTransfer(
  methods: NonNullable<AnalysisReport['evaluation']>['methods'],
  first: (init: Init) => number,
  nll: Record<Init, Array<{ step: number; answerNll: number }>>,
  targets: number,
  instances: number,
): string {
  const at = (init: Init) => pct(unit(first(init), methods[init].metric));
  const end = (init: Init) => pct(unit(methods[init].average, methods[init].metric));
  const n0 = (init: Init) => fixed(nll[init][0].answerNll);
  const n1 = (init: Init) => fixed(nll[init][nll[init].length - 1].answerNll);
  const byNll = [...INITS].sort((a, b) => nll[a][nll[a].length - 1].answerNll - nll[b][nll[b].length - 1].answerNll);
  return [
    `Answer loss (nats/token, without EOS) on the evaluated instances, before → after tuning: ${INITS.map((i) => `${i} ${n0(i)} → ${n1(i)}`).join(', ')} (lowest at the end first: ${byNll.join(' < ')}).`,
    `Scores at step 0: ${INITS.map((i) => `${i} ${at(i)}`).join(', ')}; after tuning: ${INITS.map((i) => `${i} ${end(i)}`).join(', ')}.`,
    `These are ${targets} target tasks with at most ${instances} instances each, one seed and short curves: score differences of a few points are within noise (most exact-match scores stay at 0), so the answer-loss curves are the more telling measure here.`,
  ].join(' ');
}
