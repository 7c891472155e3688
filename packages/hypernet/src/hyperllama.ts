import * as tf from '@tensorflow/tfjs';
import type { HyperBatch, HyperInputBatch, LmBatch } from '@hyperllama/datasets';
import {
  downstreamMask,
  downstreamPositionIds,
  extractGistPrefix,
  gistVisibility,
  toAdditiveMask,
  positionIdsFromMask,
  positionTensor,
  Prefix,
  type PositionScheme,
} from '@hyperllama/gist-attention';
import { lmLoss, type LlamaModel } from '@hyperllama/llama-model';
import {
  hfModuleName,
  injectLora,
  matchesTarget,
  namedLoraParameters,
  setActiveAdapters,
  withActiveAdapters,
  type LoraConfig,
} from '@hyperllama/lora';
import { Rng } from '@hyperllama/runtime';
import { int2d } from './batch.js';
import { bad, requireSyncRead } from './errors.js';
import { fromPretrained, type FromPretrainedOptions, type PretrainedHyperLlama } from './pretrained.js';

/** LoRA settings of one adapter (PEFT's names in `@hyperllama/lora`'s `LoraConfig`), without its name. */
export type AdapterOptions = Omit<LoraConfig, 'name' | 'rng'>;

export interface HyperLlamaOptions {
  /** Number of gist tokens k (the prefix length). */
  k: number;
  /** Position scheme of the prefix (default `restart`). */
  scheme?: PositionScheme;
  /** The hypernetwork's LoRA (default r 8, alpha 16, every linear but lm_head). */
  hyper?: AdapterOptions;
  /** Optional LoRA used in the downstream pass ("downstream adaptation"); absent = frozen downstream model. */
  downstream?: AdapterOptions;
  /** Seed of the gist initialisation and the adapters' initialisation (default 0). */
  seed?: number;
  /** Gist embedding rows [k, D] to start from instead of the default initialisation (e.g. from a checkpoint). */
  gistEmbeddings?: Float32Array;
  /** What the downstream tokens may see (attention-mask ablations; default `gists`). */
  downstreamView?: DownstreamView;
}

/**
 * What the downstream tokens attend to: `gists` (HyperLlama: the k gists' keys and values only);
 * `examples-and-gists` (positive control, no compression: the keys and values of the whole hyper input, examples and
 * gists, at the positions the hyper pass gave them; downstream positions continue after the last gist);
 * `nothing` (negative control: the gist columns are hidden, so the downstream pass reads its own tokens only).
 */
export type DownstreamView = 'gists' | 'examples-and-gists' | 'nothing';

export const DOWNSTREAM_VIEWS: readonly DownstreamView[] = ['gists', 'examples-and-gists', 'nothing'];

export interface EncodeOptions {
  training?: boolean;
  /**
   * Per row, the first column of the (padded) hyper input that the gists may attend to, besides the row's first real
   * token (BOS): the gists then see only the examples from there on ("gists that see only the last m examples").
   * Earlier tokens still reach the gists indirectly through the later tokens that attended to them. Default: all.
   */
  gistViewFrom?: readonly number[];
}

export const DEFAULT_HYPER_LORA: AdapterOptions = { r: 8, alpha: 16, dropout: 0, targetModules: 'all-linear' };

/**
 * HyperLlama (Phang 2024): one base Llama used twice. The hyper pass runs it with the `hyper` LoRA on
 * `[BOS] examples… <GIST_0..k-1>` under a gist mask and keeps the gists' per-layer keys and values as a prefix; the
 * downstream pass runs the same base weights with the hyper adapter off (and the `downstream` adapter on, when
 * there is one) behind that prefix. Trainable: the hyper LoRA, the k gist embedding rows and the optional downstream
 * LoRA; the base weights are frozen (`injectLora` freezes them).
 *
 * Gist embeddings start at the mean of the vocabulary's embedding rows plus Gaussian noise whose standard deviation
 * is 0.1 × that of the vocabulary's entries (seeded), so each gist starts as an "average token", distinct from the others.
 */
