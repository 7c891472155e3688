import * as tf from '@tensorflow/tfjs';
import { loadTasks } from '@hyperllama/datasets';
import { loadKVPrefix } from '@hyperllama/gist-attention';
import { buildReport, evaluate, formatTable, parseMethods, writeReport, type EvalReport, type MethodName, type RankScoring } from '@hyperllama/eval';
import { CliError, backendOption, numberOption, parseOptions, requireOption, startBackend, type Command, type Io } from '../cli-kit.js';
import { loadPrefixes, loadSetup, progressReporter, type SetupOptions } from '../eval-setup.js';

export interface RunOptions extends SetupOptions {
  /** A task file or directory (S-NI, MetaICL, JSONL). */
  tasks: string;
  /** Comma-separated: zero-shot, icl, hyperllama, prefix-tuning[-random|-shared|-hyper]. */
  methods: string;
  shots: number;
  maxInstances?: number;
  seed: number;
  out: string;
  /** Stored prefixes from `compress` (file or directory) used by `hyperllama` instead of compressing. */
  prefix?: string;
  /** A trained shared prefix (safetensors from the trainer) for `prefix-tuning-shared`. */
  sharedPrefix?: string;
  batchSize?: number;
  maxNewTokens?: number;
  maxLength?: number;
  scoring?: RankScoring;
  /** Prefix tuning: steps per task and evaluation interval. */
  ptSteps?: number;
  ptEvalEvery?: number;
  ptLr?: number;
}

/** Evaluates the methods on the tasks, writes results.json / results.md / SVGs into `out`, returns the report. */
export async function runEvaluation(o: RunOptions, io: Io): Promise<{ report: EvalReport; paths: ReturnType<typeof writeReport> }> {
  const loaded = loadTasks(o.tasks);
  io.stderr(`[hyperllama] ${loaded.summary}\n`);
  const setup = await loadSetup(o);
  try {
    const prefixes = o.prefix ? loadPrefixes(o.prefix, setup.model) : undefined;
    let methods: MethodName[];
    try {
      methods = parseMethods(o.methods, { shared: o.sharedPrefix !== undefined, hyper: setup.hyperllama !== undefined });
    } catch (e) {
      throw new CliError('USAGE', `run: --methods: ${(e as Error).message}`, { field: 'methods' });
    }
    if (methods.includes('prefix-tuning-shared') && !o.sharedPrefix) throw new CliError('USAGE', 'run: prefix-tuning-shared needs --shared-prefix <file>', { field: 'methods' });
    const sharedPrefix = o.sharedPrefix ? loadKVPrefix(o.sharedPrefix, setup.model.config).prefix : undefined;
    const missing = prefixes ? loaded.tasks.filter((t) => !prefixes.has(t.name)).map((t) => t.name) : [];
    if (prefixes && missing.length > 0 && !setup.hyperllama) {
      throw new CliError('MISSING_PREFIX', `run: --prefix ${o.prefix} has no prefix for task(s) ${missing.join(', ')} and no --checkpoint was given to compress them`, { field: 'prefix', actual: missing });
    }
    const progress = progressReporter(io);
    const total = methods.length * loaded.tasks.length;
    let done = 0;
    const results = await evaluate(
      loaded.tasks,
      { ...setup, prefixes, batchSize: o.batchSize, maxNewTokens: o.maxNewTokens, maxLength: o.maxLength, scoring: o.scoring },
      {
        methods,
        shots: o.shots,
        maxInstances: o.maxInstances,
        seed: o.seed,
        prefixTuning: { steps: o.ptSteps ?? 20, evalEvery: o.ptEvalEvery ?? 5, lr: o.ptLr, sharedPrefix },
      },
      (e) => progress.update(`${e.method} ${e.task}`, ++done, total),
    );
    progress.end();
    for (const p of [...(prefixes?.values() ?? []), ...(sharedPrefix ? [sharedPrefix] : [])]) tf.dispose([...p.keys, ...p.values]);
    const report = buildReport(results, { tasks: loaded.summary, tasksPath: o.tasks, ...setup.sources, prefix: o.prefix ?? null, sharedPrefix: o.sharedPrefix ?? null, backend: tf.getBackend() });
    return { report, paths: writeReport(report, o.out) };
  } finally {
    setup.dispose();
  }
}

export const runCommand: Command = {
  summary: 'evaluate zero-shot, ICL, HyperLlama and prefix tuning on tasks; print the table, write the report',
  usage:
    'hyperllama-eval run --tasks <file|dir> --out <dir> [--checkpoint <hyperllama dir>] [--model <dir|.bin>] [--tokenizer <path>]\n' +
    '    [--methods zero-shot,icl,hyperllama[,prefix-tuning]] [--shots 16] [--max-instances 100] [--seed 0] [--prefix <file|dir>]\n' +
    '    [--shared-prefix <file>] [--batch-size 16] [--max-new-tokens 64] [--max-length 1024] [--scoring sum|mean]\n' +
    '    [--pt-steps 20] [--pt-eval-every 5] [--pt-lr 0.01] [--backend auto|wasm|cpu|tensorflow|webgpu]',
  async run(argv: string[], io: Io) {
    const c = 'run';
    const v = parseOptions(c, argv, {
      checkpoint: undefined,
      model: undefined,
      tokenizer: undefined,
      tasks: undefined,
      methods: 'zero-shot,icl,hyperllama',
      shots: '16',
      'max-instances': '100',
      seed: '0',
      out: undefined,
      prefix: undefined,
      'shared-prefix': undefined,
      'batch-size': undefined,
      'max-new-tokens': undefined,
      'max-length': undefined,
      scoring: 'sum',
      'pt-steps': undefined,
      'pt-eval-every': undefined,
      'pt-lr': undefined,
      ...backendOption,
    });
    if (v.scoring !== 'sum' && v.scoring !== 'mean') throw new CliError('USAGE', `run: --scoring: expected sum or mean, got "${v.scoring}"`, { field: 'scoring' });
    const opts: RunOptions = {
      checkpoint: v.checkpoint,
      model: v.model,
      tokenizer: v.tokenizer,
      tasks: requireOption(c, 'tasks', v.tasks),
      methods: v.methods!,
      shots: numberOption(c, 'shots', v.shots, true)!,
      maxInstances: numberOption(c, 'max-instances', v['max-instances'], true),
      seed: numberOption(c, 'seed', v.seed, true)!,
      out: requireOption(c, 'out', v.out),
      prefix: v.prefix,
      sharedPrefix: v['shared-prefix'],
      batchSize: numberOption(c, 'batch-size', v['batch-size'], true),
      maxNewTokens: numberOption(c, 'max-new-tokens', v['max-new-tokens'], true),
      maxLength: numberOption(c, 'max-length', v['max-length'], true),
      scoring: v.scoring,
      ptSteps: numberOption(c, 'pt-steps', v['pt-steps'], true),
      ptEvalEvery: numberOption(c, 'pt-eval-every', v['pt-eval-every'], true),
      ptLr: numberOption(c, 'pt-lr', v['pt-lr']),
    };
    if (!opts.checkpoint && !opts.model) throw new CliError('USAGE', 'run: give --checkpoint or --model', { field: 'checkpoint' });
    await startBackend(v.backend, io);
    const { report, paths } = await runEvaluation(opts, io);
    io.stdout(formatTable(report));
    io.stdout(`report: ${paths.json}\n        ${paths.markdown}\n        ${paths.chart}\n${paths.curves ? `        ${paths.curves}\n` : ''}`);
  },
};
