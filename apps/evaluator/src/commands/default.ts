import { defaultBaseDir } from '@hyperllama/default-model';
import { formatTable } from '@hyperllama/eval';
import { runMiniature, type MiniatureOptions, type MiniatureResult } from '@hyperllama/experiments';
import { backendOption, numberOption, parseOptions, processIo, type Command, type Io } from '../cli-kit.js';
import { progressReporter } from '../eval-setup.js';

// The miniature itself (budgets, learning rates, tasks, gates and the pipeline) is `runMiniature` in
// packages/experiments/src/miniature.ts; this is its command line and the embedded base it runs on by default.

export type DefaultOptions = Omit<MiniatureOptions, 'isTTY'>;
export type DefaultResult = MiniatureResult;

/**
 * The committed embedded base model (`@hyperllama/default-model`, made by `hyperllama-train pretrain-base` with
 * apps/trainer/configs/default-base-copy.yaml, default-base.yaml, then default-base-open.yaml), or undefined when that
 * package was installed without its files.
 */
export function embeddedBase(): string | undefined {
  try {
    return defaultBaseDir();
  } catch {
    return undefined;
  }
}

/**
 * The paper in miniature ({@link runMiniature}) on the embedded default base unless `o.base` is given, reporting on
 * `io`'s stderr.
 */
export function runDefault(o: DefaultOptions, io: Io): Promise<DefaultResult> {
  const isTTY = io === processIo && Boolean(process.stderr.isTTY);
  return runMiniature(
    { ...o, base: o.base ?? embeddedBase(), isTTY },
    { stderr: (text) => io.stderr(text), progress: () => progressReporter(io) },
  );
}

export const defaultCommand: Command = {
  summary:
    'the paper in miniature: train HyperLlama and the baselines on the embedded default, evaluate on held-out families',
  usage:
    'hyperllama-eval default [--quick] [--out runs/default] [--seed 0] [--base <model dir>] [--backend auto|wasm|cpu|tensorflow]',
  async run(argv: string[], io: Io) {
    const quick = argv.includes('--quick'); // a flag without a value
    const v = parseOptions(
      'default',
      argv.filter((a) => a !== '--quick'),
      { out: 'runs/default', seed: '0', base: undefined, ...backendOption },
    );
    const r = await runDefault(
      { out: v.out!, quick, seed: numberOption('default', 'seed', v.seed, true)!, base: v.base, backend: v.backend },
      io,
    );
    const total = Object.values(r.seconds).reduce((a, b) => a + b, 0);
    io.stdout('\n' + formatTable(r.report));
    io.stdout(r.gates.join('\n') + '\n');
    io.stdout(
      `\ntotal ${total.toFixed(0)} s (${Object.entries(r.seconds)
        .map(([k, s]) => `${k} ${s.toFixed(0)} s`)
        .join(', ')})\n`,
    );
    io.stdout(
      `HyperLlama checkpoint: ${r.checkpoint}\nreport: ${r.paths.json}\n        ${r.paths.markdown}\n        ${r.paths.chart}\n        ${r.paths.curves}\n`,
    );
  },
};
