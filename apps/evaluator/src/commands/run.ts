import * as tf from '@tensorflow/tfjs';
import { loadTasks } from '@hyperllama/datasets';
import { Prefix } from '@hyperllama/gist-attention';
import {
  buildReport,
  evaluate,
  formatTable,
  parseMethods,
  parseShard,
  shardItems,
  writePartialReport,
  writeReport,
  type EvalReport,
  type MethodName,
  type RankScoring,
  type Shard,
} from '@hyperllama/eval';
import {
  CliError,
  backendOption,
  numberOption,
  parseOptions,
  requireOption,
  startBackend,
  type Command,
  type Io,
} from '../cli-kit.js';
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
  /** Exact match: strict (default for non-S-NI tasks), S-NI's normalisation, or auto (sni for S-NI tasks). */
  exactMatch?: 'auto' | 'strict' | 'sni';
  /** Control tasks (names): reported apart, left out of the headline average and the claims. */
  control?: string[];
  /** Prefix tuning: steps per task and evaluation interval (older form of `ptEvalSteps`). */
  ptSteps?: number;
  ptEvalEvery?: number;
  /** Prefix tuning: the steps the curve is evaluated at (the last is the number of steps; default 0,10,25,50). */
  ptEvalSteps?: number[];
  ptLr?: number;
  /** Prefix tuning: minibatch size and tuning-pool size per task. */
  ptBatchSize?: number;
  poolSize?: number;
  /** Bootstrap resamples of the intervals (default 2000). */
  resamples?: number;
  /** Score only this shard's tasks and write a partial report (`partial.json`) for `hyperllama-eval merge`. */
  shard?: Shard;
}

/** What {@link runEvaluation} wrote: the report, or with a shard, the partial report. */
export type RunOutput =
  | { report: EvalReport; paths: ReturnType<typeof writeReport>; partial?: undefined }
  | { partial: string; shardTasks: string[]; report?: undefined };

/**
 * Evaluates the methods on the tasks, writes results.json / results.md / SVGs into `out`, returns the report. With
 * `shard`, scores that shard's tasks only and writes `partial.json` instead.
 */
