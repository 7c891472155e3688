#!/usr/bin/env node
// Packs tools/scripts/gpu-check.mjs for a GPU machine that has no npm, no network and maybe no Node (the device
// machines this project borrows): everything it runs in .gpu-check/ (git-ignored), which the device call carries and
// tools/scripts/gpu-device.sh unpacks there.
//
//   npm run build && node tools/scripts/gpu-pack.mjs [--dir .gpu-check] [--no-node] [--no-debs]
//
// .gpu-check/run/gpu-check.tar.xz  gpu-check.mjs bundled with esbuild (tfjs, the workspace packages, the bench
//                                  suites) + the `webgpu` package's Linux x64 Dawn addon (symbols stripped)
// .gpu-check/run/*.deb             the Vulkan loader and the GL dispatch libraries (Debian's, `apt-get download`),
//                                  unpacked there only when the machine has no libvulkan.so.1
// .gpu-check/node/node.xz          this Node binary, symbols stripped, xz with the x86 filter (about 20 MiB)
//
// A device call carries the working tree (tracked files) plus the carried paths, 64 MiB at most; the script prints
// whether both folders fit in one call or the node must go in a call of its own first (see tools/bench/README.md).
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const MiB = 2 ** 20;
/** What one device call may carry: the working tree and the carried paths together. */
const CALL_LIMIT = 64 * MiB;
/** Debian packages of the device README's recipe: the Vulkan loader, and GL dispatch for the OpenGL ES fallback. */
const DEBS = ['libvulkan1', 'libegl1', 'libglvnd0', 'libgles2', 'libopengl0'];

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const dirArg = argv.indexOf('--dir');
const dir = resolve(root, dirArg >= 0 ? argv[dirArg + 1] : '.gpu-check');
const log = (msg) => console.log(`[gpu-pack] ${msg}`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout || '').trim()}`);
  return r.stdout;
}

function size(path) {
  const s = statSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((n, f) => n + size(join(path, f)), 0);
}

/** An esbuild plugin: `name` resolves to a module each of whose exports throws when called. */
function stub(name) {
  const filter = new RegExp(`^${name.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')}$`);
  return {
    name: `stub-${name}`,
    setup(b) {
      b.onResolve({ filter }, () => ({ path: name, namespace: 'gpu-check-stub' }));
      b.onLoad({ filter: /.*/, namespace: 'gpu-check-stub' }, () => ({
        contents: `module.exports = new Proxy({}, { get: (_, key) => () => { throw new Error(${JSON.stringify(`${name} is not in the gpu-check bundle`)} + ' (' + String(key) + ')'); } });`,
        loader: 'js',
      }));
    },
  };
}

