import type { Metric } from '@hyperllama/datasets';
import { METRIC_SCALE, summarize, type GroupSummary, type Summary, type TaskScores } from './aggregate.js';
import { EvalError } from './errors.js';
import { reportWriter } from './files.js';
import {
  bootstrapMean,
  pairedBootstrap,
  verdict,
  type BootstrapValue,
  type PairedInterval,
  type Verdict,
} from './stats.js';
import { escapeXml, num, svgDocument } from './svg.js';

/** One evaluated point of a prefix-tuning run: the scores (and answer losses) after `step` optimisation steps. */
export interface CurvePoint {
  step: number;
  scores: TaskScores[];
}

/** What a protocol produced for one method. */
export interface MethodResult {
  /** e.g. `zero-shot`, `icl`, `hyperllama`, `hyperllama-swap`, `prefix-tuning-hyper`. */
  method: string;
  /** Everything that determines the numbers: shots, seed, checkpoint, scoring, steps, ... */
  configuration: Record<string, unknown>;
  /** Final per-instance scores (and answer losses) per task. */
  scores: TaskScores[];
  /** Prefix tuning: the scores at each evaluation step (the last equals `scores`). */
  curve?: CurvePoint[];
}

/** A 95% interval. */
export interface Interval {
  low: number;
  high: number;
}

/** Per-task numbers of a group of tasks (the headline tasks, or the control tasks). */
export interface TaskGroupReport {
  metric: Metric | 'mixed';
  /** Macro average over tasks (accuracy / exact match in [0, 1], ROUGE-L in [0, 100], `mixed` in [0, 1]). */
  average: number;
  /** Score per task, on the task's metric's scale. */
  tasks: Record<string, number>;
  /** Metric, instance count, category, answer loss and demonstrations seen of each task. */
  taskDetails: Summary['tasks'];
  /** Macro average of the per-task mean answer loss (nats/token), without EOS (the headline) and with EOS. */
  answerLoss?: number;
  answerLossWithEos?: number;
  /** Demonstrations seen, mean over tasks (0 for zero-shot). */
  demonstrations?: number;
}

export interface MethodReport extends TaskGroupReport {
  categories: Record<string, GroupSummary>;
  configuration: Record<string, unknown>;
  /** Bootstrap 95% interval of the average, on [0, 1] (every task's score divided by its metric's maximum). */
  averageCi?: Interval;
  /** Bootstrap 95% interval of the answer loss (nats/token, without EOS). */
  answerLossCi?: Interval;
  /** Control tasks (reported apart, not in `average` nor in the claims). */
  control?: TaskGroupReport;
  /** Macro average (and per-task scores) at each evaluation step, for methods that train. */
  curve?: Array<{
    step: number;
    average: number;
    tasks: Record<string, number>;
    answerLoss?: number;
    answerLossWithEos?: number;
  }>;
}

/**
 * One paired comparison a − b on the headline tasks, each with a paired bootstrap 95% interval. `score` is on [0, 1]
 * (×100 = points); higher is better, so the comparison favours a when the interval lies above 0. `answerLoss` is
 * the loss difference a − b in nats/token (without EOS): LOWER is better, so it favours a when the interval lies
 * BELOW 0 (its verdict is taken on b − a).
 */
export interface Comparison {
  a: string;
  b: string;
  score: PairedInterval & { verdict: Verdict };
  answerLoss?: PairedInterval & { verdict: Verdict };
  answerLossWithEos?: PairedInterval & { verdict: Verdict };
}

export type ClaimId = 'claim 1' | 'claim 2' | 'claim 3' | 'swap gap';

/** A claim of the paper tested on the headline tasks. */
export interface ClaimResult {
  id: ClaimId;
  statement: string;
  /** The comparisons it rests on (claim 3: hyper − random and hyper − shared at the last step). */
  comparisons: Comparison[];
  /** On the headline score: `holds` when every comparison holds, `does not hold` when one points the other way, else `inconclusive`. */
  verdict: Verdict;
  /** The same on the answer loss, when every method has one. */
  answerLossVerdict?: Verdict;
  /** Claim 3: the prefix-tuning step it is read at (the last). */
  step?: number;
}

