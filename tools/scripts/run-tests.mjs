#!/usr/bin/env node
// Builds and tests every project with nx, then prints the totals of all vitest runs on one line:
// "N passed, N failed". Exits non-zero when nx fails or any test failed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const projects = ['packages', 'apps', 'tools']
  .filter((g) => existsSync(join(root, g)))
  .flatMap((g) => readdirSync(join(root, g)).map((n) => join(root, g, n)))
  .filter((dir) => existsSync(join(dir, 'vitest.config.ts')));

for (const dir of projects) rmSync(join(dir, '.vitest-result.json'), { force: true });

const args = ['nx', 'run-many', '-t', 'build', 'test', '--outputStyle=stream', ...process.argv.slice(2)];
const nx = spawnSync('npx', args, { cwd: root, stdio: 'inherit' });

let passed = 0;
let failed = 0;
const missing = [];
for (const dir of projects) {
  const file = join(dir, '.vitest-result.json');
  if (!existsSync(file)) {
    missing.push(dir.slice(root.length + 1));
    continue;
  }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests ?? 0;
  failed += r.numFailedTests ?? 0;
  // A test file that crashed before reporting its tests counts as one failure.
  failed += (r.testResults ?? []).filter((f) => f.status === 'failed' && (f.assertionResults ?? []).length === 0).length;
}
if (missing.length) console.error(`no test results from: ${missing.join(', ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(nx.status !== 0 || failed > 0 || missing.length > 0 ? 1 : 0);
