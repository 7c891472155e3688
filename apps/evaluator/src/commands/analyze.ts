import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadTasks, syntheticKinds, type Task } from '@hyperllama/datasets';
import {
  ANALYSES,
  analyzeCompression,
  analyzeMasks,
  analyzeSensitivity,
  analyzeTransfer,
  compressionFigures,
  defaultMaskVariants,
  freshTrainEpisodes,
  markdownTable,
  maskFigures,
  sensitivityFigures,
  transferFigures,
  writeAnalysis,
  type AnalysisName,
  type AnalysisReport,
  type AnalysisSetup,
  type TrainEpisodes,
  SHOTS,
  miniatureTasks,
  screenFamilies,
} from '@hyperllama/experiments';
import type { EvalTokenizer } from '@hyperllama/eval';
import { Prefix } from '@hyperllama/gist-attention';
import { baseModelHash, loadHyperLlama, resolveCheckpointDir, resolvePretrained } from '@hyperllama/hypernet';
import { createLlama, loadLlama, type LlamaModel } from '@hyperllama/llama-model';
import { loadAdapter } from '@hyperllama/lora';
import { loadTokenizer } from '@hyperllama/tokenizer';
import { charTokenizer, defaultConfig, scratchConfig } from '@hyperllama/training';
import {
  CliError,
  backendOption,
  numberOption,
  parseOptions,
  startBackend,
  type Command,
  type Io,
} from '../cli-kit.js';
import { embeddedBase } from './default.js';

/** How much each analysis does: the full setting (minutes on 2 CPU cores) and `--quick` (a smoke test). */
export interface AnalyzeBudget {
  /** Default tasks: this many held-out tasks, families in turn (see {@link defaultAnalysisTasks}). */
  tasks: number;
  maxInstances: number;
  /** Multi-task training steps of each mask variant, and of the HyperLlama trained when no checkpoint is given. */
  variantSteps: number;
  hyperSteps: number;
  draws: number;
  orders: number;
  ptSteps: number;
  ptEvalEvery: number;
  sharedSteps: number;
  /** Episodes per training step. */
  trainBatchSize: number;
}

export const ANALYZE_BUDGETS: Record<'full' | 'quick', AnalyzeBudget> = {
  full: {
    tasks: 16,
    maxInstances: 8,
    variantSteps: 50,
    hyperSteps: 150,
    draws: 6,
    orders: 3,
    ptSteps: 20,
    ptEvalEvery: 5,
    sharedSteps: 100,
    trainBatchSize: 8,
  },
  quick: {
    tasks: 2,
    maxInstances: 2,
    variantSteps: 1,
    hyperSteps: 1,
    draws: 2,
    orders: 1,
    ptSteps: 1,
    ptEvalEvery: 1,
    sharedSteps: 1,
    trainBatchSize: 2,
  },
};

/**
 * The shots and lengths of `hyperllama-eval default`: 16 demonstrations per evaluated task, seen by ICL (rows of up to
 * 400 tokens) and HyperLlama (hyper inputs of up to 400 tokens) alike; training episodes draw between
 * {@link MIN_TRAIN_SHOTS} and the evaluated shots.
 */
const LENGTHS = { maxLength: 400, maxHyperLength: 400, maxNewTokens: 24, batchSize: 16 };
export const MIN_TRAIN_SHOTS = 2;

/** Demonstrations per training episode for `shots` evaluated ones: drawn from [2, shots] (as `default` trains). */
export const trainShotsFor = (shots: number): [number, number] => [Math.min(MIN_TRAIN_SHOTS, shots), shots];

export interface AnalyzeOptions {
  analysis: AnalysisName;
  out: string;
  quick: boolean;
  seed: number;
  checkpoint?: string;
  model?: string;
  tokenizer?: string;
  tasks?: string;
  trainTasks?: string;
  shots?: number;
  maxInstances?: number;
  /** Training steps (mask variants; the HyperLlama trained when no checkpoint is given). */
  steps?: number;
  k?: number;
  variants?: string[];
  draws?: number;
  orders?: number;
  iclAdapter?: string;
  ptSteps?: number;
  ptEvalEvery?: number;
  ptLr?: number;
  sharedPrefix?: string;
  sharedSteps?: number;
  /** The command line, recorded in the report. */
  command?: string;
}

