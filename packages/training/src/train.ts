import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getDropoutRngStates, listAdapters, setDropoutRngStates } from '@hyperllama/lora';
import { HypernetError, fit, resolveCheckpointDir, writeDirAtomic } from '@hyperllama/hypernet';
import {
  AdamW,
  fromFloat32,
  initBackend,
  lrSchedule,
  onSyncReadBackend,
  readSafetensors,
  readToHost,
  toFloat32,
  writeFileAtomic,
  writeSafetensors,
  type BackendName,
} from '@hyperllama/runtime';
import type { Stage, TrainConfig } from './config.js';
import { TrainerError } from './errors.js';
import { buildJob, type Job, type SwapControl } from './jobs.js';
import { acquireRunLock, removeStaleTemporaries } from './lock.js';
import { Progress, type Io } from './progress.js';

export const CHECKPOINT_DIR = 'checkpoint';
export const FINAL_DIR = 'final';
const TRAINABLE_FILE = 'trainable.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const STATE_FILE = 'state.json';

export interface RunOptions {
  out: string;
  /** Continue the run in `out` from its last checkpoint. */
  resume?: boolean;
  io: Io;
  /** Register SIGINT/SIGTERM handlers that checkpoint and stop (default true). */
  handleSignals?: boolean;
}

export interface RunResult {
  /** Steps completed (equals config.steps unless interrupted). */
  step: number;
  interrupted: boolean;
  /** The signal that interrupted the run (SIGINT or SIGTERM), else null. */
  signal: NodeJS.Signals | null;
  /** Training loss of the first and last step of this process; held-out loss before training (NaN when resumed) and at the end. */
  firstLoss: number;
  lastLoss: number;
  initialEvalLoss: number;
  evalLoss: number;
  /** HyperLlama stages: the held-out loss behind each sample's own prefix against another sample's, at the end. */
  swapControl?: SwapControl;
  tokensPerSecond: number;
  checkpoint: string;
  final?: string;
}

interface SavedState {
  stage: Stage;
  step: number;
  data: unknown;
  /** Per LoRA adapter, its dropout Rng states (so resumed runs draw the same masks). */
  dropout: Record<string, ReturnType<typeof getDropoutRngStates>>;
}

/**
 * Run one training stage. Writes into `out`: `config.json` (the resolved configuration), `metrics.jsonl` (one JSON
 * object per logged step and per evaluation), `checkpoint/` (every `saveEvery` steps, at the end, and on
 * SIGINT/SIGTERM, written atomically: trainable weights, optimizer state, data position, plus the stage's outputs)
 * and, when all steps are done, `final/` with the stage's outputs.
 */
export async function runStage(stage: Stage, cfg: TrainConfig, opts: RunOptions): Promise<RunResult> {
  const out = resolve(opts.out);
  mkdirSync(out, { recursive: true });
  // Before anything in `out` is read or written: a second run on the same directory is refused here.
  const release = acquireRunLock(out, stage, opts.io.log);
  try {
    const stale = removeStaleTemporaries(out);
    if (stale.length > 0) opts.io.log(`${out}: removed what killed runs left half-written: ${stale.join(', ')}`);
    return await runLocked(stage, cfg, opts, out);
  } finally {
    release();
  }
}