export async function runEvaluation(o: RunOptions, io: Io): Promise<RunOutput> {
  const loaded = loadTasks(o.tasks);
  io.stderr(`[hyperllama] ${loaded.summary}\n`);
  const shardTasks = o.shard ? shardItems(loaded.tasks, o.shard) : loaded.tasks;
  if (o.shard)
    io.stderr(
      `[hyperllama] shard ${o.shard.index}/${o.shard.count}: ${shardTasks.length} of ${loaded.tasks.length} tasks\n`,
    );
  const setup = await loadSetup(o);
  try {
    const prefixes = o.prefix ? loadPrefixes(o.prefix, setup.model) : undefined;
    let methods: MethodName[];
    try {
      methods = parseMethods(o.methods, {
        shared: o.sharedPrefix !== undefined,
        hyper: setup.hyperllama !== undefined,
      });
    } catch (e) {
      throw new CliError('USAGE', `run: --methods: ${(e as Error).message}`, { field: 'methods' });
    }
    if (loaded.tasks.length < 2 && methods.includes('prefix-tuning-hyper-other')) {
      io.stderr("[hyperllama] prefix-tuning-hyper-other needs another task's prefix: skipped (1 task)\n");
      methods = methods.filter((m) => m !== 'prefix-tuning-hyper-other');
    }
    if (methods.includes('prefix-tuning-shared') && !o.sharedPrefix)
      throw new CliError('USAGE', 'run: prefix-tuning-shared needs --shared-prefix <file>', { field: 'methods' });
    const sharedPrefix = o.sharedPrefix ? Prefix.load(o.sharedPrefix, setup.model.config) : undefined;
    const missing = prefixes ? loaded.tasks.filter((t) => !prefixes.has(t.name)).map((t) => t.name) : [];
    if (prefixes && missing.length > 0 && !setup.hyperllama) {
      throw new CliError(
        'MISSING_PREFIX',
        `run: --prefix ${o.prefix} has no prefix for task(s) ${missing.join(', ')} and no --checkpoint was given to compress them`,
        { field: 'prefix', actual: missing },
      );
    }
    const unknownControl = (o.control ?? []).filter((name) => !loaded.tasks.some((t) => t.name === name));
    if (unknownControl.length > 0)
      throw new CliError('USAGE', `run: --control: no task named ${unknownControl.join(', ')}`, {
        field: 'control',
        actual: unknownControl,
      });
    const progress = progressReporter(io);
    const swap = methods.includes('hyperllama') && loaded.tasks.length >= 2;
    const total = (methods.length + (swap ? 1 : 0)) * shardTasks.length;
    let done = 0;
    const results = await evaluate(
      loaded.tasks,
      {
        ...setup,
        prefixes,
        batchSize: o.batchSize,
        maxNewTokens: o.maxNewTokens,
        maxLength: o.maxLength,
        scoring: o.scoring,
        exactMatch: o.exactMatch,
      },
      {
        methods,
        shots: o.shots,
        maxInstances: o.maxInstances,
        seed: o.seed,
        poolSize: o.poolSize,
        control: o.control,
        shard: o.shard,
        prefixTuning: {
          ...(o.ptEvalSteps
            ? { evalSteps: o.ptEvalSteps }
            : o.ptSteps !== undefined
              ? { steps: o.ptSteps, evalEvery: o.ptEvalEvery ?? o.ptSteps }
              : {}),
          lr: o.ptLr,
          batchSize: o.ptBatchSize,
          sharedPrefix,
          seed: o.seed,
        },
      },
      (e) => progress.update(`${e.method} ${e.task}`, ++done, total),
    );
    progress.end();
    for (const p of [...(prefixes?.values() ?? []), ...(sharedPrefix ? [sharedPrefix] : [])]) p.dispose();
    const configuration = {
      tasks: loaded.summary,
      tasksPath: o.tasks,
      ...setup.sources,
      prefix: o.prefix ?? null,
      sharedPrefix: o.sharedPrefix ?? null,
      backend: tf.getBackend(),
    };
    const reportOptions = { controlTasks: o.control, resamples: o.resamples, seed: o.seed };
    if (o.shard) {
      const partial = writePartialReport(
        {
          format: 'hyperllama-eval-partial/1',
          shard: o.shard,
          tasks: loaded.tasks.map((t) => t.name),
          shardTasks: shardTasks.map((t) => t.name),
          configuration,
          reportOptions,
          results,
        },
        o.out,
      );
      return { partial, shardTasks: shardTasks.map((t) => t.name) };
    }
    const report = buildReport(results, configuration, reportOptions);
    return { report, paths: writeReport(report, o.out) };
  } finally {
    setup.dispose();
  }
}

