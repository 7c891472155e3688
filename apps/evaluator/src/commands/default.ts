import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_HELD_OUT_FAMILIES, syntheticTaskName, syntheticTasks, type Task } from '@hyperllama/datasets';
import { buildReport, evaluate, formatTable, writeReport, type EvalReport, type MethodName } from '@hyperllama/eval';
import { loadKVPrefix } from '@hyperllama/gist-attention';
import { loadAdapter } from '@hyperllama/lora';
import { applyPatch, defaultConfig, runStage, type Stage, type TrainConfig } from '@hyperllama/trainer';
import { CliError, backendOption, numberOption, parseOptions, processIo, type Command, type Io } from '../cli-kit.js';
import { loadSetup, progressReporter } from '../eval-setup.js';

/** How big the miniature is: `full` fits 15 minutes on 2 CPU cores, `quick` a few minutes (a smoke test). */
export interface MiniatureBudget {
  pretrainSteps: number;
  hyperpretrainSteps: number;
  multitaskSteps: number;
  prefixTuningSteps: number;
  prefixTuningEvalEvery: number;
  /** Held-out tasks evaluated per held-out family, and instances per task. */
  tasksPerFamily: number;
  maxInstances: number;
}

export const BUDGETS: Record<'full' | 'quick', MiniatureBudget> = {
  full: { pretrainSteps: 600, hyperpretrainSteps: 150, multitaskSteps: 300, prefixTuningSteps: 30, prefixTuningEvalEvery: 10, tasksPerFamily: 2, maxInstances: 16 },
  quick: { pretrainSteps: 40, hyperpretrainSteps: 10, multitaskSteps: 20, prefixTuningSteps: 4, prefixTuningEvalEvery: 2, tasksPerFamily: 1, maxInstances: 4 },
};

/** Settings every stage and the evaluation share (the trainer's tiny default otherwise). */
const SHOTS = 4;
const DATA = { shots: SHOTS, maxLength: 128, maxHyperLength: 192 };

export interface DefaultOptions {
  out: string;
  quick: boolean;
  seed: number;
  backend?: string;
  /** An existing base model directory (skips pretrain-base); default: the embedded base when committed. */
  base?: string;
  budget?: MiniatureBudget;
}

export interface DefaultResult {
  report: EvalReport;
  paths: ReturnType<typeof writeReport>;
  /** The multi-task HyperLlama checkpoint. */
  checkpoint: string;
  seconds: Record<string, number>;
}

/**
 * The committed embedded base model (apps/evaluator/assets/default-base/, made by `hyperllama-train pretrain-base
 * --config apps/trainer/configs/default-base.yaml`), found from the built CLI (dist/) or the sources (src/commands/).
 */