/** Prefix tuning by initialisation: settings, and per curve step each init's average and the paired differences. */
export interface PrefixTuningReport {
  lr: unknown;
  steps: unknown;
  evalSteps: unknown;
  batchSize: unknown;
  poolSize: unknown;
  poolSplitFromInstances: unknown;
  inits: string[];
  points: Array<{
    step: number;
    /** Per init: the average on [0, 1] and its interval, and the answer loss and its interval. */
    inits: Record<
      string,
      {
        average: number;
        low: number;
        high: number;
        answerLoss?: number;
        answerLossLow?: number;
        answerLossHigh?: number;
      }
    >;
    /** `hyper − random`, `hyper − shared`, `hyper − hyper-other` where both are present. */
    differences: Record<string, Comparison>;
  }>;
}

export interface EvalReport {
  format: 'hyperllama-eval/2';
  created: string;
  /** Settings shared by every method (tasks source, shots, seed, model, ...). */
  configuration: Record<string, unknown>;
  methods: Record<string, MethodReport>;
  /** Tasks reported apart as controls. */
  controlTasks: string[];
  /** The claims that the evaluated methods allow testing, in order; see {@link buildReport}. */
  claims: ClaimResult[];
  prefixTuning?: PrefixTuningReport;
  bootstrap: { resamples: number; seed: number };
}

export interface BuildReportOptions {
  created?: Date;
  /** Control tasks by name (also: any task whose scores carry `control: true`). */
  controlTasks?: readonly string[];
  /** Bootstrap resamples (default 2000) and seed (default 0). */
  resamples?: number;
  seed?: number;
}

const taskNumbers = (summary: Summary): Record<string, number> =>
  Object.fromEntries(Object.entries(summary.tasks).map(([t, s]) => [t, s.score]));

function groupReport(scores: readonly TaskScores[]): TaskGroupReport & { summary: Summary } {
  const summary = summarize(scores);
  const a = summary.average;
  return {
    metric: a.metric,
    average: a.score,
    tasks: taskNumbers(summary),
    taskDetails: summary.tasks,
    ...(a.answerLoss !== undefined ? { answerLoss: a.answerLoss } : {}),
    ...(a.answerLossWithEos !== undefined ? { answerLossWithEos: a.answerLossWithEos } : {}),
    ...(a.demonstrations !== undefined ? { demonstrations: a.demonstrations } : {}),
    summary,
  };
}

const hasLoss = (scores: readonly TaskScores[], key: 'answerLoss' | 'answerLossWithEos' = 'answerLoss') =>
  scores.length > 0 && scores.every((t) => t[key] !== undefined && t[key]!.some(Number.isFinite));

/** The paired comparison a − b (score, and answer loss where both have it). */
export function compareMethods(
  a: { name: string; scores: readonly TaskScores[] },
  b: { name: string; scores: readonly TaskScores[] },
  o: { resamples?: number; seed?: number } = {},
): Comparison {
  const paired = (value: BootstrapValue, lowerIsBetter: boolean) => {
    const ci = pairedBootstrap(a.scores, b.scores, { ...o, value });
    return { ...ci, verdict: verdict(lowerIsBetter ? { low: -ci.high, high: -ci.low } : ci) };
  };
  const both = (key: 'answerLoss' | 'answerLossWithEos') => hasLoss(a.scores, key) && hasLoss(b.scores, key);
  return {
    a: a.name,
    b: b.name,
    score: paired('score', false),
    ...(both('answerLoss') ? { answerLoss: paired('answerLoss', true) } : {}),
    ...(both('answerLossWithEos') ? { answerLossWithEos: paired('answerLossWithEos', true) } : {}),
  };
}

/** All hold → holds; one does not hold → does not hold; else inconclusive. */
function combined(verdicts: readonly Verdict[]): Verdict {
  if (verdicts.length > 0 && verdicts.every((v) => v === 'holds')) return 'holds';
  if (verdicts.some((v) => v === 'does not hold')) return 'does not hold';
  return 'inconclusive';
}