/**
 * The default evaluated tasks: the first `tasks` headline tasks of `miniatureTasks` for the screen's `headlineFamilies`
 * (families in turn, held-out content), as `default` evaluates them. Without a screen (or when no family passes it):
 * the held-out variants of every family not marked as a control (`isControlTask`: sort, compare, symbol_topic).
 */
export function defaultAnalysisTasks(
  seed: number,
  budget: Pick<AnalyzeBudget, 'tasks'>,
  headlineFamilies?: readonly string[],
): Task[] {
  const families = headlineFamilies?.length ? headlineFamilies : undefined;
  return miniatureTasks(seed, { headlineTasks: budget.tasks, controlTasksPerFamily: 0 }, families).headline;
}

/** The main job's screen on the bare base model: which held-out families it learns in context. */
async function screenedFamilies(
  seed: number,
  loadModel: () => LlamaModel,
  tokenizer: EvalTokenizer,
  quick: boolean,
  log: (line: string) => void,
): Promise<string[]> {
  const model = loadModel();
  try {
    const split = syntheticKinds({ seed });
    const screen = await screenFamilies(model, tokenizer, [...split.heldOutParams, ...split.heldOutFamilies], {
      seed,
      shots: SHOTS,
      maxLength: LENGTHS.maxLength,
      instances: quick ? 4 : undefined,
    });
    const headline = screen.filter((f) => f.headline).map((f) => f.family);
    log(
      headline.length > 0
        ? `screen (the bare base, 0 → ${SHOTS} shots, on a development draw): headline families ${headline.join(', ')}`
        : 'screen: the bare base learns no held-out family in context; evaluating the unscreened held-out variants',
    );
    return headline;
  } finally {
    model.dispose();
  }
}

/** Where the base model, tokenizer and tasks come from; `log` lines go to stderr. */
function buildSetup(
  o: AnalyzeOptions,
  budget: AnalyzeBudget,
  log: (line: string) => void,
): { setup: AnalysisSetup; sources: Record<string, unknown>; k: number; screenTasks: () => Promise<Task[]> } {
  let modelPath = o.model;
  let tokenizerPath = o.tokenizer;
  let checkpoint: string | undefined;
  let k = o.k ?? 4;
  if (o.checkpoint) {
    if (!resolveCheckpointDir(o.checkpoint))
      throw new CliError('MISSING_FILE', `--checkpoint ${o.checkpoint}: no such directory`, {
        file: o.checkpoint,
        field: 'checkpoint',
      });
    const r = resolvePretrained(o.checkpoint, { model: modelPath, tokenizer: tokenizerPath });
    ({ checkpoint, model: modelPath, tokenizer: tokenizerPath } = r);
    k = r.config.k;
  }
  modelPath ??= embeddedBase();
  let loadModel: () => ReturnType<typeof loadLlama>;
  let tokenizer: ReturnType<typeof charTokenizer>;
  if (modelPath) {
    tokenizerPath ??= modelPath;
    const probe = loadLlama(modelPath, { trainable: false });
    tokenizer = loadTokenizer(tokenizerPath, { vocabSize: probe.config.vocabSize });
    probe.dispose();
    loadModel = () => loadLlama(modelPath!, { trainable: false });
  } else {
    log(
      "WARNING: no --model, no --checkpoint and no embedded default base (@hyperllama/default-model): using the trainer's random-init tiny default, whose results only check the pipeline",
    );
    tokenizer = charTokenizer();
    const tiny = defaultConfig('pretrain-base');
    const config = scratchConfig(tiny, tokenizer);
    loadModel = () => createLlama(config, { seed: o.seed, std: tiny.model.initStd, trainable: false });
  }
  let baseHash: string | undefined;
  const loadHyper = checkpoint
    ? (model: ReturnType<typeof loadModel>) => {
        baseHash ??= baseModelHash(model);
        return loadHyperLlama(checkpoint!, model, { baseHash }).hyperllama;
      }
    : undefined;

  // Without --tasks, the evaluated tasks wait for the screen (`screenTasks`, once the options are checked).
  const evalTasks = o.tasks ? loadTasks(o.tasks).tasks : [];
  const shots = o.shots ?? SHOTS;
  const setup: AnalysisSetup = {
    loadModel,
    tokenizer,
    // Training (mask variants, a HyperLlama trained here, transfer's shared prefix): the user's task file, else
    // fresh-content episodes of the synthetic training kinds, as `default` trains.
    ...(o.trainTasks
      ? { trainTasks: loadTasks(o.trainTasks).tasks }
      : { trainEpisodes: analysisTrainEpisodes(o.seed) }),
    trainShots: trainShotsFor(shots),
    evalTasks,
    loadHyperLlama: loadHyper,
    seed: o.seed,
    shots,
    maxInstances: o.maxInstances ?? budget.maxInstances,
    ...LENGTHS,
    log,
  };
  const sources = {
    model: modelPath ? resolve(modelPath) : 'random-init tiny default (no embedded base found)',
    tokenizer: tokenizerPath ? resolve(tokenizerPath) : 'built-in character tokenizer',
    checkpoint: checkpoint ? resolve(checkpoint) : null,
    tasks: o.tasks ?? '',
    trainTasks:
      o.trainTasks ??
      `fresh-content episodes of the synthetic training kinds (seed ${o.seed}; new label assignments, tables and constants every episode)`,
    trainShots: setup.trainShots,
  };
  const screenTasks = async () => {
    const families = await screenedFamilies(o.seed, loadModel, tokenizer, o.quick, log);
    const tasks = defaultAnalysisTasks(o.seed, budget, families);
    sources.tasks = `synthetic (seed ${o.seed}): ${tasks.length} held-out tasks with held-out content, one family at a time in turn: ${families.length > 0 ? `the main job's headline families (${families.join(', ')})` : 'the held-out variants of the families not marked as controls (no family passed the screen)'}`;
    return tasks;
  };
  return { setup, sources, k, screenTasks };
}

