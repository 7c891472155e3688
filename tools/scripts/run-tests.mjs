#!/usr/bin/env node
// Builds and tests every project with nx, then prints every skipped test with its reason, a line of skip counts and,
// last, the totals of all vitest runs: "N passed, N failed" (the CI harness parses that last line; keep its form).
// Exits non-zero when nx fails or any test failed.
//
// With CI=true a skipped test counts as failed unless tools/scripts/allowed-skips.json explains it by a condition
// that holds on this machine and a missing ../shared is a failure. The native addon's tests run wherever npm ci gives a
// prebuilt binary that loads (linux-x64) or one was built locally; nothing is built here.
//
//   node tools/scripts/run-tests.mjs [nx options]   e.g. --projects=@hyperllama/runtime,@hyperllama/lora
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTotals, summarize } from './test-totals.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const ci = process.env.CI === 'true' || process.env.CI === '1';
const nxArgs = process.argv.slice(2);

let projects = ['packages', 'apps', 'tools']
  .filter((g) => existsSync(join(root, g)))
  .flatMap((g) => readdirSync(join(root, g)).map((n) => join(root, g, n)))
  .filter((dir) => existsSync(join(dir, 'vitest.config.ts')))
  .map((dir) => ({ dir, name: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name }));
// --projects=a,b (or --projects a,b) restricts nx to those projects; only their reports are expected then.
const pi = nxArgs.findIndex((a) => a === '--projects' || a.startsWith('--projects='));
if (pi >= 0) {
  const wanted = (nxArgs[pi].includes('=') ? nxArgs[pi].split('=')[1] : (nxArgs[pi + 1] ?? '')).split(',');
  projects = projects.filter((p) => wanted.includes(p.name));
}

const problems = [];
const shared = join(root, '..', 'shared');
if (
  !existsSync(join(shared, 'models')) ||
  !existsSync(join(shared, 'tokenizers')) ||
  !existsSync(join(shared, 'data'))
) {
  const why = `${shared} (models, tokenizers, data) is missing: the tests on real models, tokenizers and datasets skip`;
  if (ci) problems.push(`${why}; CI must provide it beside the repository`);
  else console.error(`[run-tests] ${why}`);
}

// The native addon: a local build, else the prebuilt binary shipped for this platform (npm ci gives it on linux-x64).
// CI builds nothing: where neither loads, the native tests skip, and only here may they.
const native = join(root, 'packages', 'runtime', 'native');
const addonFiles = [
  join(native, 'build', 'hyperllama_blas.node'),
  join(native, 'prebuilt', `${process.platform}-${process.arch}`, 'hyperllama_blas.node'),
];
const loadable = addonFiles.filter(
  (f) => existsSync(f) && spawnSync(process.execPath, ['-e', `require(${JSON.stringify(f)})`]).status === 0,
);
const nativeOff = process.env.HYPERLLAMA_NATIVE === '0';
const addonWhy = nativeOff
  ? 'HYPERLLAMA_NATIVE=0 turns the native addon off'
  : loadable.length
    ? `the native addon loads (${loadable[0].slice(root.length + 1)})`
    : `no native addon loads on ${process.platform}-${process.arch} (no prebuilt binary fits and none was built)`;

for (const p of projects) rmSync(join(p.dir, '.vitest-result.json'), { force: true });

const args = ['nx', 'run-many', '-t', 'build', 'test', '--outputStyle=stream', ...nxArgs];
const nx = spawnSync('npx', args, { cwd: root, stdio: 'inherit' });

// Conditions the allow-list may name, evaluated on this machine after the run.
const probe = spawnSync(process.execPath, [join(here, 'webgpu-adapter.mjs')], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'ignore'],
  timeout: 60_000,
});
const adapterLine = (probe.stdout ?? '').trim();
const conditions = {
  'no-webgpu-adapter':
    probe.status === 0 && adapterLine.startsWith('none: ')
      ? { holds: true, why: adapterLine.slice('none: '.length) }
      : { holds: false, why: probe.status === 0 ? `adapter: ${adapterLine}` : 'the adapter probe failed' },
  'native-addon-unavailable': { holds: nativeOff || loadable.length === 0, why: addonWhy },
  'no-prebuilt-for-platform': {
    holds: !existsSync(addonFiles[1]),
    why: `${existsSync(addonFiles[1]) ? 'a' : 'no'} prebuilt addon for ${process.platform}-${process.arch}`,
  },
};
const allow = JSON.parse(readFileSync(join(here, 'allowed-skips.json'), 'utf8')).allowed;

const reports = projects.map((p) => {
  const file = join(p.dir, '.vitest-result.json');
  return {
    project: p.dir.slice(root.length + 1),
    result: existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null,
  };
});
const summary = summarize(reports, { root, ci, allow, conditions, problems });
if (nx.status !== 0 && summary.failed === 0) {
  // nx failed somewhere no vitest report shows (a build, a crash): never let that read as 0 failed.
  summary.failed++;
  summary.failures.push(`nx run-many exited with ${nx.status ?? nx.signal}`);
}
for (const line of formatTotals(summary, { ci })) console.log(line);
process.exit(nx.status !== 0 || summary.failed > 0 ? 1 : 0);
