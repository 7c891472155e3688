import * as tf from '@tensorflow/tfjs';
import { OptionError, assertOption } from './errors.js';
import { fromFloat32, readSafetensors, toFloat32, writeSafetensors, type SafetensorsEntry } from './safetensors.js';

/** Gradients keyed by parameter name (as returned by `tf.variableGrads(...).grads`, keyed by `variable.name`). */
export type NamedGradients = Record<string, tf.Tensor>;

export interface AdamWOptions {
  /** Default learning rate when `step` is not given one. */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (Loshchilov & Hutter): p ← p − lr·wd·p before the Adam update. */
  weightDecay?: number;
}

export interface SgdOptions {
  lr?: number;
  momentum?: number;
  weightDecay?: number;
}

/** Common interface of the project's optimizers: named parameters, explicit learning rate per step, saveable state. */
export interface Optimizer {
  readonly kind: 'adamw' | 'sgd';
  /** Number of updates applied so far. */
  readonly stepCount: number;
  /** Apply one update. Parameters without a gradient are left untouched. Gradients are not disposed. */
  step(grads: NamedGradients, lr?: number): void;
  /** Serialisable state: tensors plus metadata strings. */
  stateEntries(): { tensors: Map<string, SafetensorsEntry>; metadata: Record<string, string> };
  /** The state tensors `stateEntries` reads (for `readToHost` on backends without synchronous reads). */
  stateTensors(): tf.Tensor[];
  /** Restore a state written by `stateEntries` (validated against the parameters). */
  loadStateEntries(tensors: Map<string, SafetensorsEntry>, metadata: Record<string, string>, source?: string): void;
  dispose(): void;
}

function paramMap(params: tf.Variable[] | Record<string, tf.Variable>): Map<string, tf.Variable> {
  const map = new Map<string, tf.Variable>();
  const list = Array.isArray(params) ? params.map((p) => [p.name, p] as const) : Object.entries(params);
  for (const [name, v] of list) {
    if (map.has(name)) throw new OptionError('DUPLICATE_PARAM', `parameter "${name}" is listed twice`, { field: name });
    map.set(name, v);
  }
  return map;
}

function checkNumber(name: string, v: number, lo: number, hi: number, loOpen = false): number {
  assertOption(
    Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && v <= hi,
    name,
    `a number in ${loOpen ? '(' : '['}${lo}, ${hi}]`,
    v,
  );
  return v;
}

function readSlots(
  params: Map<string, tf.Variable>,
  tensors: Map<string, SafetensorsEntry>,
  slots: string[],
  source: string,
): Map<string, tf.Tensor[]> {
  const out = new Map<string, tf.Tensor[]>();
  const problems: string[] = [];
  const expected = new Set<string>();
  for (const [name, p] of params) {
    const ts: tf.Tensor[] = [];
    for (const slot of slots) {
      const key = `${name}.${slot}`;
      expected.add(key);
      const e = tensors.get(key);
      if (!e) problems.push(`missing ${key}`);
      else if (e.shape.join(',') !== p.shape.join(','))
        problems.push(`${key} has shape [${e.shape}] but the parameter is [${p.shape}]`);
      else ts.push(tf.tensor(toFloat32(e, key), p.shape, 'float32'));
    }
    out.set(name, ts);
  }
  for (const key of tensors.keys()) if (!expected.has(key)) problems.push(`unexpected ${key}`);
  if (problems.length) {
    for (const ts of out.values()) tf.dispose(ts);
    throw new OptionError(
      'OPTIMIZER_STATE_MISMATCH',
      `${source}: optimizer state does not match the parameters: ${problems.join('; ')}`,
      {
        file: source,
        problems,
      },
    );
  }
  return out;
}