function claim(id: ClaimId, statement: string, comparisons: Comparison[], step?: number): ClaimResult {
  const losses = comparisons.map((c) => c.answerLoss?.verdict);
  return {
    id,
    statement,
    comparisons,
    verdict: combined(comparisons.map((c) => c.score.verdict)),
    ...(losses.every((v) => v !== undefined) ? { answerLossVerdict: combined(losses as Verdict[]) } : {}),
    ...(step !== undefined ? { step } : {}),
  };
}

export const CLAIM_STATEMENTS: Record<ClaimId, string> = {
  'claim 1': 'HyperLlama beats zero-shot',
  'claim 2': 'full-attention ICL beats HyperLlama',
  'claim 3': 'HyperLlama prefixes initialise prefix tuning better than random and trained-shared prefixes',
  'swap gap': "HyperLlama's own prefix beats another task's",
};

/**
 * Summarises every method's scores into the report written as results.json. Control tasks (named in
 * `controlTasks`, or marked `control: true` in the scores) are summarised apart and left out of each method's
 * average and of the claims. When the methods are there, the claims are tested on the headline tasks with paired
 * bootstrap 95% intervals ({@link pairedBootstrap}), on the score and on the answer loss:
 * claim 1 = hyperllama − zero-shot, claim 2 = icl − hyperllama, the swap gap = hyperllama − hyperllama-swap, and
 * claim 3 = prefix-tuning-hyper − prefix-tuning-random and − prefix-tuning-shared at the last curve step (holds only
 * when both hold). The third argument may be the creation date (older form) or the options.
 */
export function buildReport(
  results: readonly MethodResult[],
  configuration: Record<string, unknown> = {},
  options: Date | BuildReportOptions = {},
): EvalReport {
  const o: BuildReportOptions = options instanceof Date ? { created: options } : options;
  if (results.length === 0)
    throw new EvalError('NO_RESULTS', 'buildReport: expected at least one method, got none', { field: 'results' });
  const boot = { resamples: o.resamples ?? 2000, seed: o.seed ?? 0 };
  const controlSet = new Set([
    ...(o.controlTasks ?? []),
    ...results.flatMap((r) => r.scores.filter((t) => t.control).map((t) => t.task)),
  ]);
  const headlineOf = (scores: readonly TaskScores[]) => scores.filter((t) => !controlSet.has(t.task));
  const methods: Record<string, MethodReport> = {};
  const headline: Record<string, TaskScores[]> = {};
  for (const r of results) {
    if (r.method in methods)
      throw new EvalError('DUPLICATE_METHOD', `buildReport: method "${r.method}" appears twice`, {
        field: 'method',
        actual: r.method,
      });
    const main = headlineOf(r.scores);
    if (main.length === 0)
      throw new EvalError('NO_RESULTS', `buildReport: method "${r.method}" has no task outside the control tasks`, {
        field: 'controlTasks',
      });
    const controls = r.scores.filter((t) => controlSet.has(t.task));
    const { summary, ...group } = groupReport(main);
    const ci = bootstrapMean(main, boot);
    const lossCi = hasLoss(main) ? bootstrapMean(main, { ...boot, value: 'answerLoss' }) : undefined;
    headline[r.method] = main;
    methods[r.method] = {
      ...group,
      categories: summary.categories,
      configuration: r.configuration,
      averageCi: { low: ci.low, high: ci.high },
      ...(lossCi ? { answerLossCi: { low: lossCi.low, high: lossCi.high } } : {}),
      ...(controls.length > 0 ? { control: (({ summary: _s, ...g }) => g)(groupReport(controls)) } : {}),
      ...(r.curve
        ? {
            curve: r.curve.map((p) => {
              const g = groupReport(headlineOf(p.scores));
              return {
                step: p.step,
                average: g.average,
                tasks: g.tasks,
                ...(g.answerLoss !== undefined ? { answerLoss: g.answerLoss } : {}),
                ...(g.answerLossWithEos !== undefined ? { answerLossWithEos: g.answerLossWithEos } : {}),
              };
            }),
          }
        : {}),
    };
  }
  const claims: ClaimResult[] = [];
  const has = (...names: string[]) => names.every((n) => n in headline);
  const cmp = (a: string, b: string, scoresOf = (m: string) => headline[m]) =>
    compareMethods({ name: a, scores: scoresOf(a) }, { name: b, scores: scoresOf(b) }, boot);
  if (has('hyperllama', 'zero-shot'))
    claims.push(claim('claim 1', CLAIM_STATEMENTS['claim 1'], [cmp('hyperllama', 'zero-shot')]));
  if (has('icl', 'hyperllama')) claims.push(claim('claim 2', CLAIM_STATEMENTS['claim 2'], [cmp('icl', 'hyperllama')]));
  const prefixTuning = prefixTuningReport(results, headlineOf, boot);
  if (prefixTuning && ['hyper', 'random', 'shared'].every((i) => prefixTuning.inits.includes(i))) {
    const last = prefixTuning.points[prefixTuning.points.length - 1];
    claims.push(
      claim(
        'claim 3',
        CLAIM_STATEMENTS['claim 3'],
        [last.differences['hyper − random'], last.differences['hyper − shared']],
        last.step,
      ),
    );
  }
  if (has('hyperllama', 'hyperllama-swap'))
    claims.push(claim('swap gap', CLAIM_STATEMENTS['swap gap'], [cmp('hyperllama', 'hyperllama-swap')]));
  return {
    format: 'hyperllama-eval/2',
    created: (o.created ?? new Date()).toISOString(),
    configuration,
    methods,
    controlTasks: [...controlSet],
    claims,
    ...(prefixTuning ? { prefixTuning } : {}),
    bootstrap: boot,
  };
}