/** The analyses' training episodes without `--train-tasks`: fresh-content episodes of the synthetic training kinds of `seed`. */
export function analysisTrainEpisodes(seed: number): TrainEpisodes {
  return freshTrainEpisodes(syntheticKinds({ seed }).train);
}

/** Runs one analysis and writes its report into `o.out`. */
export async function runAnalysis(
  o: AnalyzeOptions,
  io: Io,
): Promise<{ report: AnalysisReport; paths: ReturnType<typeof writeAnalysis> }> {
  const budget = ANALYZE_BUDGETS[o.quick ? 'quick' : 'full'];
  const log = (line: string) => io.stderr(`${line}\n`);
  const { setup, sources, k, screenTasks } = buildSetup(o, budget, log);
  const started = performance.now();
  let report: AnalysisReport;
  let figures: (r: AnalysisReport) => Record<string, string>;
  const allVariants = defaultMaskVariants(k, setup.shots);
  const unknown = (o.variants ?? []).filter((v) => !allVariants.some((x) => x.id === v));
  if (o.analysis === 'masks' && unknown.length > 0)
    throw new CliError(
      'USAGE',
      `analyze masks: --variants: unknown ${unknown.join(', ')}; expected some of ${allVariants.map((v) => v.id).join(', ')}`,
      { field: 'variants' },
    );
  if (!o.tasks) setup.evalTasks = await screenTasks();
  switch (o.analysis) {
    case 'masks': {
      const variants = o.variants ? allVariants.filter((v) => o.variants!.includes(v.id)) : allVariants;
      report = await analyzeMasks(setup, {
        variants,
        steps: o.steps ?? budget.variantSteps,
        trainBatchSize: budget.trainBatchSize,
      });
      figures = maskFigures;
      break;
    }
    case 'compression':
      report = await analyzeCompression(setup, { k, steps: o.steps ?? budget.hyperSteps });
      figures = compressionFigures;
      break;
    case 'sensitivity': {
      const iclAdapters: string[] = [];
      if (o.iclAdapter) {
        // Loaded into the model the HyperLlama sits on: wrap loadHyperLlama / training so the adapter is on that model.
        const inner = setup.loadModel;
        setup.loadModel = () => {
          const m = inner();
          loadAdapter(o.iclAdapter!, m, 'icl');
          return m;
        };
        iclAdapters.push('icl');
      }
      report = await analyzeSensitivity(setup, {
        draws: o.draws ?? budget.draws,
        orders: o.orders ?? budget.orders,
        k,
        steps: o.steps ?? budget.hyperSteps,
        iclAdapters,
      });
      figures = sensitivityFigures;
      break;
    }
    case 'transfer': {
      const shared = o.sharedPrefix ? Prefix.load(o.sharedPrefix) : undefined;
      try {
        report = await analyzeTransfer(setup, {
          steps: o.ptSteps ?? budget.ptSteps,
          evalEvery: o.ptEvalEvery ?? budget.ptEvalEvery,
          lr: o.ptLr,
          k,
          hyperSteps: o.steps ?? budget.hyperSteps,
          sharedPrefix: shared,
          sharedSteps: o.sharedSteps ?? budget.sharedSteps,
        });
      } finally {
        shared?.dispose();
      }
      figures = transferFigures;
      break;
    }
  }
  report.configuration = {
    command: o.command ?? null,
    quick: o.quick,
    ...sources,
    ...(o.iclAdapter ? { iclAdapter: resolve(o.iclAdapter) } : {}),
    ...report.configuration,
    backend: tf.getBackend(),
    seconds: Math.round((performance.now() - started) / 1000),
  };
  return { report, paths: writeAnalysis(report, figures(report), o.out) };
}

