#!/usr/bin/env node
/**
 * npm `install` script of @hyperllama/runtime. Never fails the install (always exits 0):
 *   - a local build (native/build) or a prebuilt binary for this platform that loads: nothing to do;
 *   - otherwise, where a C compiler and OpenBLAS exist, build the addon locally (native/build.mjs);
 *   - otherwise say in one line that the pure-wasm path will run, and why.
 * HYPERLLAMA_NATIVE=0 skips it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

try {
  const here = dirname(fileURLToPath(import.meta.url));
  const target = `${process.platform}-${process.arch}`;
  const require = createRequire(import.meta.url);
  const loads = (file) => {
    if (!existsSync(file)) return false;
    try {
      require(file);
      return true;
    } catch (e) {
      console.error(`[hyperllama] ${file} does not load here: ${e.message.split('\n')[0]}`);
      return false;
    }
  };
  if (
    process.env.HYPERLLAMA_NATIVE !== '0' &&
    !loads(join(here, 'build', 'hyperllama_blas.node')) &&
    !loads(join(here, 'prebuilt', target, 'hyperllama_blas.node'))
  ) {
    console.error(`[hyperllama] no prebuilt native addon for ${target}: trying to build one`);
    // build.mjs exits 0 with one line saying why when it cannot build; a crash or a hang is no reason to fail either.
    spawnSync(process.execPath, [join(here, 'build.mjs')], { stdio: 'inherit', timeout: 300_000 });
    if (!existsSync(join(here, 'build', 'hyperllama_blas.node')))
      console.error('[hyperllama] the wasm backend will run without the native addon (pure wasm, slower)');
  }
} catch (e) {
  console.error(`[hyperllama] native addon check skipped: ${e.message}`);
}
process.exit(0);