/** AdamW with bias correction and decoupled weight decay (PyTorch's `torch.optim.AdamW` semantics). */
export class AdamW implements Optimizer {
  readonly kind = 'adamw' as const;
  private readonly params: Map<string, tf.Variable>;
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();
  private t = 0;
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: tf.Variable[] | Record<string, tf.Variable>, options: AdamWOptions = {}) {
    this.params = paramMap(params);
    this.lr = checkNumber('lr', options.lr ?? 1e-3, 0, Infinity);
    this.beta1 = checkNumber('beta1', options.beta1 ?? 0.9, 0, 1);
    this.beta2 = checkNumber('beta2', options.beta2 ?? 0.999, 0, 1);
    assertOption(this.beta1 < 1 && this.beta2 < 1, 'beta1/beta2', 'values below 1', [this.beta1, this.beta2]);
    this.eps = checkNumber('eps', options.eps ?? 1e-8, 0, 1, true);
    this.weightDecay = checkNumber('weightDecay', options.weightDecay ?? 0.01, 0, Infinity);
  }

  get stepCount(): number {
    return this.t;
  }

  step(grads: NamedGradients, lr = this.lr): void {
    checkNumber('lr', lr, 0, Infinity);
    this.t += 1;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    for (const [name, p] of this.params) {
      const g = grads[name];
      if (!g) continue;
      const [m, v] = tf.tidy(() => {
        const m0 = this.m.get(name) ?? tf.zerosLike(p);
        const v0 = this.v.get(name) ?? tf.zerosLike(p);
        const m1 = tf.add(tf.mul(m0, this.beta1), tf.mul(g, 1 - this.beta1));
        const v1 = tf.add(tf.mul(v0, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        const decayed = this.weightDecay > 0 ? tf.mul(p, 1 - lr * this.weightDecay) : p;
        const update = tf.div(tf.div(m1, c1), tf.add(tf.sqrt(tf.div(v1, c2)), this.eps));
        p.assign(tf.sub(decayed, tf.mul(update, lr)));
        return [tf.keep(m1), tf.keep(v1)];
      });
      this.m.get(name)?.dispose();
      this.v.get(name)?.dispose();
      this.m.set(name, m);
      this.v.set(name, v);
    }
  }

  stateTensors(): tf.Tensor[] {
    return [...this.m.values(), ...this.v.values()];
  }

  stateEntries(): { tensors: Map<string, SafetensorsEntry>; metadata: Record<string, string> } {
    const tensors = new Map<string, SafetensorsEntry>();
    for (const [name, p] of this.params) {
      tensors.set(
        `${name}.exp_avg`,
        fromFloat32((this.m.get(name)?.dataSync() as Float32Array) ?? new Float32Array(p.size), p.shape),
      );
      tensors.set(
        `${name}.exp_avg_sq`,
        fromFloat32((this.v.get(name)?.dataSync() as Float32Array) ?? new Float32Array(p.size), p.shape),
      );
    }
    const metadata = {
      optimizer: 'adamw',
      step: String(this.t),
      hyperparameters: JSON.stringify({
        lr: this.lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: this.weightDecay,
      }),
    };
    return { tensors, metadata };
  }

  loadStateEntries(tensors: Map<string, SafetensorsEntry>, metadata: Record<string, string>, source = '<state>'): void {
    if (metadata.optimizer !== 'adamw') {
      throw new OptionError(
        'OPTIMIZER_STATE_MISMATCH',
        `${source}: state is for optimizer "${metadata.optimizer}", not adamw`,
        { file: source },
      );
    }
    const step = Number(metadata.step);
    assertOption(Number.isInteger(step) && step >= 0, `${source}: step`, 'a non-negative integer', metadata.step);
    const slots = readSlots(this.params, tensors, ['exp_avg', 'exp_avg_sq'], source);
    this.dispose();
    for (const [name, [m, v]] of slots) {
      this.m.set(name, m);
      this.v.set(name, v);
    }
    this.t = step;
  }

  dispose(): void {
    tf.dispose([...this.m.values(), ...this.v.values()]);
    this.m.clear();
    this.v.clear();
  }
}

/** Stochastic gradient descent with optional momentum and (coupled, L2-style) weight decay, as `torch.optim.SGD`. */
export class Sgd implements Optimizer {
  readonly kind = 'sgd' as const;
  private readonly params: Map<string, tf.Variable>;
  private readonly buf = new Map<string, tf.Tensor>();
  private t = 0;
  readonly lr: number;
  readonly momentum: number;
  readonly weightDecay: number;

  constructor(params: tf.Variable[] | Record<string, tf.Variable>, options: SgdOptions = {}) {
    this.params = paramMap(params);
    this.lr = checkNumber('lr', options.lr ?? 1e-2, 0, Infinity);
    this.momentum = checkNumber('momentum', options.momentum ?? 0, 0, 1);
    this.weightDecay = checkNumber('weightDecay', options.weightDecay ?? 0, 0, Infinity);
  }

  get stepCount(): number {
    return this.t;
  }

  step(grads: NamedGradients, lr = this.lr): void {
    checkNumber('lr', lr, 0, Infinity);
    this.t += 1;
    for (const [name, p] of this.params) {
      const g = grads[name];
      if (!g) continue;
      let kept: tf.Tensor | null = null;
      tf.tidy(() => {
        let d: tf.Tensor = this.weightDecay > 0 ? tf.add(g, tf.mul(p, this.weightDecay)) : g;
        let next: tf.Tensor | null = null;
        if (this.momentum > 0) {
          const prev = this.buf.get(name);
          next = prev ? tf.add(tf.mul(prev, this.momentum), d) : tf.clone(d);
          d = next;
        }
        p.assign(tf.sub(p, tf.mul(d, lr)));
        if (next) kept = tf.keep(next);
      });
      if (kept !== null) {
        this.buf.get(name)?.dispose();
        this.buf.set(name, kept as tf.Tensor);
      }
    }
  }

  stateTensors(): tf.Tensor[] {
    return [...this.buf.values()];
  }

  stateEntries(): { tensors: Map<string, SafetensorsEntry>; metadata: Record<string, string> } {
    const tensors = new Map<string, SafetensorsEntry>();
    if (this.momentum > 0) {
      for (const [name, p] of this.params) {
        tensors.set(
          `${name}.momentum_buffer`,
          fromFloat32((this.buf.get(name)?.dataSync() as Float32Array) ?? new Float32Array(p.size), p.shape),
        );
      }
    }
    const metadata = {
      optimizer: 'sgd',
      step: String(this.t),
      hyperparameters: JSON.stringify({ lr: this.lr, momentum: this.momentum, weightDecay: this.weightDecay }),
      // A zero buffer and "no buffer yet" differ in the first momentum step, so record which parameters have one.
      hasBuffer: JSON.stringify([...this.buf.keys()]),
    };
    return { tensors, metadata };
  }

  loadStateEntries(tensors: Map<string, SafetensorsEntry>, metadata: Record<string, string>, source = '<state>'): void {
    if (metadata.optimizer !== 'sgd') {
      throw new OptionError(
        'OPTIMIZER_STATE_MISMATCH',
        `${source}: state is for optimizer "${metadata.optimizer}", not sgd`,
        { file: source },
      );
    }
    const step = Number(metadata.step);
    assertOption(Number.isInteger(step) && step >= 0, `${source}: step`, 'a non-negative integer', metadata.step);
    const slots =
      this.momentum > 0 ? readSlots(this.params, tensors, ['momentum_buffer'], source) : new Map<string, tf.Tensor[]>();
    const has = new Set<string>(JSON.parse(metadata.hasBuffer ?? '[]') as string[]);
    this.dispose();
    for (const [name, [b]] of slots) {
      if (has.has(name)) this.buf.set(name, b);
      else b.dispose();
    }
    this.t = step;
  }

  dispose(): void {
    tf.dispose([...this.buf.values()]);
    this.buf.clear();
  }
}

/** Save an optimizer's state to a safetensors file (atomically). */
export function saveOptimizerState(optimizer: Optimizer, path: string): void {
  const { tensors, metadata } = optimizer.stateEntries();
  writeSafetensors(path, tensors, metadata);
}

/** Restore an optimizer's state from a file written by {@link saveOptimizerState}. */
export function loadOptimizerState(path: string, optimizer: Optimizer): void {
  const { tensors, metadata } = readSafetensors(path);
  optimizer.loadStateEntries(tensors, metadata, path);
}

/**
 * Scale gradients so that their global L2 norm is at most `maxNorm` (as `torch.nn.utils.clip_grad_norm_`).
 * Returns new gradient tensors (the caller disposes both sets) and the norm before clipping. The norm is read
 * asynchronously (webgpu reads no other way).
 */
export async function clipByGlobalNorm(
  grads: NamedGradients,
  maxNorm: number,
): Promise<{ grads: NamedGradients; norm: number }> {
  checkNumber('maxNorm', maxNorm, 0, Infinity, true);
  const names = Object.keys(grads);
  let norm = 0;
  if (names.length > 0) {
    // Added one by one, in order: the same float32 sums as tf.addN on cpu and wasm, without tfjs-backend-webgpu 4.22's
    // AddN, which reuses a shader compiled for another input count.
    const sumOfSquares = tf.tidy(() =>
      names.map((n) => tf.sum(tf.square(grads[n]))).reduce((total, x) => tf.add(total, x)),
    );
    try {
      norm = Math.sqrt((await sumOfSquares.data())[0]);
    } finally {
      sumOfSquares.dispose();
    }
  }
  const scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  const out: NamedGradients = {};
  for (const n of names) out[n] = scale === 1 ? tf.clone(grads[n]) : tf.tidy(() => tf.mul(grads[n], scale));
  return { grads: out, norm };
}

export interface ScheduleOptions {
  /** `constant` (after warmup), `linear` decay to `minLr`, or `cosine` decay to `minLr`. */
  type: 'constant' | 'linear' | 'cosine';
  /** Peak learning rate reached at the end of warmup. */
  lr: number;
  /** Steps of linear warmup from 0 to `lr` (default 0). */
  warmupSteps?: number;
  /** Total steps; required for linear and cosine decay. */
  totalSteps?: number;
  /** Floor of the decay (default 0). */
  minLr?: number;
}

/**
 * Learning-rate schedule: linear warmup for `warmupSteps`, then constant, linear or cosine decay to `minLr` at
 * `totalSteps`. Steps are 0-based: `schedule(0)` is the rate of the first update.
 */
export function lrSchedule(options: ScheduleOptions): (step: number) => number {
  const { type, lr } = options;
  assertOption(['constant', 'linear', 'cosine'].includes(type), 'schedule type', 'constant, linear or cosine', type);
  checkNumber('lr', lr, 0, Infinity);
  const warmup = options.warmupSteps ?? 0;
  assertOption(Number.isInteger(warmup) && warmup >= 0, 'warmupSteps', 'a non-negative integer', warmup);
  const minLr = checkNumber('minLr', options.minLr ?? 0, 0, lr);
  const total = options.totalSteps ?? 0;
  if (type !== 'constant') {
    assertOption(
      Number.isInteger(total) && total > warmup,
      'totalSteps',
      `an integer greater than warmupSteps (${warmup})`,
      options.totalSteps,
    );
  }
  return (step: number) => {
    if (step < warmup) return (lr * (step + 1)) / warmup;
    if (type === 'constant') return lr;
    const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
    if (type === 'linear') return minLr + (lr - minLr) * (1 - progress);
    return minLr + (lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}
