/** One measured number. `value` is the median of `runs` when several runs were made. */
export interface BenchRecord {
  suite: string;
  name: string;
  backend: string;
  metric: string;
  value: number;
  unit: string;
  runs?: number[];
}

export interface SuiteOptions {
  /** Fewer and smaller runs, for smoke tests. */
  quick: boolean;
  /** Extra configuration name (e.g. `tiny`, `small`, `default`), for suites that take one. */
  config?: string;
  /**
   * `model` suite only: a smaller workload than the configuration's (batch rows, tokens per row, new tokens when
   * decoding), for smoke runs on slow adapters; the records' name then says so, e.g. `tiny 1x32 8new`.
   */
  shape?: { batch?: number; seq?: number; newTokens?: number };
}

export type Suite = (opts: SuiteOptions) => Promise<BenchRecord[]>;

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Run `fn` `warmup` times unmeasured, then `runs` times; returns the durations in milliseconds. */
export async function timeRuns(fn: () => unknown | Promise<unknown>, runs: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}
