import { mean } from '@hyperllama/runtime';
import type { Prefix } from '@hyperllama/gist-attention';
import type { DownstreamView } from '@hyperllama/hypernet';
import {
  buildReport,
  EvalError,
  evaluateMethod,
  type MethodResult,
  renderBarChart,
  type TaskScores,
} from '@hyperllama/eval';
import {
  averageWithError,
  describeTraining,
  disposeHyperLlama,
  evalSettings,
  meanAnswerLoss,
  setupPlans,
  spearman,
  taskHyperBatch,
  trainVariant,
  variantPrefix,
  type AnalysisSetup,
} from './common.js';
import { fixed, pct, renderScatter, type AnalysisReport } from './report.js';

/** One mask variant: what the gists read and what the downstream tokens see. */
export interface MaskVariant {
  id: string;
  description: string;
  k: number;
  view: DownstreamView;
  /** Gists read only the last m demonstrations. */
  lastExamples?: number;
}

/**
 * The default variants: the standard gist mask (k gists), the positive control (downstream also sees the examples),
 * the negative control (downstream sees neither), gists that read only the last m demonstrations (m = 1 and
 * shots / 2), and k ∈ {1, 2, 4, 8, 16} gists.
 */
export function defaultMaskVariants(k: number, shots: number): MaskVariant[] {
  const out: MaskVariant[] = [
    { id: 'standard', description: `gist mask, k=${k}: downstream sees the k gists`, k, view: 'gists' },
    {
      id: 'positive',
      description: 'positive control: downstream sees the examples and the gists (no compression)',
      k,
      view: 'examples-and-gists',
    },
    { id: 'negative', description: 'negative control: downstream sees neither examples nor gists', k, view: 'nothing' },
  ];
  for (const m of [...new Set([1, Math.floor(shots / 2)])].filter((m) => m >= 1 && m < shots)) {
    out.push({
      id: `last-${m}`,
      description: `gists read only the last ${m} of ${shots} examples (k=${k})`,
      k,
      view: 'gists',
      lastExamples: m,
    });
  }
  for (const kk of [1, 2, 4, 8, 16].filter((x) => x !== k))
    out.push({ id: `k${kk}`, description: `gist mask with k=${kk} gists`, k: kk, view: 'gists' });
  return out;
}

export interface MaskAnalysisOptions {
  variants: MaskVariant[];
  /** Multi-task training steps per variant. */
  steps: number;
  lr?: number;
  trainBatchSize?: number;
}

interface VariantRow {
  id: string;
  description: string;
  k: number;
  view: DownstreamView;
  lastExamples: number | null;
  trainSteps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  /** Mean over tasks of the prefix positions the downstream attends to (0 for the negative control). */
  prefixPositions: number;
  /** Mean over tasks of the demonstration tokens the hypernetwork read (without BOS and gists). */
  exampleTokens: number;
  average: number;
  stderr: number;
  /** Mean over tasks of the evaluated instances' answer loss (nats per token, without EOS). */
  answerNll: number;
}

/** Trains and evaluates HyperLlama under each mask variant on the same tasks, demonstrations and instances. */
export async function analyzeMasks(setup: AnalysisSetup, o: MaskAnalysisOptions): Promise<AnalysisReport> {
  if (o.variants.length === 0) throw new EvalError('BAD_OPTION', 'masks: no variant given', { field: 'variants' });
  // One list of demonstrations for every variant: it fits the ICL rows and the hyper input of the largest k.
  const plans = setupPlans(setup, setup.evalTasks, Math.max(...o.variants.map((v) => v.k)));
  const results: MethodResult[] = [];
  const rows: VariantRow[] = [];
  for (const [index, v] of o.variants.entries()) {
    setup.log?.(`[masks ${index + 1}/${o.variants.length}] ${v.id}: training, then evaluating ${plans.length} tasks`);
    const { hl, steps, firstLoss, lastLoss } = await trainVariant(setup, {
      k: v.k,
      downstreamView: v.view,
      lastExamples: v.lastExamples,
      steps: o.steps,
      lr: o.lr,
      batchSize: o.trainBatchSize,
    });
    try {
      const s = evalSettings(setup, hl.model);
      const adapters = hl.hasDownstreamAdapter ? ['downstream'] : [];
      const exampleTokens = plans.map((p) => taskHyperBatch(setup, hl, p.task, p.examples).hyper.lengths[0] - 1 - hl.k);
      let scores: TaskScores[];
      let positions: number[];
      if (v.view === 'nothing') {
        // Hidden prefix columns = no prefix (RoPE depends on relative positions only): the downstream model reads the instance alone.
        scores = await evaluateMethod('zero-shot', plans, {
          ...s,
          useDefinition: false,
          adapters: { 'zero-shot': adapters },
        });
        positions = plans.map(() => 0);
      } else {
        const prefixes = new Map<string, Prefix>(
          plans.map((p) => [p.task.name, variantPrefix(setup, hl, p, v.lastExamples)]),
        );
        try {
          positions = plans.map((p) => prefixes.get(p.task.name)!.length);
          scores = await evaluateMethod('hyperllama', plans, { ...s, hyperllama: hl, prefixes });
        } finally {
          for (const p of prefixes.values()) p.dispose();
        }
      }
      const { average, stderr } = averageWithError(scores);
      const row: VariantRow = {
        id: v.id,
        description: v.description,
        k: v.k,
        view: v.view,
        lastExamples: v.lastExamples ?? null,
        trainSteps: steps,
        firstLoss: Number.isFinite(firstLoss) ? firstLoss : null,
        lastLoss: Number.isFinite(lastLoss) ? lastLoss : null,
        prefixPositions: mean(positions),
        exampleTokens: mean(exampleTokens),
        average,
        stderr,
        answerNll: meanAnswerLoss(scores),
      };
      rows.push(row);
      results.push({ method: v.id, configuration: { ...row, average: undefined, stderr: undefined }, scores });
      setup.log?.(
        `[masks] ${v.id}: ${pct(average)} ± ${pct(stderr)}, answer loss ${fixed(row.answerNll)} (prefix positions ${row.prefixPositions.toFixed(1)})`,
      );
    } finally {
      disposeHyperLlama(hl);
    }
  }
  const configuration = {
    shots: setup.shots,
    seed: setup.seed,
    maxInstances: setup.maxInstances,
    steps: o.steps,
    lr: o.lr ?? 3e-3,
    training: describeTraining(setup),
    tasks: plans.map((p) => p.task.name),
  };
  const evaluation = buildReport(results, configuration);
  return {
    format: 'hyperllama-analysis/1',
    analysis: 'masks',
    created: evaluation.created,
    configuration,
    variants: rows.map((r) => r.id),
    table: {
      header: [
        'variant',
        'what the downstream sees',
        'prefix positions',
        'example tokens / position',
        'score (%)',
        '± s.e.',
        'answer loss (no EOS)',
        'train loss first → last',
      ],
      rows: rows.map((r) => [
        r.id,
        r.description,
        r.prefixPositions.toFixed(1),
        r.prefixPositions > 0 ? (r.exampleTokens / r.prefixPositions).toFixed(1) : 'n/a',
        pct(r.average),
        pct(r.stderr),
        fixed(r.answerNll),
        r.trainSteps > 0 ? `${fixed(r.firstLoss)} → ${fixed(r.lastLoss)}` : 'not trained',
      ]),
    },
    data: { variants: rows },
    evaluation,
    interpretation: interpretMasks(rows, plans.length, setup.maxInstances),
    figures: ['masks.svg', 'masks-positions.svg'],
  };
}

