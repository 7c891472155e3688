import type { Prefix } from '@hyperllama/gist-attention';
import { Rng, mean } from '@hyperllama/runtime';
import { EvalError, evaluateMethod, finiteMean, planTasks, type TaskPlan, type TaskScores } from '@hyperllama/eval';
import {
  describeTraining,
  disposeHyperLlama,
  evalSettings,
  fitSetupPlans,
  fixedOrNa,
  obtainHyperLlama,
  std,
  unitScore,
  variantPrefix,
  type AnalysisSetup,
} from './common.js';
import { pct, renderDotPlot, type AnalysisReport } from './report.js';

export interface SensitivityAnalysisOptions {
  /** Draws of k demonstrations (each in a random order). */
  draws: number;
  /** Re-orderings of the first draw's demonstrations. */
  orders: number;
  /** k and training steps of the HyperLlama trained when the setup has none. */
  k: number;
  steps: number;
  /** Adapters active for ICL (e.g. a multi-task ICL LoRA the caller loaded); default none: the base model. */
  iclAdapters?: string[];
}

const METHODS = ['hyperllama', 'icl'] as const;
type Method = (typeof METHODS)[number];

interface Spread {
  mean: number;
  std: number;
  worst: number;
  best: number;
}

const spread = (xs: number[]): Spread => ({
  mean: mean(xs),
  std: std(xs),
  worst: Math.min(...xs),
  best: Math.max(...xs),
});
// For NLL lower is better: its `best` field holds the largest (worst) value, read as "worst-draw NLL".

/**
 * Demonstration sets per task: `draws` random subsets (random order) of the pool, then `orders` shuffles of the first.
 * The evaluated instances stay those of the base plan.
 */
export function demonstrationDraws(
  plans: readonly TaskPlan[],
  o: { draws: number; orders: number; shots: number; seed: number },
): Array<{ kind: 'draw' | 'order'; index: number; plans: TaskPlan[] }> {
  if (!Number.isInteger(o.draws) || o.draws < 2)
    throw new EvalError('BAD_OPTION', `sensitivity: draws: expected an integer >= 2, got ${o.draws}`, {
      field: 'draws',
      actual: o.draws,
    });
  if (!Number.isInteger(o.orders) || o.orders < 0)
    throw new EvalError('BAD_OPTION', `sensitivity: orders: expected an integer >= 0, got ${o.orders}`, {
      field: 'orders',
      actual: o.orders,
    });
  const out: Array<{ kind: 'draw' | 'order'; index: number; plans: TaskPlan[] }> = [];
  for (let d = 0; d < o.draws; d++) {
    out.push({
      kind: 'draw',
      index: d,
      plans: plans.map((p) => {
        const pool =
          p.task.examples.length > 0 ? p.task.examples : p.task.instances.filter((x) => !p.instances.includes(x));
        return {
          ...p,
          examples: new Rng(o.seed)
            .fork(`sensitivity/${p.task.name}/draw/${d}`)
            .sample(pool, Math.min(o.shots, pool.length)),
        };
      }),
    });
  }
  const first = out[0].plans;
  for (let r = 0; r < o.orders; r++) {
    out.push({
      kind: 'order',
      index: r,
      plans: first.map((p) => ({
        ...p,
        examples: new Rng(o.seed).fork(`sensitivity/${p.task.name}/order/${r}`).shuffle([...p.examples]),
      })),
    });
  }
  return out;
}