export function embeddedBase(): string | undefined {
  const candidates = ['../assets/default-base', '../../assets/default-base'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((dir) => existsSync(join(dir, 'config.json')));
}

function stageConfig(stage: Stage, patch: Record<string, unknown>): TrainConfig {
  return applyPatch(defaultConfig(stage), patch, `default (${stage})`);
}

/**
 * Families whose held-out *parameter* settings the miniature also evaluates: no held-out family is a lookup task, and
 * the paper found HyperLlama weakest on lookup/copying, so unseen lookup tables are evaluated as well.
 */
export const PROBED_PARAMETER_FAMILIES: readonly string[] = ['lookup'];

/**
 * The tasks the miniature evaluates: the first `perFamily` variants of each held-out family, then the first
 * `perFamily` held-out parameter settings of each probed family. None of them is seen in training.
 */
export function heldOutTasks(seed: number, perFamily: number): Task[] {
  const split = syntheticTasks({ seed });
  const firstOf = (tasks: Task[], family: string) => tasks.filter((t) => t.name.startsWith(syntheticTaskName(family, ''))).slice(0, perFamily);
  return [
    ...DEFAULT_HELD_OUT_FAMILIES.flatMap((family) => firstOf(split.heldOutFamilies, family)),
    ...PROBED_PARAMETER_FAMILIES.flatMap((family) => firstOf(split.heldOutParams, family)),
  ];
}

/**
 * The paper in miniature, on the embedded default data: pretrain a tiny base (unless given), compression
 * hyperpretraining, multi-task training of HyperLlama and of the baselines (ICL LoRA, zero-shot LoRA, shared prefix)
 * on the training families, then evaluation on held-out families: zero-shot, ICL, HyperLlama, and prefix tuning from
 * random, shared and HyperLlama initialisations. Every stage runs through the trainer's library API.
 */
export async function runDefault(o: DefaultOptions, io: Io): Promise<DefaultResult> {
  const budget = o.budget ?? BUDGETS[o.quick ? 'quick' : 'full'];
  const out = resolve(o.out);
  const seconds: Record<string, number> = {};
  const common = { seed: o.seed, backend: o.backend ?? 'auto', saveEvery: 0, evalEvery: 0, logEvery: 25, data: DATA };
  const isTTY = io === processIo && Boolean(process.stderr.isTTY);
  const trainerIo = { log: (line: string) => io.stderr(`${line}\n`), isTTY, status: (line: string) => io.stderr(`\r${line}\x1b[K`) };
  const stage = async (name: string, s: Stage, patch: Record<string, unknown>): Promise<string> => {
    io.stderr(`\n== ${name} ==\n`);
    const started = performance.now();
    const result = await runStage(s, stageConfig(s, { ...common, ...patch }), { out: join(out, name), io: trainerIo, handleSignals: false });
    seconds[name] = (performance.now() - started) / 1000;
    if (!result.final) throw new CliError('STAGE_INTERRUPTED', `default: stage ${name} stopped at step ${result.step}`, { stage: name });
    io.stderr(`${name}: loss ${result.firstLoss.toFixed(3)} → ${result.lastLoss.toFixed(3)}, held-out ${result.initialEvalLoss.toFixed(3)} → ${result.evalLoss.toFixed(3)}, ${Math.round(result.tokensPerSecond)} tokens/s, ${seconds[name].toFixed(0)} s\n`);
    return result.final;
  };

  const given = o.base ?? embeddedBase();
  if (given) io.stderr(`[hyperllama] base model: ${given}\n`);
  const base = given ?? join(await stage('base', 'pretrain-base', { steps: budget.pretrainSteps }), 'model');
  if (!existsSync(join(base, 'config.json'))) throw new CliError('MISSING_FILE', `default: base model ${base} has no config.json`, { file: base });
  const model = { base };
  const pre = await stage('hyperpretrain', 'hyperpretrain', { model, steps: budget.hyperpretrainSteps });
  const hyper = join(await stage('multitask-hyperllama', 'multitask', { model, method: 'hyperllama', steps: budget.multitaskSteps, hyper: { from: join(pre, 'hyperllama') } }), 'hyperllama');
  const icl = join(await stage('multitask-icl', 'multitask', { model, method: 'icl', steps: budget.multitaskSteps }), 'adapter');
  const zeroShot = join(await stage('multitask-zero-shot', 'multitask', { model, method: 'zero-shot', steps: budget.multitaskSteps }), 'adapter');
  const shared = join(await stage('multitask-shared-prefix', 'multitask', { model, method: 'shared-prefix', steps: budget.multitaskSteps }), 'prefix.safetensors');

  io.stderr('\n== evaluation on held-out families ==\n');
  const started = performance.now();
  const tasks = heldOutTasks(o.seed, budget.tasksPerFamily);
  const setup = await loadSetup({ checkpoint: hyper });
  try {
    loadAdapter(setup.model, icl, 'icl');
    loadAdapter(setup.model, zeroShot, 'zero-shot');
    const sharedPrefix = loadKVPrefix(shared, setup.model.config).prefix;
    const methods: MethodName[] = ['zero-shot', 'icl', 'hyperllama', 'prefix-tuning-random', 'prefix-tuning-shared', 'prefix-tuning-hyper'];
    const progress = progressReporter(io);
    let done = 0;
    const results = await evaluate(
      tasks,
      { ...setup, adapters: { 'zero-shot': ['zero-shot'], icl: ['icl'] }, maxLength: DATA.maxLength, maxHyperLength: DATA.maxHyperLength, maxNewTokens: 24, batchSize: 16 },
      {
        methods,
        shots: SHOTS,
        maxInstances: budget.maxInstances,
        seed: o.seed,
        prefixTuning: { steps: budget.prefixTuningSteps, evalEvery: budget.prefixTuningEvalEvery, lr: 1e-2, sharedPrefix, seed: o.seed },
      },
      (e) => progress.update(`${e.method} ${e.task}`, ++done, methods.length * tasks.length),
    );
    progress.end();
    tf.dispose([...sharedPrefix.keys, ...sharedPrefix.values]);
    seconds.evaluation = (performance.now() - started) / 1000;
    const report = buildReport(results, {
      command: `hyperllama-eval default${o.quick ? ' --quick' : ''} --seed ${o.seed}`,
      budget,
      data: DATA,
      tasks: 'held-out synthetic families (@hyperllama/datasets DEFAULT_HELD_OUT_FAMILIES) and held-out lookup tables',
      base,
      checkpoints: { hyperllama: hyper, icl, zeroShot, sharedPrefix: shared },
      backend: tf.getBackend(),
      seconds,
    });
    return { report, paths: writeReport(report, join(out, 'report')), checkpoint: hyper, seconds };
  } finally {
    setup.dispose();
  }
}

export const defaultCommand: Command = {
  summary: 'the paper in miniature: train HyperLlama and the baselines on the embedded default, evaluate on held-out families',
  usage: 'hyperllama-eval default [--quick] [--out runs/default] [--seed 0] [--base <model dir>] [--backend auto|wasm|cpu|tensorflow]',
  async run(argv: string[], io: Io) {
    const quick = argv.includes('--quick'); // a flag without a value
    const v = parseOptions('default', argv.filter((a) => a !== '--quick'), { out: 'runs/default', seed: '0', base: undefined, ...backendOption });
    const r = await runDefault({ out: v.out!, quick, seed: numberOption('default', 'seed', v.seed, true)!, base: v.base, backend: v.backend }, io);
    const total = Object.values(r.seconds).reduce((a, b) => a + b, 0);
    io.stdout('\n' + formatTable(r.report));
    io.stdout(`\ntotal ${total.toFixed(0)} s (${Object.entries(r.seconds).map(([k, s]) => `${k} ${s.toFixed(0)} s`).join(', ')})\n`);
    io.stdout(`HyperLlama checkpoint: ${r.checkpoint}\nreport: ${r.paths.json}\n        ${r.paths.markdown}\n        ${r.paths.chart}\n        ${r.paths.curves}\n`);
  },
};
