#!/usr/bin/env node
/**
 * hyperllama-bench: runs benchmark suites, each backend in its own child process (the wasm backend is configured
 * once per process), prints one table and writes every record to JSON.
 *
 *   npm run bench -- [--suite runtime,llama,...] [--backend wasm,wasm-1t,cpu] [--config <name>] [--quick] [--json <file>]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { disposeBackend, initBackend, type BackendName } from '@hyperllama/runtime';
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
  child: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { suites: Object.keys(SUITES), backends: [], quick: false, child: false };
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
    else if (flag === '--child') a.child = true;
    else if (flag === '--help' || flag === '-h') {
      console.log(`usage: hyperllama-bench [--suite ${Object.keys(SUITES).join(',')}] [--backend wasm,wasm-1t,cpu,tensorflow] [--config tiny|small|default] [--quick] [--json <file>]`);
      process.exit(0);
    } else throw new Error(`unknown option ${flag}`);
  }
  for (const s of a.suites) if (!SUITES[s]) throw new Error(`unknown suite "${s}"; known: ${Object.keys(SUITES).join(', ')}`);
  return a;
}

/** `wasm` = all cores, `wasm-1t` = one thread. */
function backendSpec(spec: string): { backend: BackendName; threads?: number } {
  if (spec === 'wasm-1t') return { backend: 'wasm', threads: 1 };
  if (spec === 'wasm') return { backend: 'wasm', threads: Math.min(8, cpus().length) };
  if (spec === 'cpu' || spec === 'tensorflow') return { backend: spec };
  throw new Error(`unknown backend "${spec}" (wasm, wasm-1t, cpu, tensorflow)`);
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) return child(args);
  const records: BenchRecord[] = [];
  for (const suite of args.suites) {
    const backends = args.backends.length ? args.backends : DEFAULT_BACKENDS[suite] ?? ['wasm'];
    for (const spec of backends) {
      process.stderr.write(`[bench] ${suite} on ${spec}${args.config ? ` (${args.config})` : ''}...\n`);
      const childArgs = ['--suite', suite, '--backend', spec, '--child', ...(args.quick ? ['--quick'] : []), ...(args.config ? ['--config', args.config] : [])];
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
  console.log(table(records));
  const out = resolve(args.json ?? join('bench-results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`));
  mkdirSync(dirname(out), { recursive: true });
  const meta = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model };
  writeFileSync(out, `${JSON.stringify({ meta, records }, null, 2)}\n`);
  console.log(`\nwrote ${out}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
