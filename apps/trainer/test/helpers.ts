import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Io } from '@hyperllama/training';

export const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

/** An Io that records log lines (not a terminal). */
export function memoryIo(): Io & { lines: string[] } {
  const lines: string[] = [];
  return { lines, isTTY: false, log: (l) => lines.push(l), status: () => {} };
}

/** Flags of a tiny, fast run: few steps, one wasm thread. */
export const TINY = [
  '--set',
  'threads=1',
  '--set',
  'batchSize=4',
  '--set',
  'evalBatches=1',
  '--set',
  'data.seqLen=32',
  '--set',
  'data.maxHyperLength=96',
  '--set',
  'data.maxLength=64',
];

/**
 * The real CLI in a child process: `node --import tsx src/cli.ts …`, with tsconfig paths mapping every
 * `@hyperllama/*` import to the workspace sources (no build needed). On wasm unless `env` says otherwise.
 */
export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(APP_DIR, 'src', 'cli.ts'), ...args], {
    cwd: APP_DIR,
    env: {
      ...process.env,
      TSX_TSCONFIG_PATH: join(APP_DIR, 'test', 'tsconfig.paths.json'),
      HYPERLLAMA_BACKEND: 'wasm',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Resolves with the exit code (or signal) and the output. */
export function finished(
  child: ChildProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, output })));
}