async function runLocked(stage: Stage, cfg: TrainConfig, opts: RunOptions, out: string): Promise<RunResult> {
  const backend = await initBackend({ backend: cfg.backend as BackendName, threads: cfg.threads || undefined });
  opts.io.log(`backend: ${backend.name} (${backend.reason})`);

  // Building a job reads the base's statistics synchronously (HyperLlama's gist initialisation, a random prefix's
  // scale): on webgpu it is built on the cpu backend, and its tensors move to the GPU on first use.
  const job = await onSyncReadBackend(() => buildJob(stage, cfg));
  opts.io.log(job.summary);
  const optimizer = new AdamW(job.params, { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const schedule = lrSchedule({
    type: cfg.schedule,
    lr: cfg.lr,
    warmupSteps: Math.min(cfg.warmupSteps, cfg.steps - 1),
    totalSteps: cfg.steps,
    minLr: cfg.schedule === 'constant' ? 0 : cfg.lr * 0.1,
  });
  const metricsFile = join(out, 'metrics.jsonl');
  const checkpointDir = join(out, CHECKPOINT_DIR);
  let step = 0;
  if (opts.resume) {
    let from: string;
    ({ step, dir: from } = restoreCheckpoint(checkpointDir, stage, job, optimizer));
    const dropped = truncateMetrics(metricsFile, step);
    if (dropped > 0)
      opts.io.log(
        `${metricsFile}: repaired: dropped ${dropped} unreadable line(s) (a write cut off when the run was killed)`,
      );
    opts.io.log(`resumed from ${from} at step ${step}`);
  } else {
    writeFileSync(metricsFile, '');
  }
  const metric = (m: Record<string, unknown>) => appendFileSync(metricsFile, JSON.stringify(m) + '\n');
  const initialEval = opts.resume ? NaN : await job.evaluate(); // the curve's starting point
  if (!opts.resume) metric({ step: 0, evalLoss: initialEval });
  writeFileAtomic(join(out, 'config.json'), JSON.stringify({ stage, ...cfg }, null, 2) + '\n');

  let savedAt = step;
  // Everything a checkpoint or an export reads synchronously, read to the host first (a no-op where sync reads work).
  const toHost = () => readToHost([...Object.values(job.params), ...optimizer.stateTensors()]);
  const save = async () => {
    await toHost();
    // Checked before anything is written: a non-finite weight must never replace the last good checkpoint.
    const tensors = new Map<string, ReturnType<typeof fromFloat32>>();
    for (const [name, v] of Object.entries(job.params)) {
      const values = v.dataSync() as Float32Array;
      const bad = values.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) {
        const last = resolveCheckpointDir(checkpointDir);
        throw new TrainerError(
          'NON_FINITE_WEIGHTS',
          `step ${step}: trainable tensor ${name} holds ${values[bad]} at index ${bad}; no checkpoint was written${last ? ` (the last good one is ${last})` : ''}; try a lower --lr or a smaller maxGradNorm`,
          {
            step,
            tensor: name,
            checkpoint: last ?? null,
          },
        );
      }
      tensors.set(name, fromFloat32(values, v.shape));
    }
    writeDirAtomic(checkpointDir, (tmp) => saveCheckpoint(tmp, stage, cfg, step, job, optimizer, tensors));
    savedAt = step;
  };
  let stopSignal: NodeJS.Signals | null = null;
  const onSignal = (s: NodeJS.Signals) => {
    stopSignal = s;
  };
  if (opts.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  const progress = new Progress(opts.io, cfg.steps, cfg.logEvery);
  const result: RunResult = {
    step,
    interrupted: false,
    signal: null,
    firstLoss: NaN,
    lastLoss: NaN,
    initialEvalLoss: initialEval,
    evalLoss: NaN,
    tokensPerSecond: 0,
    checkpoint: checkpointDir,
  };
  let tokens = 0;
  const started = performance.now();
  try {
    let batch: ReturnType<Job['next']>;
    try {
      await fit({
        params: job.params,
        optimizer,
        steps: cfg.steps,
        startStep: step,
        schedule,
        maxGradNorm: cfg.maxGradNorm > 0 ? cfg.maxGradNorm : undefined,
        objective: () => {
          batch = job.next();
          return batch.loss;
        },
        onStep: async ({ step: taken, loss, lr, gradNorm }) => {
          step = taken;
          tokens += batch.tokens;
          const seconds = (performance.now() - started) / 1000;
          result.tokensPerSecond = tokens / seconds;
          if (Number.isNaN(result.firstLoss)) result.firstLoss = loss;
          result.lastLoss = loss;
          metric({
            step,
            loss,
            lr,
            gradNorm,
            tokens: batch.tokens,
            tokensPerSecond: Math.round(result.tokensPerSecond),
            seconds: Math.round(seconds * 10) / 10,
          });
          progress.update(step, loss, result.tokensPerSecond);
          if ((cfg.evalEvery > 0 && step % cfg.evalEvery === 0) || step === cfg.steps) {
            result.evalLoss = await job.evaluate();
            metric({ step, evalLoss: result.evalLoss });
            progress.note(`step ${step}: held-out loss ${result.evalLoss.toFixed(4)}`);
          }
          if ((cfg.saveEvery > 0 && step % cfg.saveEvery === 0) || step === cfg.steps) await save();
          await new Promise((r) => setImmediate(r)); // lets SIGINT/SIGTERM handlers run
          if (!stopSignal) return;
          if (savedAt !== step) await save();
          progress.note(
            `${stopSignal}: checkpoint written to ${checkpointDir} at step ${step}; continue with --resume ${out}`,
          );
          result.interrupted = true;
          result.signal = stopSignal;
          return 'stop';
        },
      });
    } catch (e) {
      if (e instanceof HypernetError && e.code === 'HYPERNET_NON_FINITE_LOSS') {
        const last = resolveCheckpointDir(checkpointDir);
        throw new TrainerError(
          'NON_FINITE_LOSS',
          `step ${step + 1}: ${e.message}. ${last ? `The last good checkpoint is ${last} (step ${readState(last).step}); ` : 'No checkpoint was written yet; '}try a lower --lr or a smaller maxGradNorm`,
          {
            step: step + 1,
            checkpoint: last ?? null,
          },
        );
      }
      throw e;
    }
    if (!result.interrupted && step === cfg.steps) {
      await toHost();
      writeDirAtomic(join(out, FINAL_DIR), (tmp) => job.exportTo(tmp));
      result.final = join(out, FINAL_DIR);
      // After the export, so that nothing here can cost the run its outputs.
      const c = await job.swapControl?.();
      if (c) {
        result.swapControl = c;
        metric({ step, swapControl: c });
        progress.note(
          `step ${step}: swap control — held-out loss ${c.ownLoss.toFixed(4)} with each sample's own prefix, ${c.swappedLoss.toFixed(4)} with another's (gap ${c.gap.toFixed(4)} [95% CI ${c.gapLow.toFixed(4)}, ${c.gapHigh.toFixed(4)}])`,
        );
      }
    }
  } finally {
    progress.done();
    if (opts.handleSignals !== false) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    optimizer.dispose();
    job.dispose();
  }
  result.step = step;
  return result;
}

function saveCheckpoint(
  dir: string,
  stage: Stage,
  cfg: TrainConfig,
  step: number,
  job: Job,
  optimizer: AdamW,
  tensors: Map<string, ReturnType<typeof fromFloat32>>,
): void {
  writeSafetensors(join(dir, TRAINABLE_FILE), tensors, { format: 'pt' });
  const { tensors: opt, metadata } = optimizer.stateEntries();
  writeSafetensors(join(dir, OPTIMIZER_FILE), opt, metadata);
  const dropout = Object.fromEntries(listAdapters(job.model).map((a) => [a, getDropoutRngStates(job.model, a)]));
  const state: SavedState = { stage, step, data: job.getState(), dropout };
  writeFileSync(join(dir, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ stage, ...cfg }, null, 2) + '\n');
  job.exportTo(dir);
}

function readState(dir: string): SavedState {
  const file = join(dir, STATE_FILE);
  let state: SavedState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as SavedState;
  } catch (e) {
    throw new TrainerError('CHECKPOINT_BAD', `${file}: cannot read the training state (${(e as Error).message})`, {
      file,
    });
  }
  // Parsed JSON of the wrong shape would otherwise resume at step undefined or crash in setState.
  const field = (name: string, expected: string): never => {
    throw new TrainerError('CHECKPOINT_BAD', `${file}: field "${name}": expected ${expected}`, {
      file,
      field: name,
      expected,
    });
  };
  if (typeof state !== 'object' || state === null || Array.isArray(state)) field('<root>', 'an object');
  if (typeof state.stage !== 'string') field('stage', 'a stage name');
  if (!Number.isSafeInteger(state.step) || state.step < 0) field('step', 'a non-negative integer');
  if (
    state.dropout !== undefined &&
    (typeof state.dropout !== 'object' || state.dropout === null || Array.isArray(state.dropout))
  )
    field('dropout', 'an object');
  return state;
}

