import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const defaultModel = dirname(require.resolve('@hyperllama/default-model/package.json'));
const wasmDist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
const tasksDir = join(here, 'tasks');
const demoTasks = readdirSync(tasksDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => f.replace(/\.json$/, ''));

/** Files under `dir` (recursively) that the page loads: model weights, configs and tokenizers, not docs or logs. */
function modelFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return modelFiles(path);
    return /\.(json|safetensors)$/.test(name) ? [path] : [];
  });
}

/** Copies the embedded default model (with a manifest of its files), the demo tasks and tfjs's wasm binaries. */
function staticAssets(): Plugin {
  return {
    name: 'hyperllama-static-assets',
    apply: 'build',
    generateBundle() {
      const files = ['base', 'hyperllama'].flatMap((d) => modelFiles(join(defaultModel, d)));
      const names = files.map((f) => relative(defaultModel, f).split('\\').join('/'));
      files.forEach((f, i) =>
        this.emitFile({ type: 'asset', fileName: `models/default/${names[i]}`, source: readFileSync(f) }),
      );
      this.emitFile({
        type: 'asset',
        fileName: 'models/default/manifest.json',
        source: JSON.stringify({ files: names }, null, 2),
      });
      for (const t of demoTasks)
        this.emitFile({
          type: 'asset',
          fileName: `tasks/${t}.json`,
          source: readFileSync(join(tasksDir, `${t}.json`)),
        });
      for (const f of readdirSync(wasmDist).filter((n) => n.endsWith('.wasm')))
        this.emitFile({ type: 'asset', fileName: `wasm/${f}`, source: readFileSync(join(wasmDist, f)) });
    },
  };
}

/** Cross-origin isolation, so the wasm backend may use threads (SharedArrayBuffer). */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  root: here,
  base: './',
  plugins: [staticAssets()],
  define: { 'import.meta.env.VITE_DEMO_TASKS': JSON.stringify(demoTasks.join(',')) },
  // Not minified: tfjs-backend-wasm hands its threaded module factory to the pthread workers as source text
  // (Function.toString), and minified names from the enclosing bundle are undefined there ("e is not defined").
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 8000, minify: false },
  server: { headers: ISOLATION_HEADERS },
  preview: { headers: ISOLATION_HEADERS },
});