export const runCommand: Command = {
  summary:
    'evaluate zero-shot, ICL, HyperLlama (with its prefix-swap control) and prefix tuning on tasks; print the table and the verdicts, write the report',
  usage:
    'hyperllama-eval run --tasks <file|dir> --out <dir> [--checkpoint <hyperllama dir>] [--model <dir|.bin>] [--tokenizer <path>]\n' +
    '    [--methods zero-shot,icl,hyperllama[,prefix-tuning]] [--shots 16] [--max-instances 100] [--seed 0] [--prefix <file|dir>]\n' +
    '    [--shared-prefix <file>] [--batch-size 16] [--max-new-tokens 64] [--max-length 1024] [--scoring mean|sum]\n' +
    '    [--exact-match auto|strict|sni] [--control <task,...>] [--resamples 2000]\n' +
    '    [--pt-eval-steps 0,10,25,50 | --pt-steps N --pt-eval-every M] [--pt-lr 0.01] [--pt-batch-size 8] [--pool-size 32]\n' +
    '    [--shard i/n] [--backend auto|wasm|cpu|tensorflow|webgpu]\n' +
    '  --shard i/n scores only shard i (0-based) of n (task j is in shard j mod n) and writes <out>/partial.json;\n' +
    '  `hyperllama-eval merge` joins the n partial reports into the unsharded report.\n' +
    '  With hyperllama and at least 2 tasks it also runs the prefix-swap control (hyperllama-swap: each task behind another\n' +
    "  task's prefix) and prints one verdict line per claim it can test (95% paired bootstrap intervals).",
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
      scoring: 'mean',
      'exact-match': 'auto',
      control: undefined,
      resamples: undefined,
      'pt-steps': undefined,
      'pt-eval-every': undefined,
      'pt-eval-steps': undefined,
      'pt-lr': undefined,
      'pt-batch-size': undefined,
      'pool-size': undefined,
      shard: undefined,
      ...backendOption,
    });
    if (v.scoring !== 'sum' && v.scoring !== 'mean')
      throw new CliError('USAGE', `run: --scoring: expected mean or sum, got "${v.scoring}"`, { field: 'scoring' });
    const exact = v['exact-match'];
    if (exact !== 'auto' && exact !== 'strict' && exact !== 'sni')
      throw new CliError('USAGE', `run: --exact-match: expected auto, strict or sni, got "${exact}"`, {
        field: 'exact-match',
      });
    const list = (text: string | undefined) =>
      text === undefined
        ? undefined
        : text
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean);
    let shard: Shard | undefined;
    try {
      shard = v.shard === undefined ? undefined : parseShard(v.shard);
    } catch (e) {
      throw new CliError('USAGE', `run: --shard: ${(e as Error).message}`, { field: 'shard', actual: v.shard });
    }
    const evalSteps = list(v['pt-eval-steps'])?.map((x) => numberOption(c, 'pt-eval-steps', x, true)!);
    const opts: RunOptions = {
      checkpoint: v.checkpoint,
      model: v.model,
      tokenizer: v.tokenizer,
      tasks: requireOption(c, 'tasks', v.tasks),
      methods: v.methods!,
      shots: numberOption(c, 'shots', v.shots, true, 1)!,
      maxInstances: numberOption(c, 'max-instances', v['max-instances'], true, 1),
      seed: numberOption(c, 'seed', v.seed, true)!,
      out: requireOption(c, 'out', v.out),
      prefix: v.prefix,
      sharedPrefix: v['shared-prefix'],
      batchSize: numberOption(c, 'batch-size', v['batch-size'], true, 1),
      maxNewTokens: numberOption(c, 'max-new-tokens', v['max-new-tokens'], true, 1),
      maxLength: numberOption(c, 'max-length', v['max-length'], true, 1),
      scoring: v.scoring,
      exactMatch: exact,
      control: list(v.control),
      resamples: numberOption(c, 'resamples', v.resamples, true, 1),
      ptSteps: numberOption(c, 'pt-steps', v['pt-steps'], true, 1),
      ptEvalEvery: numberOption(c, 'pt-eval-every', v['pt-eval-every'], true, 1),
      ptEvalSteps: evalSteps,
      ptLr: numberOption(c, 'pt-lr', v['pt-lr']),
      ptBatchSize: numberOption(c, 'pt-batch-size', v['pt-batch-size'], true, 1),
      poolSize: numberOption(c, 'pool-size', v['pool-size'], true, 1),
      shard,
    };
    if (!opts.checkpoint && !opts.model)
      throw new CliError('USAGE', 'run: give --checkpoint or --model', { field: 'checkpoint' });
    await startBackend(v.backend, io);
    const out = await runEvaluation(opts, io);
    if (out.partial !== undefined) {
      io.stdout(
        `shard ${shard!.index}/${shard!.count}: ${out.shardTasks.length} task(s) scored\npartial report: ${out.partial}\n`,
      );
      return;
    }
    const { report, paths } = out;
    io.stdout(formatTable(report));
    io.stdout(
      `report: ${paths.json}\n        ${paths.markdown}\n        ${paths.chart}\n${paths.curves ? `        ${paths.curves}\n` : ''}`,
    );
  },
};
