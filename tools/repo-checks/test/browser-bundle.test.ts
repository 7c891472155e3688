import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { describe, expect, it } from 'vitest';

/**
 * Every model package bundles for a browser: esbuild (platform `browser`, so the `browser` export conditions and
 * `browser` fields apply) bundles its built entry with all its dependencies, and neither a `node:` import nor a bare
 * Node builtin (`fs`, `path`, …) may appear among the bundle's imports or survive in its code as a require/import.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MODEL_PACKAGES = [
  'runtime',
  'tokenizer',
  'llama-model',
  'gist-attention',
  'lora',
  'hypernet',
  'datasets',
  'eval',
];
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Node builtins a bundle's code still loads: static or dynamic import of a literal, or require of one. */
export function builtinLoads(code: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\bimport\s*["']([^"']+)["']/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) if (builtins.has(m[1])) found.add(m[1]);
  return [...found].sort();
}

describe('browser bundles of the model packages', () => {
  it('the scanner finds what it must (a perturbation check)', () => {
    expect(
      builtinLoads(`import { readFileSync } from "node:fs"; const p = require('path'); await import("os");`),
    ).toEqual(['node:fs', 'os', 'path']);
    expect(builtinLoads(`const x = "node:fs is mentioned"; import("./chunk.js"); import "./side.js";`)).toEqual([]);
  });

  it('esbuild refuses a node: import for the browser (so a package that has one fails here)', async () => {
    await expect(
      build({
        stdin: { contents: `import { readFileSync } from 'node:fs'; console.log(readFileSync);`, resolveDir: root },
        bundle: true,
        platform: 'browser',
        write: false,
        logLevel: 'silent',
      }),
    ).rejects.toThrow(/node:fs/);
  });

  for (const name of MODEL_PACKAGES) {
    const entry = join(root, 'packages', name, 'dist', 'index.js');
    it(`@hyperllama/${name} has no node: import in a browser bundle`, async () => {
      expect(existsSync(entry), `${entry} is missing: build the packages first (npm run build)`).toBe(true);
      const result = await build({
        entryPoints: [`@hyperllama/${name}`],
        absWorkingDir: join(root, 'tools', 'repo-checks'),
        bundle: true,
        platform: 'browser',
        format: 'esm',
        target: 'es2022',
        write: false,
        metafile: true,
        logLevel: 'silent',
      });
      const meta: Metafile = result.metafile;
      const imported = Object.values(meta.inputs).flatMap((input) => input.imports.map((i) => i.path));
      expect(imported.filter((p) => builtins.has(p))).toEqual([]);
      // The package's own sources are in the bundle (the check looked at the real code, not an empty entry).
      expect(Object.keys(meta.inputs).some((p) => p.includes(`packages/${name}/dist/index.js`))).toBe(true);
      // Our built code loads no builtin by a literal require()/import() either (dependencies' code is esbuild's to
      // resolve: an unresolvable builtin fails the build above; their string contents, e.g. worker sources, are not code).
      expect(builtinLoads(readFileSync(entry, 'utf8'))).toEqual([]);
    });
  }
});