export class HyperLlama {
  readonly k: number;
  readonly scheme: PositionScheme;
  /** Token ids of the gists: vocabSize .. vocabSize + k - 1 (they index {@link gistEmbeddings}). */
  readonly gistIds: readonly number[];
  /** [k, D] */
  readonly gistEmbeddings: tf.Variable<tf.Rank.R2>;
  readonly hasDownstreamAdapter: boolean;
  readonly hyperAdapter: Required<Pick<AdapterOptions, 'r' | 'alpha' | 'dropout'>> & AdapterOptions;
  readonly downstreamAdapter: AdapterOptions | undefined;
  readonly downstreamView: DownstreamView;

  /**
   * Load a checkpoint with its base model and tokenizer, resolved from its own `hypernet_config.json` (see
   * {@link fromPretrained}): `HyperLlama.fromPretrained('ckpt/')` → `{ hyperllama, model, tokenizer, config, sources }`.
   */
  static fromPretrained(dir: string, opts: FromPretrainedOptions = {}): PretrainedHyperLlama {
    return fromPretrained(dir, opts);
  }

  /** Injects the adapters into `model` (which it then owns together with the caller) and creates the gist rows. */
  constructor(
    readonly model: LlamaModel,
    opts: HyperLlamaOptions,
  ) {
    const { k } = opts;
    if (!Number.isInteger(k) || k < 1) bad('HYPERNET_BAD_OPTION', 'k', 'a positive integer', k);
    this.k = k;
    this.scheme = opts.scheme ?? 'restart';
    if (this.scheme !== 'restart' && this.scheme !== 'continue')
      bad('HYPERNET_BAD_OPTION', 'scheme', '"restart" or "continue"', this.scheme);
    this.downstreamView = opts.downstreamView ?? 'gists';
    if (!DOWNSTREAM_VIEWS.includes(this.downstreamView))
      bad(
        'HYPERNET_BAD_OPTION',
        'downstreamView',
        DOWNSTREAM_VIEWS.map((v) => `"${v}"`).join(', '),
        this.downstreamView,
      );
    const V = model.config.vocabSize;
    const D = model.config.hiddenSize;
    this.gistIds = Array.from({ length: k }, (_, i) => V + i);
    const seed = opts.seed ?? 0;
    const rng = new Rng(seed);
    const hyper = { ...DEFAULT_HYPER_LORA, ...opts.hyper };
    this.hyperAdapter = { r: hyper.r ?? 8, alpha: hyper.alpha ?? 16, dropout: hyper.dropout ?? 0, ...hyper };
    injectLora(model, {
      ...this.hyperAdapter,
      targetModules: prefixRelevant(model, hyper.targetModules ?? 'all-linear'),
      name: 'hyper',
      rng: rng.fork('hyper-lora'),
    });
    this.downstreamAdapter = opts.downstream;
    this.hasDownstreamAdapter = opts.downstream !== undefined;
    if (opts.downstream)
      injectLora(model, { ...opts.downstream, name: 'downstream', rng: rng.fork('downstream-lora') });
    // `model` is the downstream model between hyper passes (which switch the hyper adapter on for themselves), so
    // code that uses it directly, e.g. `generate(model, …, { prefix })`, must not run through the hyper adapter.
    setActiveAdapters(model, this.hasDownstreamAdapter ? ['downstream'] : []);

    let rows = opts.gistEmbeddings;
    if (rows && rows.length !== k * D)
      bad('HYPERNET_BAD_OPTION', 'gistEmbeddings', `${k * D} values ([${k}, ${D}])`, rows.length);
    rows ??= initialGistRows(model, k, rng.fork('gist-init'));
    this.gistEmbeddings = tf.variable(tf.tensor2d(rows, [k, D]), true, `gist_embeddings#${gistCounter++}`);
  }