const PT = 'prefix-tuning-';

/** Curves of `prefix-tuning-<init>` methods: per step each init's average with its interval, and hyper's paired differences. */
function prefixTuningReport(
  results: readonly MethodResult[],
  headlineOf: (s: readonly TaskScores[]) => TaskScores[],
  boot: { resamples: number; seed: number },
): PrefixTuningReport | undefined {
  const tuned = results.filter((r) => r.method.startsWith(PT) && r.curve && r.curve.length > 0);
  if (tuned.length === 0) return undefined;
  const inits = tuned.map((r) => r.method.slice(PT.length));
  const at = (r: MethodResult, step: number) => r.curve!.find((p) => p.step === step);
  const steps = [...new Set(tuned.flatMap((r) => r.curve!.map((p) => p.step)))]
    .sort((a, b) => a - b)
    .filter((st) => tuned.every((r) => at(r, st)));
  const hyper = tuned.find((r) => r.method === `${PT}hyper`);
  const cfg = tuned[0].configuration;
  return {
    lr: cfg.lr,
    steps: cfg.steps,
    evalSteps: cfg.evalSteps,
    batchSize: cfg.batchSize,
    poolSize: cfg.poolSize,
    poolSplitFromInstances: cfg.poolSplitFromInstances,
    inits,
    points: steps.map((step) => {
      const point: PrefixTuningReport['points'][number] = { step, inits: {}, differences: {} };
      for (const r of tuned) {
        const scores = headlineOf(at(r, step)!.scores);
        const ci = bootstrapMean(scores, boot);
        const loss = hasLoss(scores) ? bootstrapMean(scores, { ...boot, value: 'answerLoss' }) : undefined;
        point.inits[r.method.slice(PT.length)] = {
          average: ci.mean,
          low: ci.low,
          high: ci.high,
          ...(loss ? { answerLoss: loss.mean, answerLossLow: loss.low, answerLossHigh: loss.high } : {}),
        };
      }
      if (hyper) {
        for (const other of ['random', 'shared', 'hyper-other']) {
          const r = tuned.find((x) => x.method === PT + other);
          if (r)
            point.differences[`hyper − ${other}`] = compareMethods(
              { name: `${PT}hyper`, scores: headlineOf(at(hyper, step)!.scores) },
              { name: PT + other, scores: headlineOf(at(r, step)!.scores) },
              boot,
            );
        }
      }
      return point;
    }),
  };
}

/** Every headline task of the report, in first-seen order. */
export function reportTasks(report: EvalReport): string[] {
  const seen = new Set<string>();
  for (const m of Object.values(report.methods)) for (const t of Object.keys(m.tasks)) seen.add(t);
  return [...seen];
}

