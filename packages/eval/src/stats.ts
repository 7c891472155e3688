import { Rng, mean } from '@hyperllama/runtime';
import { METRIC_SCALE, type TaskScores } from './aggregate.js';
import { EvalError } from './errors.js';

/**
 * Which per-instance numbers a bootstrap resamples: the score (divided by its metric's maximum, so every task is on
 * [0, 1] and a difference ×100 reads as points), or the answer loss without / with EOS (nats/token).
 */
export type BootstrapValue = 'score' | 'answerLoss' | 'answerLossWithEos';

export interface BootstrapOptions {
  /** Resamples of the instances (default 2000). */
  resamples?: number;
  /** Seed of the `Rng` that draws the resampled indices (default 0). */
  seed?: number;
  /** Default `score`. */
  value?: BootstrapValue;
}

/** A paired difference of macro averages with its percentile 95% interval. */
export interface PairedInterval {
  /** Macro average of a − macro average of b (on the full data). */
  difference: number;
  /** 2.5th and 97.5th percentiles of the resampled differences. */
  low: number;
  high: number;
  resamples: number;
}

/** One method's macro average with its percentile 95% interval. */
export interface MeanInterval {
  mean: number;
  low: number;
  high: number;
  resamples: number;
}

export type Verdict = 'holds' | 'does not hold' | 'inconclusive';

/** Per-instance values of one task (NaN where an instance has none, e.g. the loss of an empty answer). */
export function instanceValues(t: TaskScores, value: BootstrapValue = 'score'): number[] {
  if (value === 'score') return t.scores.map((x) => x / METRIC_SCALE[t.metric]);
  const v = t[value];
  if (!v)
    throw new EvalError(
      'NO_ANSWER_LOSS',
      `task "${t.task}" has no ${value} (evaluate it with this version of @hyperllama/eval)`,
      { field: `${t.task}.${value}` },
    );
  if (v.length !== t.scores.length)
    throw new EvalError('BAD_SCORES', `task "${t.task}": ${t.scores.length} scores but ${v.length} ${value} values`, {
      field: `${t.task}.${value}`,
    });
  return v;
}

/** The q-quantile of sorted values, interpolating linearly between order statistics (NumPy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new EvalError('NO_RESULTS', 'quantile of no values', { field: 'values' });
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return lo === hi ? sorted[lo] : sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

function checkResamples(n: number): void {
  if (!Number.isInteger(n) || n < 1)
    throw new EvalError('BAD_OPTION', `bootstrap resamples: expected an integer >= 1, got ${n}`, {
      field: 'resamples',
      actual: n,
    });
}

/**
 * The bootstrap distribution of a macro average: per resample, every task's instances are resampled with replacement
 * (stratified: n_t draws within task t), each task's resampled mean is taken, and the tasks are averaged. Returns the
 * `resamples` macro averages in draw order. `perTask[t]` holds task t's per-instance values (all finite, at least one).
 */
export function bootstrapDistribution(
  perTask: readonly (readonly number[])[],
  o: { resamples?: number; seed?: number } = {},
): number[] {
  const resamples = o.resamples ?? 2000;
  checkResamples(resamples);
  if (perTask.length === 0 || perTask.some((xs) => xs.length === 0))
    throw new EvalError('NO_SCORES', 'bootstrap: every task needs at least one instance', { field: 'scores' });
  const draws = resampledIndices(
    perTask.map((xs) => xs.length),
    resamples,
    o.seed ?? 0,
  );
  const out: number[] = [];
  for (let r = 0; r < resamples; r++) {
    let total = 0;
    perTask.forEach((xs, t) => {
      const n = xs.length;
      const idx = draws[t];
      let sum = 0;
      for (let i = r * n, end = i + n; i < end; i++) sum += xs[idx[i]];
      total += sum / n;
    });
    out.push(total / perTask.length);
  }
  return out;
}

/** The resampled indices of a stratified bootstrap, per task `resamples × n_t` of them, cached (every comparison of a report draws the same ones). */
const drawCache = new Map<string, Int32Array[]>();

