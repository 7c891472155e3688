import { Rng, type RngState } from '@hyperllama/runtime';
import type { SegmentSample, TokenEncoder } from './collate.js';
import type { TextDocument } from './corpus.js';
import { fail } from './errors.js';
import type { Example, Task } from './task.js';

/** k demonstrations and one target from one task. */
export interface Episode {
  taskIndex: number;
  task: Task;
  examples: Example[];
  target: Example;
  /** Index of the target in `task.instances`. */
  targetIndex: number;
}

export interface EpisodeSamplerOptions {
  seed: number;
  /** Demonstrations per episode (fewer when the pool is smaller). */
  k: number;
  /** At most this many targets per task and epoch, like the 30k-example cap of multi-task mixing (default 30000). */
  maxPerTask?: number;
  /**
   * Where demonstrations come from: `examples` (the task's pool), `instances` (the task's other instances), or
   * `auto` (default): the pool when the task has one, else the other instances.
   */
  pool?: 'examples' | 'instances' | 'auto';
}

/** JSON-serialisable position of an {@link EpisodeSampler}. */
export interface EpisodeSamplerState {
  kind: 'episodes';
  epoch: number;
  /** Episodes already drawn in this epoch. */
  position: number;
  /** The order generator's state at the start of this epoch (the epoch's order is rebuilt from it). */
  epochRng: RngState;
  /** The demonstration generator's state. */
  rng: RngState;
}

/**
 * Multi-task episodes. Each epoch visits every task's instances as targets (at most `maxPerTask` per task, chosen at
 * random) in one shuffled order, so tasks mix in proportion to their capped size; each target gets k demonstrations
 * drawn without replacement from its pool (never the target itself). Restoring {@link getState} continues the same
 * stream.
 */
export class EpisodeSampler {
  private order: Array<[number, number]> = []; // (task, instance) per episode of the current epoch
  private orderRng!: Rng;
  private epochStart!: RngState;
  private rng: Rng;
  private epoch = 0;
  private position = 0;

  constructor(
    readonly tasks: readonly Task[],
    private readonly opts: EpisodeSamplerOptions,
    state?: EpisodeSamplerState,
  ) {
    if (tasks.length === 0) fail('NO_TASKS', { file: 'EpisodeSampler', field: 'tasks' }, 'needs at least one task');
    if (!Number.isInteger(opts.k) || opts.k < 0)
      fail('BAD_OPTION', { file: 'EpisodeSampler', field: 'k' }, `expected an integer >= 0, got ${opts.k}`);
    const cap = opts.maxPerTask ?? 30000;
    if (!Number.isInteger(cap) || cap < 1)
      fail('BAD_OPTION', { file: 'EpisodeSampler', field: 'maxPerTask' }, `expected an integer >= 1, got ${cap}`);
    if (state) {
      if (state.kind !== 'episodes')
        fail(
          'BAD_STATE',
          { file: 'EpisodeSampler', field: 'kind' },
          `expected "episodes", got ${JSON.stringify(state.kind)}`,
        );
      this.startEpoch(state.epoch, Rng.fromState(state.epochRng));
      if (!(state.position >= 0 && state.position <= this.order.length)) {
        fail(
          'BAD_STATE',
          { file: 'EpisodeSampler', field: 'position' },
          `expected 0..${this.order.length}, got ${state.position}`,
        );
      }
      this.position = state.position;
      this.rng = Rng.fromState(state.rng);
    } else {
      const root = new Rng(opts.seed);
      this.startEpoch(0, root.fork('order'));
      this.rng = root.fork('examples');
    }
  }

  private startEpoch(epoch: number, orderRng: Rng): void {
    const cap = this.opts.maxPerTask ?? 30000;
    this.epoch = epoch;
    this.epochStart = orderRng.getState();
    this.orderRng = orderRng;
    this.order = this.tasks.flatMap((task, t) => {
      const all = Array.from(task.instances.keys());
      const chosen = all.length > cap ? orderRng.sample(all, cap) : all;
      return chosen.map((i): [number, number] => [t, i]);
    });
    orderRng.shuffle(this.order);
    this.position = 0;
  }

  /** Episodes per epoch. */
  get epochLength(): number {
    return this.order.length;
  }

