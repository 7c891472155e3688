import { appendFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  isControlTask,
  makeSyntheticTask,
  syntheticKinds,
  syntheticTaskName,
  type SyntheticKind,
  type Task,
} from '@hyperllama/datasets';
import {
  EvalError,
  buildReport,
  evaluate,
  pairedBootstrap,
  writeReport,
  type EvalReport,
  type MethodName,
  type MethodResult,
} from '@hyperllama/eval';
import { Prefix } from '@hyperllama/gist-attention';
import { HyperLlama, loadPretrained } from '@hyperllama/hypernet';
import { loadAdapter } from '@hyperllama/lora';
import { initBackend, onSyncReadBackend, type BackendName } from '@hyperllama/runtime';
import { applyPatch, defaultConfig, runStage, type Stage, type TrainConfig } from '@hyperllama/training';
import { DEV_SEED_OFFSET, SCREEN_MIN_GAIN, screenFamilies, type FamilyScreen } from './screen.js';

/** How big the miniature is: `full` fits 15 minutes on 2 CPU cores, `quick` a few minutes (a smoke test). */
export interface MiniatureBudget {
  /** Compression hyperpretraining steps before multi-task training (0: the stage is left out; see README). */
  hyperpretrainSteps: number;
  /** Multi-task training steps, the same for every method. */
  multitaskSteps: number;
  /** Held-out tasks in the headline average (at least this many exist), and control tasks per control family. */
  headlineTasks: number;
  controlTasksPerFamily: number;
  /** Evaluated instances per task. */
  maxInstances: number;
  /** Prefix tuning: steps at which each curve is evaluated (the last is the number of steps). */
  prefixTuningEvalSteps: number[];
  /** Prefix tuning runs on the first this many headline tasks, evaluated on this many instances at each curve step. */
  prefixTuningTasks: number;
  prefixTuningInstances: number;
}

export const BUDGETS: Record<'full' | 'quick', MiniatureBudget> = {
  full: {
    hyperpretrainSteps: 0,
    multitaskSteps: 150,
    headlineTasks: 24,
    controlTasksPerFamily: 1,
    maxInstances: 32,
    prefixTuningEvalSteps: [0, 10, 25, 50],
    prefixTuningTasks: 20,
    prefixTuningInstances: 8,
  },
  quick: {
    hyperpretrainSteps: 0,
    multitaskSteps: 20,
    headlineTasks: 4,
    controlTasksPerFamily: 1,
    maxInstances: 4,
    prefixTuningEvalSteps: [0, 2],
    prefixTuningTasks: 2,
    prefixTuningInstances: 4,
  },
};

/** Demonstrations per evaluated task; training episodes draw between MIN_TRAIN_SHOTS and SHOTS. */
export const SHOTS = 16;
const MIN_TRAIN_SHOTS = 2;
/**
 * Token budgets: an ICL row holds 16 demonstrations and the instance; the hyper input 16 demonstrations and the gists.
 * Half the training episodes draw their words from common English and half start with a definition, for every method
 * alike: without them the hypernetwork's prefixes did not carry plain-English tasks (HyperLlama below zero-shot on
 * them), at some cost on the synthetic held-out tasks (see the README).
 */
const DATA = {
  shots: SHOTS,
  minShots: MIN_TRAIN_SHOTS,
  maxLength: 400,
  maxHyperLength: 400,
  seqLen: 256,
  openLexicon: 0.5,
  definitions: 0.5,
};

/**
 * Peak learning rate of each multi-task method (AdamW, cosine, 150 steps, batch 8), tuned per method by
 * `node tools/scripts/tune-learning-rates.mjs --steps 150` on the embedded base with the miniature's data: the lowest
 * held-out loss after 150 steps (fresh episodes of the held-out kinds, content never evaluated) among 1e-3, 3e-3 and
 * 1e-2 (the shared prefix: 3e-2, 1e-1, 3e-1, 1 and 3). HyperLlama 3.163 / 3.131 / 4.063; ICL LoRA 2.466 / 2.472 /
 * 2.741; zero-shot LoRA 3.998 / 3.992 / 4.025; shared prefix 4.260 / 4.064 / 3.997 / 4.025 / 4.586. Prefix tuning
 * uses 1e-2.
 */
