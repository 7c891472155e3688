import type { Options } from 'tsup';

/** Build options shared by every package: ESM + .d.ts from src/index.ts (and a CLI entry for apps). */
export function packageBuild(entry: string[] = ['src/index.ts']): Options {
  return {
    entry,
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    dts: true,
    sourcemap: true,
    clean: true,
    splitting: false,
    treeshake: true,
  };
}