/** HyperLlama and ICL over several draws (and orders) of the k demonstrations: mean, spread and worst case per task. */
export async function analyzeSensitivity(setup: AnalysisSetup, o: SensitivityAnalysisOptions): Promise<AnalysisReport> {
  const { hl, trained } = await obtainHyperLlama(setup, { k: o.k, steps: o.steps });
  try {
    const base = planTasks(setup.evalTasks, { shots: setup.shots, maxInstances: setup.maxInstances, seed: setup.seed });
    // Each draw's demonstrations fitted to both budgets: ICL and HyperLlama see the same ones.
    const sets = demonstrationDraws(base, {
      draws: o.draws,
      orders: o.orders,
      shots: setup.shots,
      seed: setup.seed,
    }).map((set) => ({ ...set, plans: fitSetupPlans(setup, set.plans, hl.k) }));
    const s = { ...evalSettings(setup, hl.model), hyperllama: hl, adapters: { icl: o.iclAdapters ?? [] } };
    // scores[method][kind][task] = one score per draw (or order), on [0, 1]
    const scores: Record<Method, Record<'draw' | 'order', number[][]>> = {
      hyperllama: { draw: base.map(() => []), order: base.map(() => []) },
      icl: { draw: base.map(() => []), order: base.map(() => []) },
    };
    // nlls[method][task] = the instances' answer loss (without EOS) per draw
    const nlls: Record<Method, number[][]> = { hyperllama: base.map(() => []), icl: base.map(() => []) };
    for (const [i, set] of sets.entries()) {
      setup.log?.(`[sensitivity ${i + 1}/${sets.length}] ${set.kind} ${set.index}`);
      const prefixes = new Map<string, Prefix>(set.plans.map((p) => [p.task.name, variantPrefix(setup, hl, p)]));
      try {
        const byMethod: Record<Method, TaskScores[]> = {
          hyperllama: await evaluateMethod('hyperllama', set.plans, { ...s, prefixes }),
          icl: await evaluateMethod('icl', set.plans, s),
        };
        for (const m of METHODS) {
          byMethod[m].forEach((r, t) => {
            scores[m][set.kind][t].push(unitScore(r));
            if (set.kind === 'draw') nlls[m][t].push(finiteMean(r.answerLoss ?? []));
          });
        }
      } finally {
        for (const p of prefixes.values()) p.dispose();
      }
    }
    const tasks = base.map((p) => p.task.name);
    const perTask = tasks.map((task, t) => ({
      task,
      ...Object.fromEntries(
        METHODS.map((m) => [
          m,
          {
            draws: spread(scores[m].draw[t]),
            orders: o.orders > 0 ? spread(scores[m].order[t]) : null,
            drawScores: scores[m].draw[t],
            orderScores: scores[m].order[t],
            nll: spread(nlls[m][t]),
            drawNlls: nlls[m][t],
          },
        ]),
      ),
    })) as Array<
      { task: string } & Record<
        Method,
        {
          draws: Spread;
          orders: Spread | null;
          drawScores: number[];
          orderScores: number[];
          nll: Spread;
          drawNlls: number[];
        }
      >
    >;
    const summary = Object.fromEntries(
      METHODS.map((m) => [
        m,
        {
          mean: mean(perTask.map((r) => r[m].draws.mean)),
          meanStdOverDraws: mean(perTask.map((r) => r[m].draws.std)),
          meanStdOverOrders: o.orders > 0 ? mean(perTask.map((r) => r[m].orders!.std)) : null,
          meanWorst: mean(perTask.map((r) => r[m].draws.worst)),
          meanRange: mean(perTask.map((r) => r[m].draws.best - r[m].draws.worst)),
          meanNll: mean(perTask.map((r) => r[m].nll.mean)),
          meanNllStd: mean(perTask.map((r) => r[m].nll.std)),
          meanWorstNll: mean(perTask.map((r) => r[m].nll.best)),
        },
      ]),
    ) as Record<
      Method,
      {
        mean: number;
        meanStdOverDraws: number;
        meanStdOverOrders: number | null;
        meanWorst: number;
        meanRange: number;
        meanNll: number;
        meanNllStd: number;
        meanWorstNll: number;
      }
    >;
    const nllMore = perTask.filter((r) => r.hyperllama.nll.std > r.icl.nll.std).length;
    // Per task, which method varies more over draws.
    const hyperMore = perTask.filter((r) => r.hyperllama.draws.std > r.icl.draws.std).length;
    const iclMore = perTask.filter((r) => r.icl.draws.std > r.hyperllama.draws.std).length;
    const configuration = {
      shots: setup.shots,
      seed: setup.seed,
      maxInstances: setup.maxInstances,
      draws: o.draws,
      orders: o.orders,
      k: hl.k,
      hyperllama: trained ? `trained here for ${o.steps} steps on ${describeTraining(setup)}` : 'given checkpoint',
      iclAdapters: o.iclAdapters ?? [],
      tasks,
    };
    const row = (
      name: string,
      m: Method,
      x: { mean: number; std: number; worst: number; best: number },
      orders: string,
      nll: Spread,
    ) => [
      name,
      m,
      pct(x.mean),
      pct(x.std),
      pct(x.worst),
      pct(x.best),
      orders,
      fixedOrNa(nll.mean),
      fixedOrNa(nll.std),
      fixedOrNa(nll.best),
    ];
    return {
      format: 'hyperllama-analysis/1',
      analysis: 'sensitivity',
      created: new Date().toISOString(),
      configuration,
      variants: [...METHODS],
      table: {
        header: [
          'task',
          'method',
          'mean (%)',
          'std over draws',
          'worst draw',
          'best draw',
          'std over orders',
          'answer loss mean (no EOS)',
          'loss std over draws',
          'worst-draw loss',
        ],
        rows: [
          ...perTask.flatMap((r) =>
            METHODS.map((m) => row(r.task, m, r[m].draws, r[m].orders ? pct(r[m].orders.std) : '–', r[m].nll)),
          ),
          ...METHODS.map((m) => [
            'average',
            m,
            pct(summary[m].mean),
            pct(summary[m].meanStdOverDraws),
            pct(summary[m].meanWorst),
            '–',
            summary[m].meanStdOverOrders === null ? '–' : pct(summary[m].meanStdOverOrders),
            fixedOrNa(summary[m].meanNll),
            fixedOrNa(summary[m].meanNllStd),
            fixedOrNa(summary[m].meanWorstNll),
          ]),
        ],
      },
      data: {
        tasks: perTask,
        summary,
        moreSensitive: { hyperllama: hyperMore, icl: iclMore, tie: tasks.length - hyperMore - iclMore },
        moreSensitiveInNll: { hyperllama: nllMore, icl: tasks.length - nllMore },
      },
      interpretation: interpretSensitivity(summary, hyperMore, iclMore, nllMore, tasks.length, o, setup.maxInstances),
      figures: ['sensitivity.svg'],
    };
  } finally {
    disposeHyperLlama(hl);
  }
}