export const LEARNING_RATES: Record<'hyperllama' | 'icl' | 'zero-shot' | 'shared-prefix', number> = {
  hyperllama: 3e-3,
  icl: 1e-3,
  'zero-shot': 3e-3,
  'shared-prefix': 3e-1,
};

export interface MiniatureOptions {
  out: string;
  quick: boolean;
  seed: number;
  backend?: string;
  /** An existing base model directory (skips pretrain-base); without one, a stand-in base is pretrained first. */
  base?: string;
  budget?: MiniatureBudget;
  /** Whether stderr is a terminal (the trainer's status line is then rewritten in place). */
  isTTY?: boolean;
}

/** Where the miniature reports: progress lines on stderr, and a progress bar for the evaluation. */
export interface MiniatureIo {
  stderr(text: string): void;
  /** A progress bar, started when the evaluation starts. */
  progress(): { update(label: string, done: number, total: number): void; end(): void };
}

export interface MiniatureResult {
  report: EvalReport;
  /** The miniature's preconditions, one line each (also at the end of results.md). */
  gates: string[];
  paths: ReturnType<typeof writeReport>;
  /** The multi-task HyperLlama checkpoint. */
  checkpoint: string;
  seconds: Record<string, number>;
}

function stageConfig(stage: Stage, patch: Record<string, unknown>): TrainConfig {
  return applyPatch(defaultConfig(stage), patch, `default (${stage})`);
}

/** Takes up to `n` tasks, one family at a time in turn (every family represented before any gets a second task). */
function roundRobin(byFamily: ReadonlyMap<string, readonly Task[]>, n: number): Task[] {
  const out: Task[] = [];
  for (let round = 0; out.length < n && [...byFamily.values()].some((ts) => ts.length > round); round++) {
    for (const ts of byFamily.values()) if (ts[round] && out.length < n) out.push(ts[round]);
  }
  return out;
}

/**
 * The tasks the miniature evaluates, none of them seen in training: held-out variants of the trained families and
 * the held-out families, all with held-out content (label assignments, tables, constants training never shows).
 * `headline` (`headlineTasks` of them, one family at a time in turn) makes the averages and the claims; it holds the
 * `headlineFamilies` (the screen's choice): when a family has fewer held-out variants than its turn needs, further
 * draws of its variants with other held-out content follow (seed `seed + d`, named `<task>_seed<seed + d>`). Without
 * `headlineFamilies`, the headline is the held-out variants of the families not marked as controls (`isControlTask`),
 * in turn, without further draws. `control` holds `controlTasksPerFamily` tasks of every other held-out
 * family, reported apart.
 */
export function miniatureTasks(
  seed: number,
  budget: Pick<MiniatureBudget, 'headlineTasks' | 'controlTasksPerFamily'>,
  headlineFamilies?: readonly string[],
): { headline: Task[]; control: Task[] } {
  const split = syntheticKinds({ seed });
  const heldOut = [...split.heldOutParams, ...split.heldOutFamilies];
  const inHeadline = (family: string) =>
    headlineFamilies ? headlineFamilies.includes(family) : !isControlTask(syntheticTaskName(family, ''));
  const kindsOf = new Map<string, SyntheticKind[]>();
  for (const k of heldOut) kindsOf.set(k.family, [...(kindsOf.get(k.family) ?? []), k]);
  const draw = (k: SyntheticKind, d: number): Task => {
    const task = makeSyntheticTask(k.family, k.variant, { seed: seed + d, pool: 'heldout' });
    return d === 0 ? task : { ...task, name: `${task.name}_seed${seed + d}` };
  };
  const families = [...kindsOf.keys()].filter(inHeadline);
  const perFamily = Math.ceil(budget.headlineTasks / Math.max(1, families.length));
  // Screened: `perFamily` tasks per family, further draws after its variants. Without a screen: the held-out variants
  // alone (the list the analyses evaluate by default).
  const tasksOf = (f: string): Task[] => {
    const kinds = kindsOf.get(f)!;
    return headlineFamilies
      ? Array.from({ length: perFamily }, (_, i) => draw(kinds[i % kinds.length], Math.floor(i / kinds.length)))
      : kinds.map((k) => draw(k, 0));
  };
  return {
    headline: roundRobin(new Map(families.map((f) => [f, tasksOf(f)])), budget.headlineTasks),
    control: [...kindsOf]
      .filter(([f]) => !inHeadline(f))
      .flatMap(([, kinds]) => kinds.slice(0, budget.controlTasksPerFamily).map((k) => draw(k, 0))),
  };
}