  /**
   * The trainable variables by stable names: `gist_embeddings`, `hyper.<linear>.lora_{A,B}` and
   * `downstream.<linear>.lora_{A,B}`.
   */
  trainableVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = { gist_embeddings: this.gistEmbeddings };
    for (const adapter of this.hasDownstreamAdapter ? ['hyper', 'downstream'] : ['hyper']) {
      for (const [name, v] of namedLoraParameters(this.model, adapter)) out[`${adapter}.${name}`] = v;
    }
    return out;
  }

  /**
   * The hyper pass: `hyper.inputIds` [B, H] (`[BOS] examples… <gists>`, left-padded, from `collateHyperLlama` or
   * `collateCompression`) → a prefix [B, nKvHeads, k, headDim] per layer, with per-row downstream position offsets
   * (under the `examples-and-gists` view: [B, nKvHeads, H, headDim] with the hyper input's padding as its
   * `attentionMask`). Differentiable; the caller disposes the prefix (outside a tidy).
   */
  encode(hyper: HyperInputBatch, opts: EncodeOptions = {}): Prefix {
    const rows = hyper.gistPositions;
    rows.forEach((row, b) => {
      row.forEach((t, j) => {
        if (hyper.inputIds[b]?.[t] !== this.gistIds[j])
          bad('HYPERNET_BAD_BATCH', `hyper.inputIds[${b}][${t}]`, `gist id ${this.gistIds[j]}`, hyper.inputIds[b]?.[t]);
      });
    });
    const c = this.model.config;
    const positions = positionIdsFromMask(hyper.attentionMask); // [B][H]
    const whole = this.downstreamView === 'examples-and-gists';
    const H = hyper.inputIds[0].length;
    const kept = whole ? hyper.inputIds.map(() => Array.from({ length: H }, (_, t) => t)) : rows; // [B][P] columns that become the prefix
    const scheme = whole ? 'continue' : this.scheme;
    const prefix = withActiveAdapters(this.model, ['hyper'], () => {
      const { keys, values, positionOffsets } = tf.tidy(() => {
        const out = this.model.forward({
          inputIds: int2d(hyper.inputIds, 'hyper.inputIds'),
          extraEmbeddings: this.gistEmbeddings,
          mask: this.hyperMask(hyper, opts.gistViewFrom),
          positionIds: positionTensor(positions),
          returnKV: true,
          returnHidden: true,
          training: opts.training,
        });
        const p = extractGistPrefix(out.kv!, kept, scheme, {
          ropeTheta: c.ropeTheta,
          headDim: c.headDim,
          ropeScaling: c.ropeScaling,
          maxPositionEmbeddings: c.maxPositionEmbeddings,
          hyperPositions: positions,
        });
        return { keys: p.keys, values: p.values, positionOffsets: p.positionOffsets } as unknown as tf.TensorContainer;
      }) as unknown as Pick<Prefix, 'keys' | 'values' | 'positionOffsets'>;
      return new Prefix({ keys, values, length: kept[0].length, scheme, positionOffsets });
    });
    if (whole) return prefix.with({ attentionMask: hyper.attentionMask });
    if (this.downstreamView === 'nothing') return prefix.with({ attentionMask: rows.map((r) => r.map(() => 0)) });
    return prefix;
  }

  /** The hyper pass's additive mask [B, 1, H, H]: the gist mask, with the gists' view cut at `gistViewFrom` when given. */
  private hyperMask(hyper: HyperInputBatch, gistViewFrom?: readonly number[]): tf.Tensor4D {
    const v = gistVisibility({ inputIds: hyper.inputIds, gistIds: this.gistIds, attentionMask: hyper.attentionMask });
    if (gistViewFrom === undefined) return toAdditiveMask(v);
    const [B, , H, W] = v.shape;
    if (gistViewFrom.length !== B)
      bad('HYPERNET_BAD_BATCH', 'gistViewFrom', `${B} entries (one per row)`, gistViewFrom.length);
    hyper.gistPositions.forEach((gists, b) => {
      const from = gistViewFrom[b];
      const first = hyper.attentionMask[b].indexOf(1); // the row's BOS stays visible
      if (!Number.isInteger(from) || from <= first || from > gists[0])
        bad('HYPERNET_BAD_BATCH', `gistViewFrom[${b}]`, `a column in ${first + 1}..${gists[0]}`, from);
      for (const i of gists) v.data.fill(0, (b * H + i) * W + first + 1, (b * H + i) * W + from);
    });
    return toAdditiveMask(v);
  }

  /** The downstream pass behind `prefix`: hidden states [B, T, D] (feed them to `lmLoss`). Hyper adapter off. */
  downstreamHidden(
    batch: Pick<LmBatch, 'inputIds' | 'attentionMask'>,
    prefix: Prefix,
    opts: { training?: boolean } = {},
  ): tf.Tensor3D {
    return withActiveAdapters(this.model, this.hasDownstreamAdapter ? ['downstream'] : [], () =>
      prefixedHidden(this.model, batch, prefix, opts),
    );
  }

  /** Multi-task HyperLlama and compression hyperpretraining loss: hyper pass → prefix → downstream LM loss on the labels. */
  loss(batch: HyperBatch, opts: EncodeOptions = {}): tf.Scalar {
    return tf.tidy(() => {
      const prefix = this.encode(batch.hyper, opts);
      const hidden = this.downstreamHidden(batch.downstream, prefix, opts);
      return lmLoss(this.model, hidden, int2d(batch.downstream.labels, 'downstream.labels'), {
        training: opts.training,
      });
    });
  }

  /**
   * The swap control of {@link loss}: row b's downstream pass runs behind the prefix computed from row (b+1) mod B's
   * hyper input. Equal to `loss` when the prefix does not depend on what the hypernetwork reads; the gap
   * `swappedLoss − loss` measures how much of the sample's own input the prefix carries.
   */
  swappedLoss(batch: HyperBatch): tf.Scalar {
    const B = batch.hyper.inputIds.length;
    if (B < 2) bad('HYPERNET_BAD_BATCH', 'batch', 'at least 2 rows to swap prefixes between', B);
    const roll = <T>(xs: readonly T[]): T[] => [...xs.slice(1), xs[0]];
    return tf.tidy(() => {
      const own = this.encode(batch.hyper);
      const rollTensor = <T extends tf.Tensor>(t: T): T =>
        tf.concat([tf.slice(t, [1], [B - 1]), tf.slice(t, [0], [1])], 0) as T;
      const other = own.with({
        keys: own.keys.map(rollTensor),
        values: own.values.map(rollTensor),
        ...(own.positionOffsets.length === B ? { positionOffsets: roll(own.positionOffsets) } : {}),
        ...(own.attentionMask && own.attentionMask.length === B ? { attentionMask: roll(own.attentionMask) } : {}),
      });
      const hidden = this.downstreamHidden(batch.downstream, other);
      return lmLoss(this.model, hidden, int2d(batch.downstream.labels, 'downstream.labels'));
    });
  }

  dispose(): void {
    this.gistEmbeddings.dispose();
  }
}

