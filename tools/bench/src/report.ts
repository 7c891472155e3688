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
  /** llama.cpp's decode tokens/s by setting (`cpu×2 f16 KV`, `cpu×2 f32 KV`, `cpu×1 f16 KV`). */
  llamaCpp: Record<string, number>;
  /** Ours / llama.cpp by setting (medians). */
  ratio: Record<string, number>;
  /** Best runs of ours and of llama.cpp as shipped (2 threads, f16 KV): on a shared machine, closest to idle speed. */
  oursBest: number;
  llamaCppBest: number;
  ratioBest: number;
  engine: string;
}

export function llamaCppSummary(records: BenchRecord[]): LlamaCppRow[] {
  const rows: LlamaCppRow[] = [];
  const engineOf = /^(llama\.cpp .*\)) (cpu×.*)$/;
  for (const config of new Set(records.filter((r) => r.suite === 'llamacpp').map((r) => r.name))) {
    const decode = records.filter(
      (r) => r.suite === 'llamacpp' && r.name === config && r.metric === 'decodeTokensPerSec',
    );
    const ours = decode.find((r) => !engineOf.test(r.backend));
    const theirs = decode.filter((r) => engineOf.test(r.backend));
    const shipped = theirs.find((r) => r.backend.endsWith('cpu×2 f16 KV'));
    if (!ours || !shipped) continue;
    const best = (r: BenchRecord) => Math.max(...(r.runs ?? [r.value]));
    rows.push({
      config,
      ours: ours.value,
      oursBackend: ours.backend,
      llamaCpp: Object.fromEntries(theirs.map((r) => [engineOf.exec(r.backend)![2], r.value])),
      ratio: Object.fromEntries(theirs.map((r) => [engineOf.exec(r.backend)![2], ours.value / r.value])),
      oursBest: best(ours),
      llamaCppBest: best(shipped),
      ratioBest: best(ours) / best(shipped),
      engine: engineOf.exec(shipped.backend)![1],
    });
  }
  return rows;
}

export function llamaCppTable(rows: LlamaCppRow[]): string {
  const settings = [...new Set(rows.flatMap((r) => Object.keys(r.llamaCpp)))];
  const head = [
    'config',
    'ours',
    'ours tokens/s',
    ...settings.map((s) => `llama.cpp ${s}`),
    ...settings.map((s) => `ours / ${s}`),
    'best runs: ours / cpu×2 f16 KV',
  ];
  const cells = rows.map((r) => [
    r.config,
    r.oursBackend,
    formatValue(r.ours),
    ...settings.map((s) => (r.llamaCpp[s] === undefined ? '-' : formatValue(r.llamaCpp[s]))),
    ...settings.map((s) => (r.ratio[s] === undefined ? '-' : `${r.ratio[s].toFixed(2)}×`)),
    `${formatValue(r.oursBest)} / ${formatValue(r.llamaCppBest)} = ${r.ratioBest.toFixed(2)}×`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => (i >= 2 ? x.padStart(widths[i]) : x.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    `decode vs ${rows[0]?.engine ?? 'llama.cpp'}, batch 1, 16-token prompt + 64 tokens (medians of runs):`,
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.map(line),
  ].join('\n');
}