/** ICL must beat zero-shot by this many points on the headline tasks for the miniature to test anything. */
export const ICL_GATE_POINTS = 20;

/**
 * The miniature's two preconditions, as printed lines: the base learns in context (ICL beats zero-shot by at least
 * {@link ICL_GATE_POINTS} points on the headline tasks) and the HyperLlama prefix carries the task (own prefix beats
 * another task's, the swap gap's interval excluding 0 on score or answer loss). The claims mean little when either fails.
 */
export function miniatureGates(results: readonly MethodResult[], report: EvalReport, seed: number): string[] {
  const headline = (method: string) =>
    results.find((r) => r.method === method)!.scores.filter((t) => !report.controlTasks.includes(t.task));
  // Scores are fractions (accuracy, exact match) on the synthetic tasks: ×100 gives points.
  const gap = pairedBootstrap(headline('icl'), headline('zero-shot'), { seed });
  const sign = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
  const icl = `gate (the base learns in context: ICL beats zero-shot by at least ${ICL_GATE_POINTS} points): ${100 * gap.difference >= ICL_GATE_POINTS ? 'passed' : 'failed'} — ICL − zero-shot ${sign(gap.difference)} points [95% CI ${sign(gap.low)}, ${sign(gap.high)}]`;
  const swap = report.claims.find((c) => c.id === 'swap gap');
  if (!swap) return [icl];
  const c = swap.comparisons[0];
  const loss = c.answerLoss;
  const carried = swap.verdict === 'holds' || swap.answerLossVerdict === 'holds';
  const lossText = loss
    ? `, answer loss ${(loss.difference >= 0 ? '+' : '') + loss.difference.toFixed(3)} nats/token [95% CI ${loss.low.toFixed(3)}, ${loss.high.toFixed(3)}]`
    : '';
  return [
    icl,
    `gate (the prefix carries the task: own prefix beats another task's): ${carried ? 'passed' : 'failed'} — own − other ${sign(c.score.difference)} points [95% CI ${sign(c.score.low)}, ${sign(c.score.high)}]${lossText}`,
  ];
}

/**
 * The paper in miniature, on the embedded default data: pretrain a tiny base (unless given or embedded), optional
 * compression hyperpretraining, multi-task training of HyperLlama and of the baselines (ICL LoRA, zero-shot LoRA,
 * shared prefix) on fresh-content episodes of the training task kinds, then evaluation on held-out tasks: zero-shot,
 * ICL, HyperLlama with its prefix-swap control, and prefix tuning from random, shared, own-HyperLlama and
 * other-task-HyperLlama initialisations. Every stage runs through the trainer's library API.
 */
