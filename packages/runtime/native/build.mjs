#!/usr/bin/env node
/**
 * Builds the native addon from every `*.c` in this folder.
 *
 *   node native/build.mjs [--required]
 *     A local build, build/hyperllama_blas.node, linked against the system's OpenBLAS (shared, e.g. Debian's
 *     `libopenblas-dev`). Without a compiler, Node's headers or OpenBLAS it prints why and exits 0 (--required: 1);
 *     the runtime then uses the prebuilt binary for this platform, else pure wasm.
 *   node native/build.mjs --prebuilt      (npm run build:prebuilt -w @hyperllama/runtime)
 *     The binary shipped in the package, prebuilt/<platform>-<arch>/hyperllama_blas.node: OpenBLAS linked statically
 *     (libopenblas.a, the pthread build; its DYNAMIC_ARCH kernels pick AVX2/AVX-512 at run time), our C compiled for
 *     the baseline ISA (x86-64 / armv8-a; wider kernels through target_clones), stripped, with BUILD.json recording
 *     the inputs' and the output's sha256. Built twice from the same sources, compiler and libopenblas.a it is
 *     byte-identical. Fails (exit 1) when something is missing.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const prebuilt = process.argv.includes('--prebuilt');
const required = prebuilt || process.argv.includes('--required');
const arch = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch;
const multiarch = `${arch}-linux-gnu`;
/** The N-API version the addon is compiled against (Node ≥ 12.22, 14.17, 15.12, 16), pinned so that the binary does
 * not depend on which Node's headers built it. */
const NAPI_VERSION = 8;

function skip(why) {
  console.error(`[hyperllama] native addon not built: ${why}`);
  process.exit(required ? 1 : 0);
}

const sources = readdirSync(here)
  .filter((f) => f.endsWith('.c'))
  .sort();
if (!sources.length) skip(`no C sources in ${here}`);

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
const libName = prebuilt ? ['libopenblas.a'] : ['libopenblas.so', 'libopenblas.dylib'];
const libDir = libDirs.find((d) => libName.some((n) => existsSync(join(d, n))));
if (!libDir) skip(`${libName.join(' or ')} was not found (install OpenBLAS, e.g. \`apt-get install libopenblas-dev\`)`);

const cc = process.env.CC ?? 'cc';
// No -ffast-math: with GCC < 13 it links crtfastmath.o into shared objects too, which turns on flush-to-zero for the
// whole Node process at load time. These flags are the parts the loops need (vectorised reductions).
const math = ['-fno-math-errno', '-fno-trapping-math', '-fno-signed-zeros', '-fassociative-math'];
const common = [
  '-O3',
  ...math,
  '-shared',
  '-fPIC',
  '-fvisibility=hidden',
  '-DNODE_GYP_MODULE_NAME=hyperllama_blas',
  `-DNAPI_VERSION=${NAPI_VERSION}`,
  `-I${nodeInclude}`,
  `-I${blasInclude}`,
];
const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

if (!prebuilt) {
  const out = join(here, 'build', 'hyperllama_blas.node');
  mkdirSync(dirname(out), { recursive: true });
  const args = [
    ...common,
    ...sources.map((s) => join(here, s)),
    '-o',
    out,
    `-L${libDir}`,
    `-Wl,-rpath,${libDir}`,
    '-lopenblas',
    '-lm',
    ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : []),
  ];
  try {
    execFileSync(cc, args, { stdio: 'inherit' });
  } catch (e) {
    skip(`${cc} failed (${e.message.split('\n')[0]})`);
  }
  console.error(`[hyperllama] native addon built: ${out} (OpenBLAS from ${libDir})`);
  process.exit(0);
}

// --prebuilt
if (process.platform !== 'linux')
  skip(`--prebuilt links Debian's static OpenBLAS: linux only (this is ${process.platform})`);
const baseline = { x64: ['-march=x86-64', '-mtune=generic'], arm64: ['-march=armv8-a'] }[process.arch];
if (!baseline) skip(`no baseline ISA known for ${process.arch}`);
const target = `${process.platform}-${process.arch}`;
const dir = join(here, 'prebuilt', target);
mkdirSync(dir, { recursive: true });
const out = join(dir, 'hyperllama_blas.node');
const archive = realpathSync(join(libDir, 'libopenblas.a'));
const args = [
  ...baseline,
  ...common,
  `-ffile-prefix-map=${here}=.`,
  ...sources, // relative to `here` (cwd), so no absolute path can enter the binary
  '-o',
  out,
  archive,
  '-lm',
  '-lpthread',
  '-Wl,--exclude-libs,ALL', // OpenBLAS's symbols stay private to the addon
  '-Wl,--build-id=sha1',
  '-s',
];
try {
  execFileSync(cc, args, { cwd: here, stdio: 'inherit' });
} catch (e) {
  skip(`${cc} failed (${e.message.split('\n')[0]})`);
}

const firstLine = (cmd, a) => {
  try {
    return execFileSync(cmd, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')[0]
      .trim();
  } catch {
    return null;
  }
};
const pkg = firstLine('dpkg-query', ['-S', archive])?.split(':')[0] ?? null;
const manifest = {
  command: 'npm run build:prebuilt -w @hyperllama/runtime',
  target,
  compiler: firstLine(cc, ['--version']),
  flags: args.filter((a) => a.startsWith('-') && a !== '-o' && !/^-(I|ffile-prefix-map)/.test(a)),
  napiVersion: NAPI_VERSION,
  openblas: {
    archive: archive.replace(/^.*\/(lib[^/]*\.a)$/, '$1'),
    sha256: sha256(archive),
    package: pkg ? `${pkg} ${firstLine('dpkg-query', ['-W', '-f=${Version}', pkg]) ?? ''}`.trim() : null,
    licence: 'BSD-3-Clause, see ../LICENSE-OpenBLAS.txt',
  },
  sources: Object.fromEntries(sources.map((s) => [s, sha256(join(here, s))])),
  output: { file: 'hyperllama_blas.node', bytes: readFileSync(out).length, sha256: sha256(out) },
};
writeFileSync(join(dir, 'BUILD.json'), `${JSON.stringify(manifest, null, 2)}\n`);
const copyright = ['/usr/share/doc/libopenblas-dev/copyright', '/usr/share/doc/libopenblas0-pthread/copyright'].find(
  existsSync,
);
if (copyright) copyFileSync(copyright, join(here, 'prebuilt', 'LICENSE-OpenBLAS.txt'));
else if (!existsSync(join(here, 'prebuilt', 'LICENSE-OpenBLAS.txt'))) skip("OpenBLAS's licence text was not found");
console.error(
  `[hyperllama] prebuilt addon: ${out} (${(manifest.output.bytes / 1e6).toFixed(1)} MB, sha256 ${manifest.output.sha256.slice(0, 16)}…, static ${manifest.openblas.archive})`,
);
