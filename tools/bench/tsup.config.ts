import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// Code splitting keeps each suite in its own chunk, loaded only when it runs (suites.ts imports them lazily), so one
// suite's dependencies neither load nor break the others.
export default defineConfig({ ...packageBuild(['src/index.ts', 'src/cli.ts']), splitting: true });