export async function runMiniature(o: MiniatureOptions, io: MiniatureIo): Promise<MiniatureResult> {
  const budget = o.budget ?? BUDGETS[o.quick ? 'quick' : 'full'];
  const out = resolve(o.out);
  const seconds: Record<string, number> = {};
  const common = {
    seed: o.seed,
    backend: o.backend ?? 'auto',
    saveEvery: 0,
    evalEvery: 0,
    logEvery: 25,
    batchSize: 8,
    data: DATA,
  };
  const isTTY = o.isTTY ?? false;
  const trainerIo = {
    log: (line: string) => io.stderr(`${line}\n`),
    isTTY,
    status: (line: string) => io.stderr(`\r${line}\x1b[K`),
  };
  const stage = async (name: string, s: Stage, patch: Record<string, unknown>): Promise<string> => {
    io.stderr(`\n== ${name} ==\n`);
    const started = performance.now();
    const result = await runStage(s, stageConfig(s, { ...common, ...patch }), {
      out: join(out, name),
      io: trainerIo,
      handleSignals: false,
    });
    seconds[name] = (performance.now() - started) / 1000;
    if (!result.final)
      throw new EvalError('STAGE_INTERRUPTED', `default: stage ${name} stopped at step ${result.step}`, {
        stage: name,
      });
    io.stderr(
      `${name}: loss ${result.firstLoss.toFixed(3)} → ${result.lastLoss.toFixed(3)}, held-out ${result.initialEvalLoss.toFixed(3)} → ${result.evalLoss.toFixed(3)}, ${Math.round(result.tokensPerSecond)} tokens/s, ${seconds[name].toFixed(0)} s\n`,
    );
    return result.final;
  };

  const given = o.base;
  if (given) io.stderr(`[hyperllama] base model: ${given}\n`);
  // Without the embedded base (a trimmed checkout), a quick stand-in: the trainer's tiny default, 300 steps.
  const base = given ?? join(await stage('base', 'pretrain-base', { steps: 300 }), 'model');
  if (!existsSync(join(base, 'config.json')))
    throw new EvalError('MISSING_FILE', `default: base model ${base} has no config.json`, { file: base });
  const model = { base };
  // Which held-out families go in the headline: those the bare base learns in context on a development draw.
  // The backend the stages will use (initBackend is idempotent), before the first tensor is made.
  await initBackend({ backend: common.backend as BackendName });
  const pretrained = await onSyncReadBackend(() => loadPretrained(base));
  let screen: FamilyScreen[];
  try {
    const split = syntheticKinds({ seed: o.seed });
    screen = await screenFamilies(
      pretrained.model,
      pretrained.tokenizer,
      [...split.heldOutParams, ...split.heldOutFamilies],
      { seed: o.seed, shots: SHOTS, maxLength: DATA.maxLength },
    );
  } finally {
    pretrained.dispose();
  }
  io.stderr(
    `\n== screen: the bare base on a development draw, scored as the evaluation scores (0 → ${SHOTS} shots) ==\n`,
  );
  for (const f of screen)
    io.stderr(
      `${f.family.padEnd(14)} ${(100 * f.zeroShot).toFixed(1).padStart(5)} → ${(100 * f.icl).toFixed(1).padStart(5)}  ${f.chance > 0 ? `(chance ${(100 * f.chance).toFixed(1)}) ` : ''}${f.headline ? 'headline' : 'control'}\n`,
    );
  const multitask = (method: keyof typeof LEARNING_RATES, extra: Record<string, unknown> = {}) =>
    stage(`multitask-${method}`, 'multitask', {
      model,
      method,
      steps: budget.multitaskSteps,
      lr: LEARNING_RATES[method],
      warmupSteps: Math.min(20, budget.multitaskSteps),
      ...extra,
    });
  const pre =
    budget.hyperpretrainSteps > 0
      ? await stage('hyperpretrain', 'hyperpretrain', { model, steps: budget.hyperpretrainSteps })
      : undefined;
  const hyper = join(
    await multitask('hyperllama', pre ? { hyper: { from: join(pre, 'hyperllama') } } : {}),
    'hyperllama',
  );
  const icl = join(await multitask('icl'), 'adapter');
  const zeroShot = join(await multitask('zero-shot'), 'adapter');
  const shared = join(await multitask('shared-prefix'), 'prefix.safetensors');

  io.stderr('\n== evaluation on held-out tasks ==\n');
  const started = performance.now();
  const { headline, control } = miniatureTasks(
    o.seed,
    budget,
    screen.filter((f) => f.headline).map((f) => f.family),
  );
  const tasks = [...headline, ...control];
  const setup = await onSyncReadBackend(() => HyperLlama.fromPretrained(hyper));
  try {
    loadAdapter(icl, setup.model, 'icl');
    loadAdapter(zeroShot, setup.model, 'zero-shot');
    const sharedPrefix = Prefix.load(shared, setup.model.config);
    const baseMethods: MethodName[] = ['zero-shot', 'icl', 'hyperllama'];
    const inits: MethodName[] = [
      'prefix-tuning-random',
      'prefix-tuning-shared',
      'prefix-tuning-hyper',
      'prefix-tuning-hyper-other',
    ];
    // Prefix tuning (50 steps and 4 evaluations per task and initialisation) runs on a subset to fit the budget.
    const ptTasks = headline.slice(0, budget.prefixTuningTasks);
    const progress = io.progress();
    let done = 0;
    const total = (baseMethods.length + 1) * tasks.length + inits.length * ptTasks.length; // + the swap control
    const onProgress = (e: { method: string; task: string }) => progress.update(`${e.method} ${e.task}`, ++done, total);
    const prefixTuning = {
      evalSteps: budget.prefixTuningEvalSteps,
      lr: 1e-2,
      batchSize: 8,
      sharedPrefix,
      seed: o.seed,
    };
    const settings = {
      model: setup.model,
      tokenizer: setup.tokenizer,
      hyperllama: setup.hyperllama,
      adapters: { 'zero-shot': ['zero-shot'], icl: ['icl'] },
      maxLength: DATA.maxLength,
      maxHyperLength: DATA.maxHyperLength,
      maxNewTokens: 16,
      batchSize: 16,
    };
    const results = [
      ...(await evaluate(
        tasks,
        settings,
        {
          methods: baseMethods,
          shots: SHOTS,
          maxInstances: budget.maxInstances,
          seed: o.seed,
          control: control.map((t) => t.name),
        },
        onProgress,
      )),
      ...(await evaluate(
        ptTasks,
        settings,
        { methods: inits, shots: SHOTS, maxInstances: budget.prefixTuningInstances, seed: o.seed, prefixTuning },
        onProgress,
      )),
    ];
    progress.end();
    sharedPrefix.dispose();
    seconds.evaluation = (performance.now() - started) / 1000;
    const report = buildReport(
      results,
      {
        command: `hyperllama-eval default${o.quick ? ' --quick' : ''} --seed ${o.seed}`,
        budget,
        data: DATA,
        learningRates: { ...LEARNING_RATES, 'prefix-tuning': prefixTuning.lr },
        tasks: `held-out synthetic tasks (held-out variants and families, held-out content): ${headline.length} headline, ${control.length} control; prefix tuning on the first ${ptTasks.length} headline tasks`,
        screen: {
          rule: `a held-out family is in the headline when the bare base, reading ${SHOTS} demonstrations, scores at least ${100 * SCREEN_MIN_GAIN} points above both its zero-shot score and chance on a development draw (content seed + ${DEV_SEED_OFFSET}, never evaluated), scored as the evaluation scores; the other families are controls`,
          families: screen,
        },
        base,
        checkpoints: { hyperllama: hyper, icl, zeroShot, sharedPrefix: shared },
        backend: tf.getBackend(),
        seconds,
      },
      { controlTasks: control.map((t) => t.name), seed: o.seed },
    );
    const gates = miniatureGates(results, report, o.seed);
    const paths = writeReport(report, join(out, 'report'));
    if (paths.markdown) appendFileSync(paths.markdown, `\n## Gates\n\n${gates.map((g) => `- ${g}`).join('\n')}\n`);
    return { report, gates, paths, checkpoint: hyper, seconds };
  } finally {
    setup.dispose();
  }
}
