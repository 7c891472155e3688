#!/usr/bin/env node
/**
 * Builds the optional native matMul addon (hyperllama_blas.c → build/hyperllama_blas.node) when a C compiler, Node's
 * headers and OpenBLAS (cblas.h and libopenblas, e.g. Debian's `libopenblas-dev`) are present. Without them it prints
 * why and exits 0: the runtime then keeps the pure-wasm matMul.
 *
 *   node native/build.mjs [--required]    (--required: exit 1 when the addon cannot be built)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const required = process.argv.includes('--required');
const arch = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch;
const multiarch = `${arch}-linux-gnu`;

function skip(why) {
  console.error(`[hyperllama] native matMul not built: ${why}`);
  process.exit(required ? 1 : 0);
}

const nodeInclude = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].find((d) => existsSync(join(d, 'node_api.h')));
if (!nodeInclude) skip("Node's headers (node_api.h) were not found");
const blasInclude = [
  `/usr/include/${multiarch}/openblas-pthread`,
  `/usr/include/${multiarch}`,
  '/usr/include/openblas',
  '/usr/include',
  '/usr/local/include',
  '/opt/homebrew/opt/openblas/include',
].find((d) => existsSync(join(d, 'cblas.h')));
if (!blasInclude) skip('cblas.h was not found (install OpenBLAS headers, e.g. `apt-get install libopenblas-dev`)');
const libDirs = [
  `/usr/lib/${multiarch}/openblas-pthread`,
  `/usr/lib/${multiarch}`,
  '/usr/lib',
  '/usr/local/lib',
  '/opt/homebrew/opt/openblas/lib',
];
const libDir = libDirs.find((d) => existsSync(join(d, 'libopenblas.so')) || existsSync(join(d, 'libopenblas.dylib')));
if (!libDir) skip('libopenblas was not found (install OpenBLAS, e.g. `apt-get install libopenblas-dev`)');

const out = join(here, 'build', 'hyperllama_blas.node');
mkdirSync(dirname(out), { recursive: true });
const cc = process.env.CC ?? 'cc';
// The addon is built on the machine that runs it, so it may use that CPU's vector units (and glibc's vector expf).
const tuned = ['-O3', '-ffast-math', '-march=native'];
const args = (opt) => [
  ...opt,
  '-shared',
  '-fPIC',
  '-DNODE_GYP_MODULE_NAME=hyperllama_blas',
  `-I${nodeInclude}`,
  `-I${blasInclude}`,
  join(here, 'hyperllama_blas.c'),
  join(here, 'hyperllama_quant.c'),
  '-o',
  out,
  `-L${libDir}`,
  `-Wl,-rpath,${libDir}`,
  '-lopenblas',
  '-lm',
  ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : []),
];
try {
  execFileSync(cc, args(tuned), { stdio: 'inherit' });
} catch {
  try {
    execFileSync(cc, args(['-O2']), { stdio: 'inherit' }); // a compiler without -march=native
  } catch (e) {
    skip(`${cc} failed (${e.message})`);
  }
}
console.error(`[hyperllama] native matMul built: ${out} (OpenBLAS from ${libDir})`);
