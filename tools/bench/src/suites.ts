import type { Suite } from './types.js';

/** Suites by name, loaded lazily so a suite's dependencies load only when it runs. */
export const SUITES: Record<string, () => Promise<{ run: Suite }>> = {
  runtime: () => import('./suites/runtime.js'),
};

/** Backends each suite runs on by default. */
export const DEFAULT_BACKENDS: Record<string, string[]> = {
  runtime: ['wasm', 'wasm-1t', 'cpu'],
};
