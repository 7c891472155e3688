/** Command-line options of hyperllama-bench and the backend specs it accepts. */
import { cpus } from 'node:os';
import type { BackendName, MatMulPath } from '@hyperllama/runtime';
import { CONFIG_SUITES, OPT_IN_SUITES, SUITES } from './suites.js';

export const USAGE = `usage: hyperllama-bench [--suite ${Object.keys(SUITES).join(',')}] [--backend wasm[-<n>t][-<m>p][-native|-xnnpack|-stock],cpu,webgpu,tensorflow] [--config tiny,small,default | 1b,1b-<format>,8b-<format>] [--quick] [--json <file>] [--reference <pytorch.json>]`;

export interface Args {
  suites: string[];
  backends: string[];
  config?: string;
  quick: boolean;
  json?: string;
  reference?: string;
  child: boolean;
  help: boolean;
}

export function parseArgs(argv: string[]): Args {
  const a: Args = { suites: [], backends: [], quick: false, child: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--suite' || flag === '--suites') a.suites = value().split(',');
    else if (flag === '--backend' || flag === '--backends') a.backends = value().split(',');
    else if (flag === '--config') a.config = value();
    else if (flag === '--quick') a.quick = true;
    else if (flag === '--json') a.json = value();
    else if (flag === '--reference') a.reference = value();
    else if (flag === '--child') a.child = true;
    else if (flag === '--help' || flag === '-h') a.help = true;
    else throw new Error(`unknown option ${flag}`);
  }
  if (a.suites.length === 0) {
    const bySuite = CONFIG_SUITES.find(([re]) => a.config?.split(',').every((c) => re.test(c)));
    a.suites = bySuite
      ? [bySuite[1]]
      : a.config
        ? ['model', 'llamacpp']
        : Object.keys(SUITES).filter((s) => !OPT_IN_SUITES.includes(s));
  }
  for (const s of a.suites)
    if (!SUITES[s]) throw new Error(`unknown suite "${s}"; known: ${Object.keys(SUITES).join(', ')}`);
  // Rejected here, before any child starts, rather than by each child.
  for (const b of a.backends) backendSpec(b);
  return a;
}

/**
 * `wasm` = all cores and the best matMul; `-<n>t` = n threads; `-<m>p` = a wasm pool of m threads (default: 1 with
 * the native matMul, else n); `-native`, `-xnnpack`, `-stock` = that matMul path (the runtime's `MatMulPath`),
 * e.g. `wasm-1t-stock` is tfjs-wasm as shipped.
 */
export function backendSpec(spec: string): {
  backend: BackendName;
  threads?: number;
  wasmThreads?: number;
  matMul?: MatMulPath;
} {
  const wasm = /^wasm(?:-(\d+)t)?(?:-(\d+)p)?(?:-(native|xnnpack|stock))?$/.exec(spec);
  if (wasm) {
    return {
      backend: 'wasm',
      threads: wasm[1] ? Number(wasm[1]) : Math.min(8, cpus().length),
      wasmThreads: wasm[2] ? Number(wasm[2]) : undefined,
      matMul: (wasm[3] as MatMulPath) ?? 'auto',
    };
  }
  if (spec === 'cpu' || spec === 'tensorflow' || spec === 'webgpu') return { backend: spec };
  throw new Error(`unknown backend "${spec}" (wasm[-<n>t][-<m>p][-native|-xnnpack|-stock], cpu, webgpu, tensorflow)`);
}
