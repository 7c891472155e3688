import type { Suite } from './types.js';

/** Suites by name, loaded lazily so a suite's dependencies load only when it runs. */
export const SUITES: Record<string, () => Promise<{ run: Suite }>> = {
  runtime: () => import('./suites/runtime.js'),
  model: () => import('./suites/model.js'),
  llamacpp: () => import('./suites/llamacpp.js'),
  tokenizer: () => import('./suites/tokenizer.js'),
  lora: () => import('./suites/lora.js'),
  hypernet: () => import('./suites/hypernet.js'),
  llama: () => import('./suites/llama.js'),
  eval: () => import('./suites/eval.js'),
  serve: () => import('./suites/serve.js'),
  big: () => import('./suites/big.js'),
};

/** Suites that run only when named (`--suite big`, or a `--config` of theirs): minutes and gigabytes. */
export const OPT_IN_SUITES: readonly string[] = ['big'];

/** `--config` names that select an opt-in suite when no suite is named. */
export const CONFIG_SUITES: ReadonlyArray<[RegExp, string]> = [[/^(1b|8b)(-\w+)?$/, 'big']];

/** Backends each suite runs on by default. */
export const DEFAULT_BACKENDS: Record<string, string[]> = {
  runtime: ['wasm', 'wasm-1t', 'cpu'],
  // The default path (the native addon where one loads) and pure wasm, so the gain stays visible.
  model: ['wasm', 'wasm-xnnpack'],
  // Our default path against llama.cpp; both sides use 2 threads (wasm = all cores, 2 here).
  llamacpp: ['wasm'],
  // Pure JS: the backend does not matter, cpu starts fastest.
  tokenizer: ['cpu'],
  lora: ['wasm-1t'],
  hypernet: ['wasm'],
  llama: ['wasm', 'cpu'],
  eval: ['wasm'],
  serve: ['wasm'],
  big: ['wasm'],
};
