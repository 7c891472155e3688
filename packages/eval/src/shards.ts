import { EvalError } from './errors.js';
import { reportWriter } from './files.js';
import { buildReport, type BuildReportOptions, type EvalReport, type MethodResult } from './report.js';

/**
 * Sharded evaluation: one evaluation split over `count` processes (a Slurm array, a Kubernetes Indexed Job), each
 * scoring the tasks of its shard and writing a partial report; {@link mergePartialReports} joins them into the report
 * an unsharded run builds. Task `i` of the task list (in its load order) belongs to shard `i mod count`: round robin,
 * so shards get about as many tasks each, and the same task list always splits the same way.
 */
export interface Shard {
  /** 0-based: 0 ≤ index < count. */
  index: number;
  count: number;
}

/** Parses `i/n` (0-based shard i of n, e.g. `3/4` is the last of four): integers with 0 ≤ i < n. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m)
    throw new EvalError('BAD_SHARD', `shard: expected i/n (0-based shard i of n, e.g. 0/4), got "${text}"`, {
      field: 'shard',
      expected: 'i/n',
      actual: text,
    });
  const shard = { index: Number(m[1]), count: Number(m[2]) };
  checkShard(shard);
  return shard;
}

/** Throws a typed error unless `shard` is integers with count ≥ 1 and 0 ≤ index < count. */
export function checkShard(shard: Shard): void {
  const { index, count } = shard;
  if (!(Number.isSafeInteger(count) && count >= 1))
    throw new EvalError('BAD_SHARD', `shard: the number of shards must be an integer ≥ 1, got ${count}`, {
      field: 'shard',
      expected: 'count ≥ 1',
      actual: count,
    });
  if (!(Number.isSafeInteger(index) && index >= 0 && index < count))
    throw new EvalError(
      'BAD_SHARD',
      `shard: the shard index must be an integer from 0 to ${count - 1} (0-based), got ${index}`,
      { field: 'shard', expected: `0..${count - 1}`, actual: index },
    );
}

/** The items of `shard` (item i belongs to shard i mod count), in their order. At least one, else a typed error. */
export function shardItems<T>(items: readonly T[], shard: Shard): T[] {
  checkShard(shard);
  if (shard.count > items.length)
    throw new EvalError(
      'BAD_SHARD',
      `shard ${shard.index}/${shard.count}: ${shard.count} shards for ${items.length} task(s) leave some shards empty; use at most ${items.length}`,
      { field: 'shard', expected: `count ≤ ${items.length}`, actual: shard.count },
    );
  return items.filter((_, i) => i % shard.count === shard.index);
}

/** Value of the `format` field of a partial report. */
export const PARTIAL_FORMAT = 'hyperllama-eval-partial/1';
/** File name of a shard's partial report. */
export const PARTIAL_FILE = 'partial.json';

/**
 * What one shard writes: its results (scores of its own tasks only; configurations computed over every task, so they
 * are the same in every shard), and everything the merge needs to build the unsharded report.
 */
export interface PartialReport {
  format: typeof PARTIAL_FORMAT;
  shard: Shard;
  /** Every task of the evaluation, in load order (the order of the unsharded report). */
  tasks: string[];
  /** This shard's tasks. */
  shardTasks: string[];
  /** The report's configuration (sources, backend, ...): {@link buildReport}'s second argument. */
  configuration: Record<string, unknown>;
  /** {@link buildReport}'s options, without `created`. */
  reportOptions: Omit<BuildReportOptions, 'created'>;
  results: MethodResult[];
}

// JSON has no NaN or ±Infinity (an empty answer's loss is NaN): they are written as {"$number": "NaN"} and read back.
const NON_FINITE = '$number';
const encodeNumber = (_: string, v: unknown) =>
  typeof v === 'number' && !Number.isFinite(v) ? { [NON_FINITE]: String(v) } : v;
const decodeNumber = (_: string, v: unknown) =>
  v !== null && typeof v === 'object' && Object.keys(v).length === 1 && NON_FINITE in v
    ? Number((v as Record<string, string>)[NON_FINITE])
    : v;

/** The text of `partial.json`: JSON, with NaN and ±Infinity kept. */
export function serializePartialReport(partial: PartialReport): string {
  return JSON.stringify(partial, encodeNumber, 2) + '\n';
}

/** Writes `partial.json` into `dir` (created when missing; atomically); returns its path. */
export function writePartialReport(partial: PartialReport, dir: string): string {
  return reportWriter(dir)(PARTIAL_FILE, serializePartialReport(partial));
}

/** A partial report from the text of a `partial.json` (`source` names it in errors), its format checked. */
export function parsePartialReport(text: string, source = PARTIAL_FILE): PartialReport {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, decodeNumber);
  } catch (e) {
    throw new EvalError('BAD_PARTIAL_REPORT', `${source}: not JSON (${(e as Error).message})`, { file: source });
  }
  const p = parsed as Partial<PartialReport>;
  if (p?.format !== PARTIAL_FORMAT)
    throw new EvalError(
      'BAD_PARTIAL_REPORT',
      `${source}: format is ${JSON.stringify(p?.format)}, expected ${PARTIAL_FORMAT}`,
      { file: source, field: 'format', expected: PARTIAL_FORMAT, actual: p?.format },
    );
  if (!p.shard || !Array.isArray(p.tasks) || !Array.isArray(p.shardTasks) || !Array.isArray(p.results))
    throw new EvalError('BAD_PARTIAL_REPORT', `${source}: missing shard, tasks, shardTasks or results`, {
      file: source,
    });
  checkShard(p.shard);
  return p as PartialReport;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a, encodeNumber) === JSON.stringify(b, encodeNumber);

