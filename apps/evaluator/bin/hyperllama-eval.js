#!/usr/bin/env node
// Launcher of `hyperllama-eval`. npm links a package's bin only if the file exists when `npm ci` runs, which is before
// dist/ is built; this committed file always exists and runs the built CLI.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('hyperllama-eval: the CLI is not built yet; run `npm run build` (or `npm start`) in the repository first');
  process.exit(1);
}
await import(cli.href);
