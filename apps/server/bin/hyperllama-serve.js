#!/usr/bin/env node
// Launcher of `hyperllama-serve`. npm links a package's bin only if the file exists when `npm ci` runs, which is before
// dist/ is built; this committed file always exists and runs the built CLI. In a checkout of the repository where
// nothing is built yet (right after `npm ci`), it builds the CLI first, so the README's commands work as written.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
const repo = new URL('../../../', import.meta.url);
if (!existsSync(cli) && existsSync(new URL('nx.json', repo))) {
  console.error('hyperllama-serve: first run in this checkout: building it (npx nx run @hyperllama/server:build)');
  // Build output goes to stderr: stdout belongs to the command.
  const r = spawnSync('npx', ['nx', 'run', '@hyperllama/server:build', '--outputStyle=static'], {
    cwd: fileURLToPath(repo),
    stdio: ['ignore', 2, 2],
  });
  if (r.status !== 0) console.error(`hyperllama-serve: the build failed (exit ${r.status ?? r.signal})`);
}
if (!existsSync(cli)) {
  console.error('hyperllama-serve: the CLI is not built; run `npm run build` in the repository first');
  process.exit(1);
}
await import(cli.href);