/** Top-level keys (or indices) whose values differ between two objects or arrays; empty for other values. */
function differingKeys(a: unknown, b: unknown): string[] {
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') return [];
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => !same(x[k], y[k]));
}

/**
 * Joins the partial reports of every shard of one evaluation into its method results (each method's scores, and
 * each curve point's, in the task order of the unsharded run). Typed errors for a missing or repeated shard, shards
 * of different evaluations (task lists, configurations, methods), or a task scored twice or never.
 */
export function mergeShardResults(partials: readonly PartialReport[]): {
  results: MethodResult[];
  configuration: Record<string, unknown>;
  reportOptions: Omit<BuildReportOptions, 'created'>;
} {
  if (partials.length === 0)
    throw new EvalError('NO_PARTIAL_REPORT', 'merge: no partial report given', { field: 'partials' });
  const first = partials[0];
  const count = first.shard.count;
  const seen = new Map<number, number>();
  partials.forEach((p, i) => {
    if (p.shard.count !== count)
      throw new EvalError(
        'SHARD_MISMATCH',
        `merge: partial ${i} is shard ${p.shard.index}/${p.shard.count}, partial 0 is of ${count} shards`,
        { field: 'shard.count', expected: count, actual: p.shard.count },
      );
    if (seen.has(p.shard.index))
      throw new EvalError(
        'SHARD_MISMATCH',
        `merge: shard ${p.shard.index}/${count} given twice (partials ${seen.get(p.shard.index)} and ${i})`,
        { field: 'shard.index', actual: p.shard.index },
      );
    seen.set(p.shard.index, i);
    for (const [what, a, b] of [
      ['task list', p.tasks, first.tasks],
      ['configuration', p.configuration, first.configuration],
      ['report options', p.reportOptions, first.reportOptions],
      ['methods', p.results.map((r) => r.method), first.results.map((r) => r.method)],
      ['method configurations', p.results.map((r) => r.configuration), first.results.map((r) => r.configuration)],
    ] as const)
      if (!same(a, b)) {
        const keys = differingKeys(a, b);
        throw new EvalError(
          'SHARD_MISMATCH',
          `merge: shard ${p.shard.index}/${count} has another ${what} than shard ${first.shard.index}/${count}${keys.length ? ` (${keys.join(', ')})` : ''}: not the same evaluation`,
          { field: what, actual: keys },
        );
      }
  });
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length > 0)
    throw new EvalError('MISSING_SHARD', `merge: shard(s) ${missing.map((i) => `${i}/${count}`).join(', ')} missing`, {
      field: 'shard',
      expected: count,
      actual: [...seen.keys()].sort((a, b) => a - b),
    });
  const order = new Map(first.tasks.map((t, i) => [t, i]));
  const owner = new Map<string, number>();
  for (const p of partials)
    for (const t of p.shardTasks) {
      if (!order.has(t))
        throw new EvalError(
          'SHARD_MISMATCH',
          `merge: shard ${p.shard.index}/${count} scores task "${t}", not in the task list`,
          {
            field: 'shardTasks',
            actual: t,
          },
        );
      if (owner.has(t))
        throw new EvalError('SHARD_MISMATCH', `merge: task "${t}" is in shards ${owner.get(t)} and ${p.shard.index}`, {
          field: 'shardTasks',
          actual: t,
        });
      owner.set(t, p.shard.index);
    }
  const unscored = first.tasks.filter((t) => !owner.has(t));
  if (unscored.length > 0)
    throw new EvalError('MISSING_SHARD', `merge: task(s) ${unscored.join(', ')} in no shard`, {
      field: 'shardTasks',
      actual: unscored,
    });
  const sorted = <T extends { task: string }>(lists: readonly (readonly T[])[]): T[] =>
    lists.flat().sort((a, b) => order.get(a.task)! - order.get(b.task)!);
  const results = first.results.map((r, m): MethodResult => {
    const all = partials.map((p) => p.results[m]);
    return {
      method: r.method,
      configuration: r.configuration,
      scores: sorted(all.map((x) => x.scores)),
      ...(r.curve
        ? {
            curve: r.curve.map((point, k) => {
              for (const x of all)
                if (x.curve?.[k]?.step !== point.step)
                  throw new EvalError('SHARD_MISMATCH', `merge: method ${r.method}: shards evaluated different steps`, {
                    field: 'curve',
                  });
              return { step: point.step, scores: sorted(all.map((x) => x.curve![k].scores)) };
            }),
          }
        : {}),
    };
  });
  return { results, configuration: first.configuration, reportOptions: first.reportOptions };
}

/** The report of the whole evaluation from the partial reports of all its shards ({@link mergeShardResults}). */
export function mergePartialReports(partials: readonly PartialReport[], created?: Date): EvalReport {
  const { results, configuration, reportOptions } = mergeShardResults(partials);
  return buildReport(results, configuration, { ...reportOptions, ...(created ? { created } : {}) });
}
