import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendError, currentBackend, disposeBackend, initBackend } from '../src/index.js';

afterEach(async () => {
  delete process.env.HYPERLLAMA_BACKEND;
  await disposeBackend();
});

describe('initBackend (this file never starts wasm; see wasm.test.ts)', () => {
  it('uses cpu when asked, and says so', async () => {
    const info = await initBackend({ backend: 'cpu' });
    expect(info.name).toBe('cpu');
    expect(info.reason).toMatch(/requested/);
    expect(tf.getBackend()).toBe('cpu');
    expect(currentBackend()).toEqual(info);
  });

  it('lets HYPERLLAMA_BACKEND override the option', async () => {
    process.env.HYPERLLAMA_BACKEND = 'cpu';
    const info = await initBackend({ backend: 'wasm' });
    expect(info.name).toBe('cpu');
    expect(info.reason).toMatch(/forced by HYPERLLAMA_BACKEND/);
  });

  it('rejects unknown backends and thread counts with a typed error', async () => {
    await expect(initBackend({ backend: 'webgl' as never })).rejects.toThrow(BackendError);
    process.env.HYPERLLAMA_BACKEND = 'nope';
    await expect(initBackend()).rejects.toThrow(/unknown backend "nope" \(from HYPERLLAMA_BACKEND\)/);
    delete process.env.HYPERLLAMA_BACKEND;
    await expect(initBackend({ backend: 'cpu', threads: 0 })).rejects.toThrow(/threads must be a positive integer/);
  });

  it('reports why tensorflow is unavailable when it is forced', async () => {
    let installed = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      installed = false;
    }
    if (installed) return; // a machine with native TensorFlow: covered by the auto test in wasm.test.ts
    const err = await initBackend({ backend: 'tensorflow' }).catch((e) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err.code).toBe('BACKEND_UNAVAILABLE');
    expect(err.message).toMatch(/@tensorflow\/tfjs-node-gpu: .*@tensorflow\/tfjs-node: /);
  });

  it('skips a tfjs-node package installed without its native addon, without importing it (no warning flood)', () => {
    // Importing two such packages registered every TensorFlow kernel twice, one warning line each. A stand-in
    // @tensorflow/tfjs-node-gpu without lib/napi-v*/tfjs_binding.node, found through NODE_PATH, says when it is imported.
    const fake = mkdtempSync(join(tmpdir(), 'fake-tfjs-node-'));
    const pkg = join(fake, '@tensorflow', 'tfjs-node-gpu');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node-gpu', main: 'index.js' }));
    writeFileSync(join(pkg, 'index.js'), "console.log('IMPORTED');\n");
    const index = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const script = `import { initBackend } from ${JSON.stringify(index)};
      try { await initBackend({ backend: 'tensorflow' }); console.log('LOADED'); }
      catch (e) { console.log('REASON ' + e.message); }`;
    try {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, NODE_PATH: fake },
      });
      const output = r.stdout + r.stderr;
      expect(output).not.toMatch(/already registered/);
      if (output.includes('LOADED')) return; // native TensorFlow works on this machine
      expect(output).not.toContain('IMPORTED');
      expect(output).toMatch(/@tensorflow\/tfjs-node-gpu: installed without its native addon/);
    } finally {
      rmSync(fake, { recursive: true, force: true });
    }
  });
});