/** A score as printed: accuracy and exact match as percentages, ROUGE-L as is, both with one decimal. */
export function formatScore(value: number | undefined, metric: Metric | 'mixed'): string {
  if (value === undefined) return '–';
  const scale = metric === 'mixed' ? 1 : METRIC_SCALE[metric];
  return ((value / scale) * 100).toFixed(1);
}

function metricOfTask(groups: readonly TaskGroupReport[], task: string): Metric {
  for (const g of groups) if (g.taskDetails[task]) return g.taskDetails[task].metric;
  return 'accuracy';
}

function taskTable(groups: Record<string, TaskGroupReport | undefined>): string[][] {
  const methods = Object.keys(groups).filter((m) => groups[m]);
  const present = methods.map((m) => groups[m]!);
  const tasks = [...new Set(present.flatMap((g) => Object.keys(g.tasks)))];
  const header = ['task', 'metric', ...methods];
  const rows = tasks.map((task) => {
    const metric = metricOfTask(present, task);
    return [task, metric, ...present.map((g) => formatScore(g.tasks[task], metric))];
  });
  const avgMetrics = new Set(present.map((g) => g.metric));
  const average = [
    'average',
    avgMetrics.size === 1 ? [...avgMetrics][0] : 'mixed',
    ...present.map((g) => formatScore(g.average, g.metric)),
  ];
  return [header, ...rows, average];
}

/** The task × method table of the headline tasks (rows: tasks then the average), as rows of cells. */
export function reportTable(report: EvalReport): string[][] {
  return taskTable(report.methods);
}

/** The task × method table of the control tasks, or undefined when there is none. */
export function controlTable(report: EvalReport): string[][] | undefined {
  if (!Object.values(report.methods).some((m) => m.control)) return undefined;
  return taskTable(Object.fromEntries(Object.entries(report.methods).map(([n, m]) => [n, m.control])));
}

const signed = (x: number, digits: number): string => `${x >= 0 ? '+' : '-'}${Math.abs(x).toFixed(digits)}`;
const loss = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(3));
const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : (100 * x).toFixed(1));
const interval = (ci: Interval | undefined, f: (x: number) => string): string =>
  ci ? `[${f(ci.low)}, ${f(ci.high)}]` : '–';

/**
 * Per method: the average and its 95% interval, the answer loss (without EOS) and its interval, the answer loss with
 * EOS and the demonstrations seen (mean per task), as rows of cells.
 */
export function methodSummaryTable(report: EvalReport): string[][] {
  const header = ['method', 'average', '95% CI', 'answer loss', '95% CI', 'loss with EOS', 'demonstrations'];
  const rows = Object.entries(report.methods).map(([name, m]) => [
    name,
    formatScore(m.average, m.metric),
    interval(m.averageCi, pct),
    loss(m.answerLoss),
    interval(m.answerLossCi, loss),
    loss(m.answerLossWithEos),
    m.demonstrations === undefined ? '–' : m.demonstrations.toFixed(1),
  ]);
  return [header, ...rows];
}

/** Prefix tuning per step: each init's average [95% CI] and answer loss, then hyper's paired differences. */
export function prefixTuningTable(report: EvalReport): string[][] | undefined {
  const pt = report.prefixTuning;
  if (!pt) return undefined;
  const diffs = [...new Set(pt.points.flatMap((p) => Object.keys(p.differences)))];
  const header = ['step', ...pt.inits, ...diffs.map((d) => `${d} (points)`), ...diffs.map((d) => `${d} (loss)`)];
  const rows = pt.points.map((p) => [
    String(p.step),
    ...pt.inits.map((i) => {
      const x = p.inits[i];
      return x ? `${pct(x.average)} [${pct(x.low)}, ${pct(x.high)}] / ${loss(x.answerLoss)}` : '–';
    }),
    ...diffs.map((d) => {
      const c = p.differences[d];
      return c
        ? `${signed(100 * c.score.difference, 1)} [${signed(100 * c.score.low, 1)}, ${signed(100 * c.score.high, 1)}]`
        : '–';
    }),
    ...diffs.map((d) => {
      const c = p.differences[d]?.answerLoss;
      return c ? `${signed(c.difference, 3)} [${signed(c.low, 3)}, ${signed(c.high, 3)}]` : '–';
    }),
  ]);
  return [header, ...rows];
}

