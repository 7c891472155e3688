/** The printed tables and the JSON summary of a benchmark run. */
import type { BenchRecord } from './types.js';

export function table(records: BenchRecord[]): string {
  const rows = records.map((r) => [
    r.suite,
    r.name,
    r.backend,
    r.metric,
    formatValue(r.value),
    r.unit,
    r.runs ? String(r.runs.length) : '1',
  ]);
  const head = ['suite', 'benchmark', 'backend', 'metric', 'median', 'unit', 'runs'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 4 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export const MODEL_METRICS = ['trainTokensPerSec', 'forwardTokensPerSec', 'decodeTokensPerSec', 'peakRssMB'] as const;
export type ModelRow = { config: string; backend: string } & Partial<Record<(typeof MODEL_METRICS)[number], number>>;

/** One row per model configuration and backend with the four headline metrics (the JSON's `summary`). */
export function modelSummary(records: BenchRecord[]): ModelRow[] {
  const rows = new Map<string, ModelRow>();
  for (const r of records) {
    if (r.suite !== 'model' || !(MODEL_METRICS as readonly string[]).includes(r.metric)) continue;
    const key = `${r.name}\u0000${r.backend}`;
    if (!rows.has(key)) rows.set(key, { config: r.name, backend: r.backend });
    rows.get(key)![r.metric as (typeof MODEL_METRICS)[number]] = r.value;
  }
  return [...rows.values()];
}

/** tfjs / reference for each metric (for peak RSS: tfjs / reference too, lower is better). */
export function modelRatios(ours: ModelRow[], reference: ModelRow[]): Array<ModelRow & { reference: string }> {
  const out: Array<ModelRow & { reference: string }> = [];
  for (const row of ours) {
    const ref = reference.find((r) => r.config === row.config);
    if (!ref) continue;
    const ratio: ModelRow & { reference: string } = {
      config: row.config,
      backend: row.backend,
      reference: ref.backend,
    };
    for (const m of MODEL_METRICS) if (row[m] !== undefined && ref[m]) ratio[m] = row[m]! / ref[m]!;
    out.push(ratio);
  }
  return out;
}

export function ratioTable(ratios: Array<ModelRow & { reference: string }>): string {
  const head = ['config', 'backend', 'vs', ...MODEL_METRICS.map((m) => `${m} ratio`)];
  const rows = ratios.map((r) => [
    r.config,
    r.backend,
    r.reference,
    ...MODEL_METRICS.map((m) => (r[m] === undefined ? '-' : `${r[m]!.toFixed(2)}×`)),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