  next(): Episode {
    if (this.position >= this.order.length) this.startEpoch(this.epoch + 1, this.orderRng);
    const [taskIndex, targetIndex] = this.order[this.position++];
    const task = this.tasks[taskIndex];
    const mode = this.opts.pool ?? 'auto';
    const pool =
      mode === 'examples' || (mode === 'auto' && task.examples.length > 0)
        ? task.examples
        : task.instances.filter((_, i) => i !== targetIndex);
    const examples = this.rng.sample(pool, Math.min(this.opts.k, pool.length));
    return { taskIndex, task, examples, target: task.instances[targetIndex], targetIndex };
  }

  getState(): EpisodeSamplerState {
    return {
      kind: 'episodes',
      epoch: this.epoch,
      position: this.position,
      epochRng: this.epochStart,
      rng: this.rng.getState(),
    };
  }
}

/** Token lengths of the four consecutive segments of a compression sample. */
export interface SegmentLengths {
  a: number;
  b: number;
  c: number;
  d: number;
}

export interface CompressionSamplerOptions {
  seed: number;
  lengths: SegmentLengths;
  /** Characters of text encoded per token needed (default 8; a window too short is redrawn). */
  charsPerToken?: number;
  /** Draws per sample before giving up on a corpus too short for the lengths (default 100). */
  maxTries?: number;
}

export interface CompressionSample extends SegmentSample {
  /** Index of the document and character offset the window started at. */
  document: number;
  offset: number;
}

export interface CompressionSamplerState {
  kind: 'compression';
  position: number;
  rng: RngState;
}

/**
 * Compression hyperpretraining samples: a document drawn in proportion to its length, a window starting at a word
 * boundary, encoded, and its first a+b+c+d tokens cut into the consecutive segments A, B, C, D.
 */
export class CompressionSampler {
  private rng: Rng;
  private position = 0;
  private readonly weights: number[];

  constructor(
    readonly documents: readonly TextDocument[],
    private readonly encoder: TokenEncoder,
    private readonly opts: CompressionSamplerOptions,
    state?: CompressionSamplerState,
  ) {
    const { a, b, c, d } = opts.lengths;
    if (![a, b, c, d].every((n) => Number.isInteger(n) && n >= 1)) {
      fail(
        'BAD_OPTION',
        { file: 'CompressionSampler', field: 'lengths' },
        `expected positive integers, got ${JSON.stringify(opts.lengths)}`,
      );
    }
    this.weights = documents.map((doc) => doc.text.length);
    if (!this.weights.some((w) => w > 0))
      fail('NO_DOCUMENTS', { file: 'CompressionSampler', field: 'documents' }, 'no non-empty document');
    if (state) {
      if (state.kind !== 'compression')
        fail(
          'BAD_STATE',
          { file: 'CompressionSampler', field: 'kind' },
          `expected "compression", got ${JSON.stringify(state.kind)}`,
        );
      this.rng = Rng.fromState(state.rng);
      this.position = state.position;
    } else {
      this.rng = new Rng(opts.seed).fork('compression');
    }
  }

  next(): CompressionSample {
    const { a, b, c, d } = this.opts.lengths;
    const total = a + b + c + d;
    const window = total * (this.opts.charsPerToken ?? 8);
    const tries = this.opts.maxTries ?? 100;
    for (let attempt = 0; attempt < tries; attempt++) {
      const document = this.rng.categorical(this.weights);
      const text = this.documents[document].text;
      let offset = this.rng.int(Math.max(1, text.length - total));
      if (offset > 0) {
        const space = text.slice(offset).search(/\s\S/); // start at the next word
        if (space < 0) continue;
        offset += space + 1;
      }
      const ids = this.encoder.encode(text.slice(offset, offset + window), { bos: false, eos: false });
      if (ids.length < total) continue;
      this.position++;
      return {
        document,
        offset,
        a: ids.slice(0, a),
        b: ids.slice(a, a + b),
        c: ids.slice(a + b, a + b + c),
        d: ids.slice(a + b + c, total),
      };
    }
    return fail(
      'CORPUS_TOO_SHORT',
      { file: 'CompressionSampler', field: 'lengths' },
      `no window of ${total} tokens found in ${tries} draws`,
    );
  }

  getState(): CompressionSamplerState {
    return { kind: 'compression', position: this.position, rng: this.rng.getState() };
  }
}