let gistCounter = 0;

/**
 * The hyper pass keeps only the gists' keys and values, so the last layer's q_proj, o_proj and MLP (and lm_head)
 * cannot change the prefix: the hyper LoRA leaves them out and every hyper parameter receives a gradient.
 * Returns the selected linears' full HF names (PEFT's explicit `target_modules` list).
 */
export function prefixRelevant(model: LlamaModel, targets: NonNullable<AdapterOptions['targetModules']>): string[] {
  const last = `layers.${model.config.numHiddenLayers - 1}.`;
  const useless = (n: string) => n === 'lm_head' || (n.startsWith(last) && !/self_attn\.[kv]_proj$/.test(n));
  const names = model.linearNames().filter((n) => matchesTarget(n, targets) && !useless(n));
  if (names.length === 0)
    bad('HYPERNET_BAD_OPTION', 'hyper.targetModules', 'at least one linear that can change the prefix', targets);
  return names.map(hfModuleName);
}

/** Mean of the vocabulary rows [D] plus N(0, (0.1·σ)²) per entry, σ the std of all vocabulary entries. [k·D] */
export function initialGistRows(model: LlamaModel, k: number, rng: Rng): Float32Array {
  requireSyncRead('a new HyperLlama (its gist rows start at the vocabulary statistics)');
  const { mean, std } = tf.tidy(() => {
    const m = tf.mean(model.embedTokens, 0); // [D]
    const s = tf.sqrt(tf.mean(tf.square(tf.sub(model.embedTokens, tf.mean(model.embedTokens)))));
    return { mean: m.dataSync() as Float32Array, std: s.dataSync()[0] };
  });
  const D = mean.length;
  const noise = rng.normalArray(k * D, 0, 0.1 * std);
  return noise.map((n, i) => mean[i % D] + n);
}

