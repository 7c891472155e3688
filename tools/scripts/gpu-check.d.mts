/** One GPU target: measured and required values (null = unknown), met (null = not decided). */
export interface GpuTarget {
  id: string;
  target: string;
  unit: string;
  measured: number | null;
  required: number | null;
  met: boolean | null;
  note: string;
}

/** One phase of a run, as gpu-check.json records it. */
export interface GpuPhase {
  name: string;
  kind: 'adapter' | 'matmul' | 'model' | 'hyperllama';
  config?: string;
  kernel?: 'tfjs' | 'tiled';
  status: 'ok' | 'failed' | 'timeout' | 'not run';
  seconds: number;
  limitSeconds?: number;
  error?: string;
  data?: Record<string, unknown>;
}

/** The CPU figures per configuration (`tiny`, `small`): each metric's best value and the backend that gave it. */
export interface CpuReference {
  file: string;
  source: string;
  cpus?: number;
  cpuModel?: string;
  figures: Record<string, Partial<Record<'train' | 'forward' | 'decode', { value: number; backend: string }>>>;
}

export interface GpuReport {
  meta: Record<string, unknown> & { date: string; quick: boolean; node: string; totalSeconds: number };
  adapter: Record<string, unknown> | null;
  cpuReference: CpuReference | null;
  phases: GpuPhase[];
  targets: GpuTarget[];
  markdown: string;
}

/** Reads the CPU figures from a bench JSON (`{ records }`) or tools/bench/cpu-reference.json. */
export function readCpuReference(file: string): CpuReference;
/** Every target against the report's phases and CPU figures; `peak` = the adapter's fp32 GFLOPS, when known. */
export function evaluateTargets(
  report: Pick<GpuReport, 'phases' | 'cpuReference'>,
  opts: { quick: boolean; peak: { gflops: number; source: string } | null },
): GpuTarget[];
/** The Markdown tables for the README's GPU section. */
export function markdown(report: GpuReport): string;