/** The figures of a masks report: the bar chart of variants and score against prefix positions. */
export function maskFigures(r: AnalysisReport): Record<string, string> {
  const rows = (r.data as { variants: VariantRow[] }).variants;
  return {
    'masks.svg': renderBarChart(r.evaluation!),
    'masks-positions.svg': renderScatter(
      rows.filter((v) => v.prefixPositions > 0).map((v) => ({ x: v.prefixPositions, y: 100 * v.average, label: v.id })),
      {
        title: 'Score against the prefix positions the downstream attends to',
        xLabel: 'prefix positions (log scale)',
        yLabel: 'average score (%)',
        logX: true,
      },
    ),
  };
}

function interpretMasks(rows: VariantRow[], tasks: number, instances: number): string {
  const by = new Map(rows.map((r) => [r.id, r]));
  const se = Math.max(...rows.map((r) => r.stderr));
  const cmp = (a: VariantRow, b: VariantRow): string => {
    const d = a.average - b.average;
    const sig = Math.abs(d) > 2 * Math.hypot(a.stderr, b.stderr);
    return `${a.id} ${pct(a.average)} vs ${b.id} ${pct(b.average)} (${d >= 0 ? '+' : ''}${(100 * d).toFixed(1)} points, ${sig ? 'more than' : 'within'} two standard errors; answer loss ${fixed(a.answerNll)} vs ${fixed(b.answerNll)})`;
  };
  const parts: string[] = [];
  const std = by.get('standard');
  const pos = by.get('positive');
  const neg = by.get('negative');
  if (std && pos) parts.push(`Lifting the compression (positive control): ${cmp(pos, std)}.`);
  if (std && neg)
    parts.push(
      `Removing the prefix (negative control): ${cmp(std, neg)}; a standard score above the negative control is what shows that the gists carry task information.`,
    );
  const ks = rows.filter((r) => r.view === 'gists' && r.lastExamples === null).sort((a, b) => a.k - b.k);
  if (ks.length >= 3) {
    const rho = spearman(
      ks.map((r) => r.k),
      ks.map((r) => r.average),
    );
    const rhoNll = spearman(
      ks.map((r) => r.k),
      ks.map((r) => r.answerNll),
    );
    parts.push(
      `Across k = ${ks.map((r) => r.k).join(', ')} the scores are ${ks.map((r) => pct(r.average)).join(', ')} (Spearman ρ = ${fixed(rho)} between k and score) and the answer losses ${ks.map((r) => fixed(r.answerNll)).join(', ')} (ρ = ${fixed(rhoNll)}).`,
    );
  }
  const last = rows.filter((r) => r.lastExamples !== null);
  if (std && last.length > 0)
    parts.push(
      `Gists that read only the last examples: ${last.map((r) => cmp(r, std)).join('; ')}; the earlier examples still reach the gists indirectly, through the later tokens that attended to them.`,
    );
  parts.push(
    `Caveat: one seed, a small model, ${tasks} tasks × at most ${instances} instances; the standard error of an average is up to ±${pct(se)} points and each variant is a separate short training run, so only differences well beyond two standard errors should be read as real.`,
  );
  return parts.join(' ');
}