const USAGE =
  'hyperllama-eval analyze masks|compression|sensitivity|transfer [--quick] [--out runs/analyze/<analysis>] [--seed 0]\n' +
  '    [--checkpoint <hyperllama dir>] [--model <dir|.bin>] [--tokenizer <path>] [--tasks <file|dir>] [--train-tasks <file|dir>]\n' +
  '    [--shots 16] [--max-instances N] [--steps N] [--k 4] [--backend auto|wasm|cpu|tensorflow]\n' +
  '    masks: [--variants standard,positive,negative,last-1,last-8,k1,k2,k8,k16]\n' +
  '    sensitivity: [--draws 6] [--orders 3] [--icl-adapter <PEFT dir>]\n' +
  '    transfer: [--pt-steps 20] [--pt-eval-every 5] [--pt-lr 0.01] [--shared-prefix <file>] [--shared-steps 100]';

export const analyzeCommand: Command = {
  summary: 'the questions the paper left open: mask ablations, compression quality, example sensitivity, transfer',
  usage: USAGE,
  async run(argv: string[], io: Io) {
    const [name, ...rest] = argv;
    if (!name || !(ANALYSES as readonly string[]).includes(name))
      throw new CliError(
        'USAGE',
        `analyze: expected one of ${ANALYSES.join(', ')}, got ${name === undefined ? 'nothing' : `"${name}"`}`,
        { field: 'analysis', actual: name },
      );
    const analysis = name as AnalysisName;
    const quick = rest.includes('--quick');
    const c = `analyze ${analysis}`;
    const v = parseOptions(
      c,
      rest.filter((a) => a !== '--quick'),
      {
        out: `runs/analyze/${analysis}`,
        seed: '0',
        checkpoint: undefined,
        model: undefined,
        tokenizer: undefined,
        tasks: undefined,
        'train-tasks': undefined,
        shots: undefined,
        'max-instances': undefined,
        steps: undefined,
        k: undefined,
        variants: undefined,
        draws: undefined,
        orders: undefined,
        'icl-adapter': undefined,
        'pt-steps': undefined,
        'pt-eval-every': undefined,
        'pt-lr': undefined,
        'shared-prefix': undefined,
        'shared-steps': undefined,
        ...backendOption,
      },
    );
    // Counts (shots, steps, draws, ...) below 1 would analyse nothing; only the seed may be any integer.
    const int = (n: string, min = 1) => numberOption(c, n, v[n], true, min);
    await startBackend(v.backend, io);
    const { report, paths } = await runAnalysis(
      {
        analysis,
        out: v.out!,
        quick,
        seed: int('seed', -Infinity)!,
        checkpoint: v.checkpoint,
        model: v.model,
        tokenizer: v.tokenizer,
        tasks: v.tasks,
        trainTasks: v['train-tasks'],
        shots: int('shots'),
        maxInstances: int('max-instances'),
        steps: int('steps'),
        k: int('k'),
        variants: v.variants
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean),
        draws: int('draws'),
        orders: int('orders'),
        iclAdapter: v['icl-adapter'],
        ptSteps: int('pt-steps'),
        ptEvalEvery: int('pt-eval-every'),
        ptLr: numberOption(c, 'pt-lr', v['pt-lr']),
        sharedPrefix: v['shared-prefix'],
        sharedSteps: int('shared-steps'),
        command: `hyperllama-eval analyze ${argv.join(' ')}`,
      },
      io,
    );
    io.stdout(`\n${markdownTable(report.table.header, report.table.rows).join('\n')}\n\n${report.interpretation}\n\n`);
    io.stdout(
      `report: ${paths.json}\n        ${paths.markdown}\n${paths.figures.map((f) => `        ${f}\n`).join('')}`,
    );
  },
};