function comparisonText(c: Comparison, named: boolean): { score: string; loss?: string } {
  const label = named ? `${c.a.replace(PT, '')} − ${c.b.replace(PT, '')} ` : '';
  const s = c.score;
  const score = `${label}${signed(100 * s.difference, 1)} points [95% CI ${signed(100 * s.low, 1)}, ${signed(100 * s.high, 1)}]`;
  const l = c.answerLoss;
  return {
    score,
    ...(l
      ? { loss: `${label}${signed(l.difference, 3)} nats/token [95% CI ${signed(l.low, 3)}, ${signed(l.high, 3)}]` }
      : {}),
  };
}

/**
 * One line per claim: `claim 1 (HyperLlama beats zero-shot): holds — +12.3 points [95% CI +8.1, +16.0]; answer
 * loss -0.420 nats/token [95% CI -0.550, -0.300] (lower is better): holds`. Scores are a − b in points (×100 of the
 * [0, 1] score); answer losses a − b in nats/token without EOS, where a negative difference favours a.
 */
export function verdictLines(report: EvalReport): string[] {
  return report.claims.map((c) => {
    const named = c.comparisons.length > 1;
    const parts = c.comparisons.map((x) => comparisonText(x, named));
    const at = c.step !== undefined ? `at step ${c.step}: ` : '';
    const lossPart = c.answerLossVerdict
      ? `; answer loss ${at}${parts.map((p) => p.loss).join(', ')} (lower is better): ${c.answerLossVerdict}`
      : '';
    return `${c.id} (${c.statement}): ${c.verdict} — ${at}${parts.map((p) => p.score).join(', ')}${lossPart}`;
  });
}

function plainTable(rows: string[][], leftColumns: number): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r
      .map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0]), rule, ...rows.slice(1).map(line)];
}

function taskTableLines(rows: string[][]): string[] {
  const t = plainTable(rows, 2);
  return [...t.slice(0, -1), t[1], t[t.length - 1]];
}

/**
 * The report as aligned plain text for a terminal: the task × method table, the per-method summary (average with
 * its 95% interval, answer loss without / with EOS, demonstrations seen), the control tasks' table, the
 * prefix-tuning curves, and one verdict line per claim.
 */
export function formatTable(report: EvalReport): string {
  const out = taskTableLines(reportTable(report));
  out.push('', ...plainTable(methodSummaryTable(report), 1));
  const control = controlTable(report);
  if (control)
    out.push(
      '',
      `control tasks (left out of the averages above and of the claims): ${report.controlTasks.join(', ')}`,
      ...taskTableLines(control),
    );
  const pt = prefixTuningTable(report);
  if (pt) out.push('', prefixTuningSettings(report), ...plainTable(pt, 1));
  const verdicts = verdictLines(report);
  if (verdicts.length > 0) out.push('', ...verdicts);
  return out.join('\n') + '\n';
}

function prefixTuningSettings(report: EvalReport): string {
  const pt = report.prefixTuning!;
  const pool = pt.poolSize as { min: number; max: number; mean: number } | undefined;
  const split = (pt.poolSplitFromInstances as string[] | undefined) ?? [];
  return (
    `prefix tuning: lr ${String(pt.lr)}, ${String(pt.steps)} steps, minibatches of ${String(pt.batchSize)}, tuning pool of ` +
    `${pool ? (pool.min === pool.max ? pool.min : `${pool.min}–${pool.max}`) : '?'} examples per task (never an evaluated instance)` +
    `${split.length > 0 ? `; pool split off the instances for ${split.join(', ')}` : ''}; each cell: average [95% CI] / answer loss`
  );
}

const mdCell = (s: string): string => s.replace(/\|/g, '\\|');

function markdownTable(rows: string[][], leftColumns: number, boldLast = false): string[] {
  return [
    `| ${rows[0].map(mdCell).join(' | ')} |`,
    `| ${rows[0].map((_, c) => (c < leftColumns ? '---' : '---:')).join(' | ')} |`,
    ...rows.slice(1).map((r, i) => {
      const cells = r.map(mdCell);
      return boldLast && i === rows.length - 2
        ? `| ${cells.map((c) => `**${c}**`).join(' | ')} |`
        : `| ${cells.join(' | ')} |`;
    }),
  ];
}

