#!/usr/bin/env node
// Prints one line, a fingerprint of what decides test outcomes but lives outside the tracked sources, for nx's
// test cache (nx.json: a "runtime" input): the reference material in ../shared, the optional backends that
// installed (native TensorFlow, webgpu, the OpenBLAS addon, which is git-ignored) and whether a WebGPU adapter
// exists. Without it nx would replay a run that skipped for lack of any of them as a pass after they appear.
// Backend environment variables are separate "env" inputs in nx.json.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const hash = createHash('sha256');
const add = (...parts) => hash.update(parts.join('\t') + '\n');

// ../shared: what tests read (models, tokenizers, data), by content. Its notes (*.md, hooks) change outcomes of nothing.
const shared = join(root, '..', 'shared');
function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const file = join(dir, name);
    const st = statSync(file);
    if (st.isDirectory()) walk(file);
    else add('shared', relative(shared, file), createHash('sha256').update(readFileSync(file)).digest('hex'));
  }
}
for (const sub of ['models', 'tokenizers', 'data']) {
  if (existsSync(join(shared, sub))) walk(join(shared, sub));
  else add('shared', sub, 'absent');
}

// Optional backends: a tfjs-node whose install script could not fetch libtensorflow is present but has no binding.
const modules = join(root, 'node_modules');
for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', 'webgpu', '@tensorflow/tfjs-backend-webgpu']) {
  const file = join(modules, pkg, 'package.json');
  const version = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).version : 'absent';
  const lib = join(modules, pkg, 'lib');
  const binding =
    pkg.startsWith('@tensorflow/tfjs-node') && existsSync(lib)
      ? readdirSync(lib).some((d) => existsSync(join(lib, d, 'tfjs_binding.node')))
      : null;
  add('package', pkg, version, binding === null ? '' : `binding=${binding}`);
}
const addon = join(root, 'packages', 'runtime', 'native', 'build', 'hyperllama_blas.node');
add('native', existsSync(addon) ? createHash('sha256').update(readFileSync(addon)).digest('hex') : 'absent');

// The adapter, asked in a child process: Dawn writes warnings to stderr, and stdout must hold only the fingerprint.
const probe = spawnSync(process.execPath, [join(here, 'webgpu-adapter.mjs')], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'ignore'],
  timeout: 60_000,
});
add('webgpu', probe.status === 0 ? probe.stdout.trim() : `probe failed (${probe.status ?? probe.signal})`);

console.log(hash.digest('hex'));
