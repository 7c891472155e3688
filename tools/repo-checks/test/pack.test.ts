import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const published = ['packages', 'apps'].flatMap((group) =>
  readdirSync(join(root, group))
    .map((name) => join(root, group, name))
    .filter((dir) => existsSync(join(dir, 'package.json')))
    // A private workspace (the playground, a static site) is never published.
    .filter((dir) => !JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).private),
);

interface PackFile {
  path: string;
}

describe.each(published.map((dir) => [dir.slice(root.length + 1), dir]))('npm pack of %s', (_name, dir) => {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

  it('declares what a published package needs', () => {
    expect(pkg.name).toMatch(/^@hyperllama\//);
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(pkg.license).toBe('MIT');
    expect(pkg.type).toBe('module');
    expect(pkg.publishConfig?.access).toBe('public');
    expect(pkg.exports['.'].types).toBe('./dist/index.d.ts');
    expect(pkg.exports['.'].import).toBe('./dist/index.js');
  });

  it('packs dist, types, README and licence (and declared extras), and nothing else', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: dir,
      encoding: 'utf8',
    });
    const files = (JSON.parse(out)[0].files as PackFile[]).map((f) => f.path);
    expect(files).toContain('package.json');
    expect(files).toContain('README.md');
    expect(files).toContain('LICENSE');
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    if (pkg.bin)
      for (const bin of Object.values(pkg.bin) as string[]) expect(files).toContain(bin.replace(/^\.\//, ''));
    // Besides dist/, README and LICENSE, only what package.json declares may ship (an app's assets, native sources).
    const declared = (pkg.files as string[]).filter((f) => !['dist', 'README.md', 'LICENSE'].includes(f));
    // An entry is a path, a folder, or a glob with `*` within one path segment (e.g. native/*.c).
    const matches = (f: string, d: string) =>
      d.includes('*')
        ? new RegExp(`^${d.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`).test(f)
        : f === d || f.startsWith(`${d}/`);
    const isDeclared = (f: string) => declared.some((d) => matches(f, d));
    const stray = files.filter((f) => !/^(package\.json|README\.md|LICENSE|dist\/.+)$/.test(f) && !isDeclared(f));
    expect(stray).toEqual([]);
    expect(files.filter((f) => /\.test\.|(^|\/)test\/|(^|\/)src\//.test(f))).toEqual([]);
  });
});