function resampledIndices(sizes: readonly number[], resamples: number, seed: number): Int32Array[] {
  const key = `${seed}|${resamples}|${sizes.join(',')}`;
  const hit = drawCache.get(key);
  if (hit) return hit;
  const rng = new Rng(seed).fork('bootstrap');
  const draws = sizes.map((n) => new Int32Array(resamples * n));
  for (let r = 0; r < resamples; r++) {
    sizes.forEach((n, t) => {
      const d = draws[t];
      for (let i = r * n, end = i + n; i < end; i++) d[i] = rng.int(n);
    });
  }
  if (drawCache.size >= 8) drawCache.delete(drawCache.keys().next().value!);
  drawCache.set(key, draws);
  return draws;
}

function interval(
  point: number,
  perTask: number[][],
  o: BootstrapOptions,
): { point: number; low: number; high: number; resamples: number } {
  const resamples = o.resamples ?? 2000;
  const sorted = bootstrapDistribution(perTask, { resamples, seed: o.seed }).sort((x, y) => x - y);
  return { point, low: quantile(sorted, 0.025), high: quantile(sorted, 0.975), resamples };
}

/**
 * Paired bootstrap 95% confidence interval for the difference of two methods' macro averages (mean over tasks of the
 * per-task mean): a and b must hold the same tasks with the same instance counts (the same instances, in the same
 * order); the per-instance differences a − b are resampled within each task (stratified, and paired: one set of
 * resampled indices serves both methods), and the interval is the 2.5th–97.5th percentile of the resampled
 * differences. Instances whose value is not finite on either side (the loss of an empty answer) are left out.
 */
export function pairedBootstrap(
  a: readonly TaskScores[],
  b: readonly TaskScores[],
  o: BootstrapOptions = {},
): PairedInterval {
  const value = o.value ?? 'score';
  if (a.length === 0) throw new EvalError('NO_RESULTS', 'pairedBootstrap: no task', { field: 'a' });
  const byName = new Map(b.map((t) => [t.task, t]));
  if (
    byName.size !== b.length ||
    new Set(a.map((t) => t.task)).size !== a.length ||
    a.length !== b.length ||
    a.some((t) => !byName.has(t.task))
  ) {
    throw new EvalError(
      'MISMATCHED_TASKS',
      `pairedBootstrap: the two methods must hold the same tasks, got [${a.map((t) => t.task).join(', ')}] and [${b.map((t) => t.task).join(', ')}]`,
      { field: 'tasks' },
    );
  }
  const diffs: number[][] = [];
  for (const ta of a) {
    const tb = byName.get(ta.task)!;
    if (ta.scores.length !== tb.scores.length) {
      throw new EvalError(
        'MISMATCHED_INSTANCES',
        `pairedBootstrap: task "${ta.task}" has ${ta.scores.length} instances in one method and ${tb.scores.length} in the other`,
        {
          field: ta.task,
          expected: ta.scores.length,
          actual: tb.scores.length,
        },
      );
    }
    const va = instanceValues(ta, value);
    const vb = instanceValues(tb, value);
    const d = va.map((x, i) => x - vb[i]).filter(Number.isFinite);
    if (d.length > 0) diffs.push(d);
  }
  if (diffs.length === 0)
    throw new EvalError('NO_SCORES', `pairedBootstrap: no instance has a finite ${value} in both methods`, {
      field: value,
    });
  const r = interval(mean(diffs.map(mean)), diffs, o);
  return { difference: r.point, low: r.low, high: r.high, resamples: r.resamples };
}

/** Bootstrap 95% interval of one method's macro average (instances resampled within each task). */
export function bootstrapMean(a: readonly TaskScores[], o: BootstrapOptions = {}): MeanInterval {
  const perTask = a
    .map((t) => instanceValues(t, o.value ?? 'score').filter(Number.isFinite))
    .filter((xs) => xs.length > 0);
  if (perTask.length === 0)
    throw new EvalError('NO_SCORES', `bootstrapMean: no instance has a finite ${o.value ?? 'score'}`, {
      field: o.value ?? 'score',
    });
  const r = interval(mean(perTask.map(mean)), perTask, o);
  return { mean: r.point, low: r.low, high: r.high, resamples: r.resamples };
}

/** `holds` when the interval lies above 0, `does not hold` when it lies below 0, else `inconclusive`. */
export function verdict(ci: { low: number; high: number }): Verdict {
  if (ci.low > 0) return 'holds';
  if (ci.high < 0) return 'does not hold';
  return 'inconclusive';
}