/** results.md: the tables, what the numbers mean, each method's configuration, and (last) one verdict line per claim. */
export function renderMarkdown(report: EvalReport): string {
  const lines = [
    '# Evaluation results',
    '',
    `Created ${report.created}. Scores are percentages: accuracy (rank classification over each instance's answer`,
    'options, length-normalised unless configured otherwise) and exact match ×100, ROUGE-L as Super-NaturalInstructions',
    "reports it (0–100). The average is the macro average over tasks (`mixed`: each task divided by its metric's",
    'maximum first). The answer loss is the mean negative log-likelihood (nats/token) of the first reference answer,',
    'teacher-forced, without EOS (with EOS in its own column), averaged over instances and then over tasks.',
    `Intervals are paired (differences) or plain percentile bootstrap 95% intervals over instances resampled within each task (${report.bootstrap.resamples} resamples, seed ${report.bootstrap.seed}).`,
    '',
    ...markdownTable(reportTable(report), 2, true),
    '',
    '## Per method',
    '',
    ...markdownTable(methodSummaryTable(report), 1),
    '',
  ];
  const control = controlTable(report);
  if (control)
    lines.push(
      '## Control tasks',
      '',
      `Left out of the averages above and of the claims: ${report.controlTasks.join(', ')}.`,
      '',
      ...markdownTable(control, 2, true),
      '',
    );
  const curves = Object.entries(report.methods).filter(([, m]) => m.curve);
  if (curves.length > 0) {
    lines.push(
      '## Prefix tuning curves',
      '',
      '| step | ' + curves.map(([n]) => mdCell(n)).join(' | ') + ' |',
      '| ---: | ' + curves.map(() => '---:').join(' | ') + ' |',
    );
    const steps = [...new Set(curves.flatMap(([, m]) => m.curve!.map((p) => p.step)))].sort((a, b) => a - b);
    for (const step of steps) {
      const cells = curves.map(([, m]) => formatScore(m.curve!.find((p) => p.step === step)?.average, m.metric));
      lines.push(`| ${step} | ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  const pt = prefixTuningTable(report);
  if (pt)
    lines.push(
      '## Prefix tuning by initialisation, with intervals',
      '',
      prefixTuningSettings(report) + '.',
      '',
      ...markdownTable(pt, 1),
      '',
    );
  lines.push(
    '## Configuration',
    '',
    '```json',
    JSON.stringify(report.configuration, null, 2),
    '```',
    '',
    ...Object.entries(report.methods).flatMap(([name, m]) => [`- **${name}**: \`${JSON.stringify(m.configuration)}\``]),
    '',
  );
  const verdicts = verdictLines(report);
  if (verdicts.length > 0) {
    lines.push(
      '## Verdicts',
      '',
      "Each claim is tested on the headline tasks: `holds` when the 95% interval of the difference excludes 0 in the claim's favour, `does not hold` when it excludes 0 against it, else `inconclusive`. Score differences are in points; answer-loss differences in nats/token, where lower is better.",
      '',
      ...verdicts.flatMap((v) => [v, '']),
    );
  }
  return lines.join('\n');
}

// ---- SVG (hand-written, no dependencies) ----

const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

/** Horizontal grid lines and labels for a 0–100 axis. */
function yAxis(left: number, top: number, plotW: number, plotH: number, label: string): string[] {
  const out: string[] = [];
  for (let v = 0; v <= 100; v += 20) {
    const y = top + plotH - (v / 100) * plotH;
    out.push(`<line x1="${left}" y1="${num(y)}" x2="${left + plotW}" y2="${num(y)}" stroke="#dddddd"/>`);
    out.push(`<text x="${left - 6}" y="${num(y + 4)}" text-anchor="end">${v}</text>`);
  }
  out.push(
    `<text transform="translate(14 ${num(top + plotH / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(label)}</text>`,
  );
  return out;
}

/** Bar chart of each method's average (as a percentage); every bar carries `data-method` and `data-value`. */
export function renderBarChart(report: EvalReport): string {
  const methods = Object.entries(report.methods);
  const [left, top, barW, gap, plotH] = [56, 40, 64, 24, 260];
  const plotW = methods.length * (barW + gap) + gap;
  const width = left + plotW + 20;
  const height = top + plotH + 60;
  const body = yAxis(left, top, plotW, plotH, 'average score (%)');
  methods.forEach(([name, m], i) => {
    const pct = Math.max(0, Math.min(100, Number(formatScore(m.average, m.metric))));
    const h = (pct / 100) * plotH;
    const x = left + gap + i * (barW + gap);
    const y = top + plotH - h;
    body.push(
      `<rect x="${num(x)}" y="${num(y)}" width="${barW}" height="${num(h)}" fill="${PALETTE[i % PALETTE.length]}" data-method="${escapeXml(name)}" data-value="${pct.toFixed(1)}"><title>${escapeXml(`${name}: ${pct.toFixed(1)}`)}</title></rect>`,
      `<text x="${num(x + barW / 2)}" y="${num(y - 4)}" text-anchor="middle">${pct.toFixed(1)}</text>`,
      `<text x="${num(x + barW / 2)}" y="${top + plotH + 16}" text-anchor="middle">${escapeXml(name)}</text>`,
    );
  });
  body.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333333"/>`);
  return svgDocument(width, height, 'Average over held-out tasks', body);
}

/** Methods that have a curve (prefix tuning by initialisation). */
export function curveMethods(report: EvalReport): string[] {
  return Object.entries(report.methods)
    .filter(([, m]) => m.curve && m.curve.length > 0)
    .map(([n]) => n);
}

/** Line chart of average score against prefix-tuning steps, one polyline (with `data-method`) per method. */
export function renderCurves(report: EvalReport): string {
  const names = curveMethods(report);
  if (names.length === 0)
    throw new EvalError('NO_CURVES', 'renderCurves: no method in the report has a curve', { field: 'methods' });
  const [left, top, plotW, plotH] = [56, 40, 420, 260];
  const maxStep = Math.max(1, ...names.flatMap((n) => report.methods[n].curve!.map((p) => p.step)));
  const width = left + plotW + 190;
  const height = top + plotH + 50;
  const body = yAxis(left, top, plotW, plotH, 'average score (%)');
  for (let i = 0; i <= 4; i++) {
    const step = Math.round((maxStep * i) / 4);
    const x = left + (step / maxStep) * plotW;
    body.push(`<text x="${num(x)}" y="${top + plotH + 16}" text-anchor="middle">${step}</text>`);
  }
  body.push(
    `<text x="${num(left + plotW / 2)}" y="${top + plotH + 36}" text-anchor="middle">prefix-tuning steps</text>`,
  );
  body.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333333"/>`);
  names.forEach((name, i) => {
    const m = report.methods[name];
    const color = PALETTE[i % PALETTE.length];
    const pts = m.curve!.map((p) => {
      const pct = Math.max(0, Math.min(100, Number(formatScore(p.average, m.metric))));
      return `${num(left + (p.step / maxStep) * plotW)},${num(top + plotH - (pct / 100) * plotH)}`;
    });
    body.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}" data-method="${escapeXml(name)}"/>`,
    );
    for (const pt of pts) {
      const [x, y] = pt.split(',');
      body.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
    }
    const ly = top + 10 + i * 18;
    body.push(
      `<line x1="${left + plotW + 16}" y1="${ly}" x2="${left + plotW + 36}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
    );
    body.push(`<text x="${left + plotW + 42}" y="${ly + 4}">${escapeXml(name)}</text>`);
  });
  return svgDocument(width, height, 'Prefix tuning by initialisation', body);
}

/** Writes results.json, results.md, methods.svg and (when a method has a curve) prefix-tuning.svg; returns the paths. */
export function writeReport(
  report: EvalReport,
  dir: string,
): Record<'json' | 'markdown' | 'chart' | 'curves', string | undefined> {
  const write = reportWriter(dir);
  return {
    json: write('results.json', JSON.stringify(report, null, 2) + '\n'),
    markdown: write('results.md', renderMarkdown(report)),
    chart: write('methods.svg', renderBarChart(report)),
    curves: curveMethods(report).length > 0 ? write('prefix-tuning.svg', renderCurves(report)) : undefined,
  };
}