/**
 * A causal pass over right-padded rows behind a prefix (any adapters the caller made active): mask = the prefix
 * columns its `attentionMask` allows (default all) + causal + padding; positions start at each row's
 * `positionOffsets` (default the prefix length).
 * Returns hidden states [B, T, D].
 */
export function prefixedHidden(
  model: LlamaModel,
  batch: Pick<LmBatch, 'inputIds' | 'attentionMask'>,
  prefix: Prefix,
  opts: { training?: boolean } = {},
): tf.Tensor3D {
  const B = batch.inputIds.length;
  const offsets = prefix.positionOffsets;
  if (offsets.length !== B && offsets.length !== 1)
    bad('HYPERNET_BAD_BATCH', 'prefix.positionOffsets', `1 or ${B} entries`, offsets.length);
  const perRow = offsets.length === B ? offsets : Array<number>(B).fill(offsets[0]);
  const visible = prefix.attentionMask;
  if (visible && visible.length !== B && visible.length !== 1)
    bad('HYPERNET_BAD_BATCH', 'prefix.attentionMask', `1 or ${B} rows`, visible.length);
  const prefixMask = visible && (visible.length === B ? visible : Array.from({ length: B }, () => visible[0]));
  return tf.tidy(
    () =>
      model.forward({
        inputIds: int2d(batch.inputIds, 'inputIds'),
        prefix,
        mask: downstreamMask({ prefixLength: prefix.length, attentionMask: batch.attentionMask, prefixMask }),
        positionIds: downstreamPositionIds(perRow, { attentionMask: batch.attentionMask }),
        returnHidden: true,
        training: opts.training,
      }).hidden!,
  );
}

/** LM loss of a padded batch with no prefix (full-attention ICL, zero-shot, plain language modelling). */
export function plainLoss(model: LlamaModel, batch: LmBatch, opts: { training?: boolean } = {}): tf.Scalar {
  return tf.tidy(() => {
    const hidden = model.forward({
      inputIds: int2d(batch.inputIds, 'inputIds'),
      attentionMask: int2d(batch.attentionMask, 'attentionMask'),
      returnHidden: true,
      training: opts.training,
    }).hidden!;
    return lmLoss(model, hidden, int2d(batch.labels, 'labels'), { training: opts.training });
  });
}

/** LM loss of a padded batch behind a prefix (shared prefix, prefix tuning). */
export function prefixLoss(
  model: LlamaModel,
  batch: LmBatch,
  prefix: Prefix,
  opts: { training?: boolean } = {},
): tf.Scalar {
  return tf.tidy(() =>
    lmLoss(model, prefixedHidden(model, batch, prefix, opts), int2d(batch.labels, 'labels'), {
      training: opts.training,
    }),
  );
}