/** Dot plot of each task's scores over the draws, per method. */
export function sensitivityFigures(r: AnalysisReport): Record<string, string> {
  const rows = (r.data as { tasks: Array<{ task: string } & Record<Method, { drawScores: number[] }>> }).tasks;
  return {
    'sensitivity.svg': renderDotPlot(
      rows.map((t) => t.task.replace(/^synth_/, '')),
      METHODS.map((m) => ({ name: m, values: rows.map((t) => t[m].drawScores.map((x) => 100 * x)) })),
      { title: 'Score per draw of the k demonstrations (bar: mean)', yLabel: 'score (%)' },
    ),
  };
}

function interpretSensitivity(
  s: Record<
    Method,
    {
      mean: number;
      meanStdOverDraws: number;
      meanStdOverOrders: number | null;
      meanWorst: number;
      meanNll: number;
      meanNllStd: number;
    }
  >,
  hyperMore: number,
  iclMore: number,
  nllMore: number,
  tasks: number,
  o: SensitivityAnalysisOptions,
  instances: number,
): string {
  const h = s.hyperllama;
  const i = s.icl;
  const diff = h.meanStdOverDraws - i.meanStdOverDraws;
  const verdict =
    Math.abs(diff) < 0.01
      ? 'Neither method is clearly the more sensitive on average (less than one point apart)'
      : `${diff > 0 ? 'HyperLlama' : 'ICL'} is the more sensitive on average`;
  const parts = [
    `Over ${o.draws} draws of the demonstrations, the per-task standard deviation averages ${pct(h.meanStdOverDraws)} points for HyperLlama and ${pct(i.meanStdOverDraws)} for ICL (mean scores ${pct(h.mean)} and ${pct(i.mean)}; average worst draw ${pct(h.meanWorst)} and ${pct(i.meanWorst)}).`,
    `${verdict}; per task, HyperLlama varies more on ${hyperMore} of ${tasks} tasks and ICL on ${iclMore}.`,
  ];
  parts.push(
    `In answer loss (nats/token without EOS), which every instance contributes to even when its exact-match score is 0, the spread over draws averages ${fixedOrNa(h.meanNllStd)} nats/token for HyperLlama and ${fixedOrNa(i.meanNllStd)} for ICL (means ${fixedOrNa(h.meanNll)} and ${fixedOrNa(i.meanNll)}); HyperLlama's NLL varies more on ${nllMore} of ${tasks} tasks.`,
  );
  if (h.meanStdOverOrders !== null && i.meanStdOverOrders !== null)
    parts.push(
      `Re-ordering the same demonstrations moves scores by ${pct(h.meanStdOverOrders)} (HyperLlama) and ${pct(i.meanStdOverOrders)} (ICL) points on average.`,
    );
  parts.push(
    `With at most ${instances} instances per task, part of every spread is the instances' own sampling noise (each score is a mean of few 0/1 outcomes), so a difference of a few points between the methods' spreads is not evidence of a real difference.`,
  );
  return parts.join(' ');
}