/**
 * Load weights, optimizer state and data position from the last good checkpoint (`checkpointDir`, else the
 * `.old` a cut-off save left); returns its step and folder. Anything unusable is a typed error naming the file.
 */
export function restoreCheckpoint(
  checkpointDir: string,
  stage: Stage,
  job: Job,
  optimizer: AdamW,
): { step: number; dir: string } {
  const dir = resolveCheckpointDir(checkpointDir);
  if (!dir)
    throw new TrainerError('CHECKPOINT_NOT_FOUND', `${checkpointDir}: no checkpoint to resume from`, {
      file: checkpointDir,
    });
  const state = readState(dir);
  if (state.stage !== stage) {
    throw new TrainerError(
      'CHECKPOINT_STAGE',
      `${dir}: the checkpoint is from stage "${state.stage}", not "${stage}"`,
      { file: dir, expected: stage, actual: state.stage },
    );
  }
  const file = join(dir, TRAINABLE_FILE);
  const { tensors } = readSafetensors(file);
  const names = Object.keys(job.params);
  const missing = names.filter((n) => !tensors.has(n));
  if (missing.length > 0 || tensors.size !== names.length) {
    throw new TrainerError(
      'CHECKPOINT_MISMATCH',
      `${file}: holds ${tensors.size} tensors, the run trains ${names.length} (missing: ${missing.slice(0, 5).join(', ')})`,
      { file, missing },
    );
  }
  for (const [name, v] of Object.entries(job.params)) {
    const e = tensors.get(name)!;
    if (e.shape.join(',') !== v.shape.join(',')) {
      throw new TrainerError(
        'CHECKPOINT_MISMATCH',
        `${file}: ${name} has shape [${e.shape}], the run's is [${v.shape}]`,
        { file, field: name },
      );
    }
    const values = toFloat32(e, name);
    const bad = values.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0)
      throw new TrainerError('CHECKPOINT_BAD', `${file}: tensor ${name} holds ${values[bad]} at index ${bad}`, {
        file,
        tensor: name,
      });
    tf.tidy(() => v.assign(tf.tensor(values, v.shape, 'float32')));
  }
  const optPath = join(dir, OPTIMIZER_FILE);
  const optFile = readSafetensors(optPath);
  // The optimizer counts its own steps: one that disagrees with state.json comes from another save.
  if (Number(optFile.metadata.step) !== state.step) {
    throw new TrainerError(
      'CHECKPOINT_MISMATCH',
      `${optPath}: optimizer step ${optFile.metadata.step}, but ${STATE_FILE} says step ${state.step}`,
      { file: optPath, field: 'step' },
    );
  }
  for (const [name, e] of optFile.tensors) {
    if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16') continue;
    const values = toFloat32(e, name);
    const bad = values.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0)
      throw new TrainerError('CHECKPOINT_BAD', `${optPath}: tensor ${name} holds ${values[bad]} at index ${bad}`, {
        file: optPath,
        tensor: name,
      });
  }
  optimizer.loadStateEntries(optFile.tensors, optFile.metadata, optPath);
  const stateFile = join(dir, STATE_FILE);
  // The samplers and Rngs check little of what they are given: a damaged position is this file's fault.
  try {
    job.setState(state.data);
    for (const [adapter, states] of Object.entries(state.dropout ?? {}))
      setDropoutRngStates(job.model, adapter, states);
  } catch (e) {
    if (e instanceof TrainerError) throw e;
    throw new TrainerError(
      'CHECKPOINT_BAD',
      `${stateFile}: cannot restore the data position or dropout state (${(e as Error).message})`,
      { file: stateFile },
      { cause: e },
    );
  }
  return { step: state.step, dir };
}

/**
 * Drop metric lines past `step` (written after the checkpoint a resumed run continues from) and lines that do not
 * parse (a kill mid-append leaves a truncated last line). Returns how many unreadable lines were dropped.
 */
export function truncateMetrics(file: string, step: number): number {
  if (!existsSync(file)) return 0;
  let dropped = 0;
  const kept = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => {
      if (line.trim() === '') return false;
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        dropped++;
        return false;
      }
      const s = (m as { step?: unknown } | null)?.step;
      if (typeof s !== 'number') {
        dropped++;
        return false;
      }
      return s <= step;
    });
  writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
  return dropped;
}
