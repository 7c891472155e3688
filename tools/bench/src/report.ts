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

/** One row per configuration of the `llamacpp` suite: decode tokens/s, ours and llama.cpp's, and ours / llama.cpp. */
export interface LlamaCppRow {
  config: string;
  ours: number;
  oursBackend: string;
  llamaCpp: number;
  llamaCppF32Kv: number;
  ratio: number;
  ratioF32Kv: number;
  /** Best runs (the fastest of each side): on a shared machine, the closest to uncontended speed. */
  oursBest: number;
  llamaCppBest: number;
  ratioBest: number;
  engine: string;
}

export function llamaCppSummary(records: BenchRecord[]): LlamaCppRow[] {
  const rows: LlamaCppRow[] = [];
  for (const config of new Set(records.filter((r) => r.suite === 'llamacpp').map((r) => r.name))) {
    const decode = records.filter(
      (r) => r.suite === 'llamacpp' && r.name === config && r.metric === 'decodeTokensPerSec',
    );
    const ours = decode.find((r) => !r.backend.startsWith('llama.cpp'));
    const shipped = decode.find((r) => r.backend.endsWith('f16 KV'));
    const f32 = decode.find((r) => r.backend.endsWith('f32 KV'));
    if (!ours || !shipped || !f32) continue;
    rows.push({
      config,
      ours: ours.value,
      oursBackend: ours.backend,
      llamaCpp: shipped.value,
      llamaCppF32Kv: f32.value,
      ratio: ours.value / shipped.value,
      ratioF32Kv: ours.value / f32.value,
      oursBest: Math.max(...(ours.runs ?? [ours.value])),
      llamaCppBest: Math.max(...(shipped.runs ?? [shipped.value])),
      ratioBest: Math.max(...(ours.runs ?? [ours.value])) / Math.max(...(shipped.runs ?? [shipped.value])),
      engine: shipped.backend.replace(/ f16 KV$/, ''),
    });
  }
  return rows;
}

export function llamaCppTable(rows: LlamaCppRow[]): string {
  const head = [
    'config',
    'ours',
    'decode tokens/s',
    'llama.cpp (f16 KV)',
    'llama.cpp (f32 KV)',
    'ours / llama.cpp',
    'best runs: ours / llama.cpp',
  ];
  const cells = rows.map((r) => [
    r.config,
    r.oursBackend,
    formatValue(r.ours),
    formatValue(r.llamaCpp),
    formatValue(r.llamaCppF32Kv),
    `${r.ratio.toFixed(2)}× (${r.ratioF32Kv.toFixed(2)}× vs f32 KV)`,
    `${formatValue(r.oursBest)} / ${formatValue(r.llamaCppBest)} = ${r.ratioBest.toFixed(2)}×`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => (i >= 2 ? x.padStart(widths[i]) : x.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    `decode vs ${rows[0]?.engine ?? 'llama.cpp'}, batch 1, 2 threads:`,
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.map(line),
  ].join('\n');
}