async function bundle(work) {
  const { build } = await import('esbuild');
  for (const p of ['packages/runtime/dist/index.js', 'packages/hypernet/dist/index.js', 'tools/bench/dist/index.js'])
    if (!existsSync(join(root, p))) throw new Error(`${p} is missing: run npm run build first`);
  const out = join(work, 'gpu-check.mjs');
  await build({
    entryPoints: [join(here, 'gpu-check.mjs')],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Dawn is a native addon (copied beside the bundle; the runtime imports it by a name in a variable, and the
    // optional tfjs-node packages likewise, so those imports stay as they are). The llama.cpp suite, which gpu-check
    // never runs, imports node-llama-cpp statically: a stub stands in for it.
    external: ['webgpu'],
    plugins: [stub('node-llama-cpp')],
    banner: {
      js: "import { createRequire as gpuCheckCreateRequire } from 'node:module'; const require = gpuCheckCreateRequire(import.meta.url);",
    },
    legalComments: 'none',
    logLevel: 'error',
  });
  // Dawn for Node: the Linux x64 addon only.
  const pkg = dirname(
    execFileSync(process.execPath, ['-p', "require.resolve('webgpu/package.json')"], {
      cwd: join(root, 'packages', 'runtime'),
      encoding: 'utf8',
    }).trim(),
  );
  const dest = join(work, 'node_modules', 'webgpu');
  mkdirSync(join(dest, 'dist', 'linux-x64'), { recursive: true });
  for (const f of ['package.json', 'index.js', 'LICENSE.md']) copyFileSync(join(pkg, f), join(dest, f));
  const addon = join(dest, 'dist', 'linux-x64', 'dawn.node');
  copyFileSync(join(pkg, 'dist', 'linux-x64', 'dawn.node'), addon);
  if (spawnSync('strip', ['--strip-unneeded', addon]).status !== 0)
    log('strip unavailable: Dawn addon left unstripped');
  return out;
}

async function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(`the device machines are linux-x64; this is ${process.platform}-${process.arch}`);
  rmSync(dir, { recursive: true, force: true });
  const runDir = join(dir, 'run');
  const nodeDir = join(dir, 'node');
  const work = join(dir, 'tmp', 'bundle');
  mkdirSync(runDir, { recursive: true });
  mkdirSync(work, { recursive: true });

  const t = performance.now();
  await bundle(work);
  run('tar', ['-C', work, '-cJf', join(runDir, 'gpu-check.tar.xz'), '.'], { env: { ...process.env, XZ_OPT: '-9' } });
  // The bundle must load outside the repository (no node_modules above it), as on the device.
  const check = mkdtempSync(join(tmpdir(), 'gpu-pack-'));
  try {
    run('tar', ['-C', check, '-xJf', join(runDir, 'gpu-check.tar.xz')]);
    run(process.execPath, [join(check, 'gpu-check.mjs'), '--help'], { cwd: check });
  } finally {
    rmSync(check, { recursive: true, force: true });
  }
  log(
    `bundle: ${(size(join(runDir, 'gpu-check.tar.xz')) / MiB).toFixed(2)} MiB (${((performance.now() - t) / 1000).toFixed(0)} s)`,
  );

  if (!flag('--no-debs')) {
    // amd64 packages whatever this machine's architecture, into the carried folder (the device README's recipe).
    const lists = join(dir, 'tmp', 'apt-lists');
    mkdirSync(join(lists, 'partial'), { recursive: true });
    const o = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64', `-oDir::State::Lists=${lists}`];
    try {
      run('apt-get', [...o, 'update']);
      run('apt-get', [...o, 'download', ...DEBS], { cwd: runDir });
      log(
        `debs: ${readdirSync(runDir)
          .filter((f) => f.endsWith('.deb'))
          .join(', ')}`,
      );
    } catch (e) {
      log(`could not download the Vulkan loader (${e.message.split('\n')[0]}): the device must have libvulkan.so.1`);
    }
  }

  if (!flag('--no-node')) {
    mkdirSync(nodeDir, { recursive: true });
    const bin = join(dir, 'tmp', 'node');
    copyFileSync(process.execPath, bin);
    if (spawnSync('strip', [bin]).status !== 0) log('strip unavailable: node left unstripped');
    log(`compressing ${process.execPath} (${process.version}), about a minute ...`);
    run('sh', ['-c', `xz -T1 --x86 --lzma2=preset=9e -c "${bin}" > "${join(nodeDir, 'node.xz')}"`]);
    writeFileSync(join(nodeDir, 'VERSION'), `${process.version}\n`);
    log(`node: ${(size(join(nodeDir, 'node.xz')) / MiB).toFixed(2)} MiB`);
  }
  rmSync(join(dir, 'tmp'), { recursive: true, force: true });

  // What one call carries: the tracked files as they are in this working tree, plus the carried folders.
  const tracked = run('git', ['ls-files', '-z'], { cwd: root, maxBuffer: 64 * MiB })
    .split('\0')
    .filter(Boolean)
    .reduce((n, f) => n + (existsSync(join(root, f)) ? statSync(join(root, f)).size : 0), 0);
  const runSize = size(runDir);
  const nodeSize = existsSync(nodeDir) ? size(nodeDir) : 0;
  const rel = (p) => relative(root, p);
  log(
    `working tree ${(tracked / MiB).toFixed(1)} MiB + ${rel(runDir)} ${(runSize / MiB).toFixed(1)} MiB + ${rel(nodeDir)} ${(nodeSize / MiB).toFixed(1)} MiB (limit ${CALL_LIMIT / MiB} MiB a call)`,
  );
  if (!nodeSize)
    log(
      `without node: carry ["${rel(runDir)}"], command: bash tools/scripts/gpu-device.sh run (the machine needs Node >= 20.16)`,
    );
  else if (tracked + runSize + nodeSize <= CALL_LIMIT)
    log(`one call fits: carry ["${rel(runDir)}", "${rel(nodeDir)}"], command: bash tools/scripts/gpu-device.sh run`);
  else if (tracked + nodeSize <= CALL_LIMIT && tracked + runSize <= CALL_LIMIT)
    log(
      `two calls, the second at once while the machine is warm: carry ["${rel(nodeDir)}"] with bash tools/scripts/gpu-device.sh stage, then carry ["${rel(runDir)}"] with bash tools/scripts/gpu-device.sh run (or run alone where the machine has Node >= 20.16)`,
    );
  else log('too large even in two calls: ask the device for Node, or shrink the working tree');
}

main().catch((e) => {
  console.error(`[gpu-pack] ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
