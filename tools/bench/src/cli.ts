#!/usr/bin/env node
/**
 * hyperllama-bench: runs benchmark suites, each backend in its own child process (the wasm backend is configured
 * once per process), prints one table and writes every record to JSON.
 *
 *   npm run bench -- [--suite runtime,model,...] [--backend wasm,wasm-1t,cpu,webgpu] [--config <name>[,<name>…]] [--quick] [--json <file>]
 *                    [--reference <pytorch.json>]
 * `--config` alone runs the `model` suite. `--reference` adds tfjs / PyTorch ratios from tools/reference/bench_reference.py.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { disposeBackend, initBackend, type BackendName, type MatMulPath } from '@hyperllama/runtime';
import { SUITES, DEFAULT_BACKENDS } from './suites.js';
import type { BenchRecord } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
const MARK = '@@bench-record ';

interface Args {
  suites: string[];
  backends: string[];
  config?: string;
  quick: boolean;
  json?: string;
  reference?: string;
  child: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { suites: [], backends: [], quick: false, child: false };
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
    else if (flag === '--help' || flag === '-h') {
      console.log(
        `usage: hyperllama-bench [--suite ${Object.keys(SUITES).join(',')}] [--backend wasm[-<n>t][-<m>p][-native|-xnnpack|-stock],cpu,webgpu,tensorflow] [--config tiny,small,default] [--quick] [--json <file>] [--reference <pytorch.json>]`,
      );
      process.exit(0);
    } else throw new Error(`unknown option ${flag}`);
  }
  if (a.suites.length === 0) a.suites = a.config ? ['model'] : Object.keys(SUITES);
  for (const s of a.suites) if (!SUITES[s]) throw new Error(`unknown suite "${s}"; known: ${Object.keys(SUITES).join(', ')}`);
  return a;
}

/**
 * `wasm` = all cores and the best matMul; `-<n>t` = n threads; `-<m>p` = a wasm pool of m threads (default: 1 with
 * the native matMul, else n); `-native`, `-xnnpack`, `-stock` = that matMul path (the runtime's `MatMulPath`),
 * e.g. `wasm-1t-stock` is tfjs-wasm as shipped.
 */
function backendSpec(spec: string): { backend: BackendName; threads?: number; wasmThreads?: number; matMul?: MatMulPath } {
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

async function child(args: Args): Promise<void> {
  const [spec] = args.backends;
  await initBackend(backendSpec(spec));
  try {
    for (const s of args.suites) {
      const records = await (await SUITES[s]()).run({ quick: args.quick, config: args.config });
      for (const r of records) process.stdout.write(`${MARK}${JSON.stringify(r)}\n`);
    }
  } finally {
    await disposeBackend();
  }
}

function table(records: BenchRecord[]): string {
  const rows = records.map((r) => [r.suite, r.name, r.backend, r.metric, formatValue(r.value), r.unit, r.runs ? String(r.runs.length) : '1']);
  const head = ['suite', 'benchmark', 'backend', 'metric', 'median', 'unit', 'runs'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

const MODEL_METRICS = ['trainTokensPerSec', 'forwardTokensPerSec', 'decodeTokensPerSec', 'peakRssMB'] as const;
type ModelRow = { config: string; backend: string } & Partial<Record<(typeof MODEL_METRICS)[number], number>>;

/** One row per model configuration and backend with the four headline metrics (the JSON's `summary`). */
function modelSummary(records: BenchRecord[]): ModelRow[] {
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
function modelRatios(ours: ModelRow[], reference: ModelRow[]): Array<ModelRow & { reference: string }> {
  const out: Array<ModelRow & { reference: string }> = [];
  for (const row of ours) {
    const ref = reference.find((r) => r.config === row.config);
    if (!ref) continue;
    const ratio: ModelRow & { reference: string } = { config: row.config, backend: row.backend, reference: ref.backend };
    for (const m of MODEL_METRICS) if (row[m] !== undefined && ref[m]) ratio[m] = row[m]! / ref[m]!;
    out.push(ratio);
  }
  return out;
}

function ratioTable(ratios: Array<ModelRow & { reference: string }>): string {
  const head = ['config', 'backend', 'vs', ...MODEL_METRICS.map((m) => `${m} ratio`)];
  const rows = ratios.map((r) => [r.config, r.backend, r.reference, ...MODEL_METRICS.map((m) => (r[m] === undefined ? '-' : `${r[m]!.toFixed(2)}×`))]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) return child(args);
  const records: BenchRecord[] = [];
  for (const suite of args.suites) {
    const backends = args.backends.length ? args.backends : DEFAULT_BACKENDS[suite] ?? ['wasm'];
    // `--config a,b` runs each configuration in its own child (peak RSS is per process).
    for (const config of args.config ? args.config.split(',') : [undefined]) {
      for (const spec of backends) {
        process.stderr.write(`[bench] ${suite} on ${spec}${config ? ` (${config})` : ''}...\n`);
        const childArgs = ['--suite', suite, '--backend', spec, '--child', ...(args.quick ? ['--quick'] : []), ...(config ? ['--config', config] : [])];
        const r = spawnSync(process.execPath, [...process.execArgv, join(here, 'cli.js'), ...childArgs], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
          maxBuffer: 64 * 1024 * 1024,
        });
        const got = r.stdout.split('\n').filter((l) => l.startsWith(MARK)).map((l) => JSON.parse(l.slice(MARK.length)) as BenchRecord);
        if (r.status !== 0) process.stderr.write(`[bench] ${suite} on ${spec} exited with ${r.status}\n`);
        records.push(...got);
      }
    }
  }
  console.log(table(records));
  const summary = modelSummary(records);
  const reference = args.reference ? modelSummary((JSON.parse(readFileSync(args.reference, 'utf8')) as { records: BenchRecord[] }).records) : [];
  const ratios = modelRatios(summary, reference);
  if (ratios.length) console.log(`\n${ratioTable(ratios)}`);
  const out = resolve(args.json ?? join('bench-results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`));
  mkdirSync(dirname(out), { recursive: true });
  const meta = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model };
  writeFileSync(out, `${JSON.stringify({ meta, summary, reference, ratios, records }, null, 2)}\n`);
  console.log(`\nwrote ${out}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
