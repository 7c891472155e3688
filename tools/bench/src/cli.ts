#!/usr/bin/env node
/**
 * hyperllama-bench: runs benchmark suites, each backend in its own child process (the wasm backend is configured
 * once per process), prints one table and writes every record to JSON.
 *
 *   npm run bench -- [--suite runtime,model,...] [--backend wasm,wasm-1t,cpu,webgpu] [--config <name>[,<name>…]] [--quick] [--json <file>]
 *                    [--reference <pytorch.json>]
 * `--config` alone runs the `model` and `llamacpp` suites. `--reference` adds tfjs / PyTorch ratios from tools/reference/bench_reference.py.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { backendSpec, parseArgs, USAGE, type Args } from './args.js';
import { llamaCppSummary, llamaCppTable, modelRatios, modelSummary, ratioTable, table } from './report.js';
import { SUITES, DEFAULT_BACKENDS } from './suites.js';
import type { BenchRecord } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
const MARK = '@@bench-record ';

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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(USAGE);
    return;
  }
  if (args.child) return child(args);
  const records: BenchRecord[] = [];
  for (const suite of args.suites) {
    const backends = args.backends.length ? args.backends : (DEFAULT_BACKENDS[suite] ?? ['wasm']);
    // `--config a,b` runs each configuration in its own child (peak RSS is per process).
    for (const config of args.config ? args.config.split(',') : [undefined]) {
      for (const spec of backends) {
        process.stderr.write(`[bench] ${suite} on ${spec}${config ? ` (${config})` : ''}...\n`);
        const childArgs = [
          '--suite',
          suite,
          '--backend',
          spec,
          '--child',
          ...(args.quick ? ['--quick'] : []),
          ...(config ? ['--config', config] : []),
        ];
        const r = spawnSync(process.execPath, [...process.execArgv, join(here, 'cli.js'), ...childArgs], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
          maxBuffer: 64 * 1024 * 1024,
        });
        const got = r.stdout
          .split('\n')
          .filter((l) => l.startsWith(MARK))
          .map((l) => JSON.parse(l.slice(MARK.length)) as BenchRecord);
        if (r.status !== 0) process.stderr.write(`[bench] ${suite} on ${spec} exited with ${r.status}\n`);
        records.push(...got);
      }
    }
  }
  console.log(table(records));
  const summary = modelSummary(records);
  const reference = args.reference
    ? modelSummary((JSON.parse(readFileSync(args.reference, 'utf8')) as { records: BenchRecord[] }).records)
    : [];
  const ratios = modelRatios(summary, reference);
  if (ratios.length) console.log(`\n${ratioTable(ratios)}`);
  const llamaCpp = llamaCppSummary(records);
  if (llamaCpp.length) console.log(`\n${llamaCppTable(llamaCpp)}`);
  const out = resolve(
    args.json ?? join('bench-results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
  );
  mkdirSync(dirname(out), { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
  };
  writeFileSync(out, `${JSON.stringify({ meta, summary, reference, ratios, llamaCpp, records }, null, 2)}\n`);
  console.log(`\nwrote ${out}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
