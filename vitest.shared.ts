import { readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type ViteUserConfig } from 'vitest/config';

const root = dirname(fileURLToPath(import.meta.url));

/** `@hyperllama/<name>` → its TypeScript sources, so tests of one package run against its siblings' current code. */
function workspaceAliases(): Record<string, string> {
  const aliases: Record<string, string> = {};
  for (const group of ['packages', 'apps', 'tools']) {
    const dir = join(root, group);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      const entry = join(dir, name, 'src', 'index.ts');
      if (existsSync(entry)) aliases[`@hyperllama/${name}`] = entry;
    }
  }
  return aliases;
}

/** Vitest options shared by every package; results also go to `.vitest-result.json` for the CI totals. */
export function packageTests(overrides: ViteUserConfig['test'] = {}): ViteUserConfig {
  return defineConfig({
    resolve: { alias: workspaceAliases() },
    test: {
      include: ['test/**/*.test.ts'],
      testTimeout: 120_000,
      hookTimeout: 120_000,
      pool: 'forks',
      fileParallelism: false,
      reporters: ['default', ['json', { outputFile: '.vitest-result.json' }]],
      ...overrides,
    },
  });
}
