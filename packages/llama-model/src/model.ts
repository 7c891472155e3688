import * as tf from '@tensorflow/tfjs';
import { rmsNorm, supportsSyncRead, swiglu } from '@hyperllama/runtime';
import { ModelError } from './errors.js';
import { validateLlamaConfig, type LlamaConfig } from './config.js';
import { DenseLinear, findDenseBase, uniqueVariableName, type LinearModule } from './linear.js';
import { ropeCosSin, rotate } from './rope.js';
import { addPaddingMask, attend, causalMask } from './attention.js';

/**
 * A soft prefix: per layer keys and values [B, nKvHeads, P, headDim] placed in front of the sequence's own. Keys are
 * stored AFTER RoPE (rotated to the positions they were given) and are used as they are. B may be 1 for any batch.
 * `positionOffsets` (per row, or one for all) is where the positions after the prefix start: `generate`'s default
 * offset; `forward` takes explicit `positionIds` (its default continues right after the prefix and cache).
 * `@hyperllama/gist-attention`'s `Prefix` is one.
 */
export interface KVPrefix {
  readonly keys: readonly tf.Tensor4D[];
  readonly values: readonly tf.Tensor4D[];
  readonly length: number;
  readonly positionOffsets?: readonly number[];
}

/** Keys (after RoPE) and values of everything attended to so far, per layer [B, nKvHeads, length, headDim]. */
export interface KVCache {
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
  length: number;
}

/** A cache to start incremental decoding from (pass it as `forward({ cache })` to get one back). */
export function emptyCache(): KVCache {
  return { keys: [], values: [], length: 0 };
}

export function disposeCache(cache: KVCache): void {
  tf.dispose([...cache.keys, ...cache.values]);
}

export interface ForwardOptions {
  /** int32 [B, T]; ids ≥ vocabSize index `extraEmbeddings` rows. Give this or `inputsEmbeds`. */
  inputIds?: tf.Tensor2D;
  /** [B, T, D], used instead of `inputIds`. */
  inputsEmbeds?: tf.Tensor3D;
  /** Rows appended to the embedding table for ids ≥ vocabSize (e.g. trainable gist embeddings) [X, D]. */
  extraEmbeddings?: tf.Tensor2D;
  /** int32 [B, T]; default P..P+T-1, where P = prefix length + cache length. */
  positionIds?: tf.Tensor2D;
  /** 1/0 over [B, P+T]: 0 hides padding keys. */
  attentionMask?: tf.Tensor2D;
  /** Additive mask [B|1, 1, T, P+T] used instead of the causal one (the `attentionMask` padding is added to it). */
  mask?: tf.Tensor4D;
  /** Keys/values placed in front of the cache and the sequence. */
  prefix?: KVPrefix;
  /** Earlier keys/values (after any prefix); the result then holds the extended cache. */
  cache?: KVCache;
  /** Return each layer's keys (before and after RoPE) and values of this call's tokens. */
  returnKV?: boolean;
  /** Passed to every linear module (e.g. LoRA dropout). */
  training?: boolean;
  /** Return the final-normed hidden states [B, T, D] instead of logits (feed them to `lmLoss`). */
  returnHidden?: boolean;
  /** Compute logits for the last position only ([B, 1, V]): what generation needs. */
  lastLogitsOnly?: boolean;
}

export interface LayerKV {
  /** [B, nKv, T, hd] */
  keysPreRope: tf.Tensor4D;
  keys: tf.Tensor4D;
  values: tf.Tensor4D;
}

export interface ForwardResult {
  /** [B, T, V] (or [B, 1, V] with `lastLogitsOnly`); absent with `returnHidden`. */
  logits?: tf.Tensor3D;
  /** [B, T, D] after the final norm, with `returnHidden`. */
  hidden?: tf.Tensor3D;
  /** prefix + cache + this call's keys/values, when `cache` was given. */
  cache?: KVCache;
  kv?: LayerKV[];
}

/** Host-side weights in Hugging Face layout and names (`model.layers.0.self_attn.q_proj.weight` → [out, in]). */
export type HostWeights = Map<string, { shape: number[]; data: Float32Array }>;

const ATTN = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
const MLP = ['gate_proj', 'up_proj', 'down_proj'] as const;

/** HF tensor names and shapes of `LlamaForCausalLM` for a config. */
export function expectedWeightShapes(c: LlamaConfig): Map<string, number[]> {
  const D = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const F = c.intermediateSize;
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [c.vocabSize, D]]]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [D]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [q, D]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [kv, D]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [kv, D]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [D, q]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [D]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [F, D]);
    shapes.set(`${p}.mlp.up_proj.weight`, [F, D]);
    shapes.set(`${p}.mlp.down_proj.weight`, [D, F]);
  }
  shapes.set('model.norm.weight', [D]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, D]);
  return shapes;
}

/** Names that may appear in checkpoints and carry nothing we need (tied copies, RoPE buffers). */
function ignorable(name: string, c: LlamaConfig): boolean {
  return name.endsWith('.rotary_emb.inv_freq') || (c.tieWordEmbeddings && name === 'lm_head.weight');
}

/**
 * Check names and shapes; throws one {@link ModelError} listing every missing, unexpected and mis-shaped tensor.
 * `provided`: HF names supplied another way (linear modules given to the constructor), not expected in `weights`.
 */
export function checkWeights(
  config: LlamaConfig,
  weights: HostWeights,
  source: string,
  provided: ReadonlySet<string> = new Set(),
): void {
  const expected = expectedWeightShapes(config);
  for (const name of provided) expected.delete(name);
  const missing = [...expected.keys()].filter((n) => !weights.has(n));
  const unexpected = [...weights.keys()].filter((n) => !expected.has(n) && !ignorable(n, config));
  const misShaped: string[] = [];
  for (const [name, shape] of expected) {
    const w = weights.get(name);
    if (!w) continue;
    const size = shape.reduce((a, b) => a * b, 1);
    if (w.shape.join(',') !== shape.join(',') || w.data.length !== size) {
      misShaped.push(`${name}: expected [${shape}], got [${w.shape}]`);
    }
  }
  if (missing.length + unexpected.length + misShaped.length > 0) {
    const parts = [
      missing.length ? `missing: ${missing.join(', ')}` : '',
      unexpected.length ? `unexpected: ${unexpected.join(', ')}` : '',
      misShaped.length ? `mis-shaped: ${misShaped.join('; ')}` : '',
    ].filter(Boolean);
    throw new ModelError('BAD_WEIGHTS', `${source}: weights do not match the config (${parts.join(' | ')})`, {
      file: source,
      missing,
      unexpected,
      misShaped,
    });
  }
}

interface NormWeights {
  /** [D] */
  input: tf.Variable<tf.Rank.R1>;
  /** [D] */
  postAttention: tf.Variable<tf.Rank.R1>;
}

/** Hugging Face Llama (`LlamaForCausalLM`) on tfjs. Build one with `loadLlama`, `createLlama` or from host weights. */
export class LlamaModel {
  readonly config: LlamaConfig;
  /** [V, D] */
  readonly embedTokens: tf.Variable<tf.Rank.R2>;
  /** [D] */
  readonly finalNorm: tf.Variable<tf.Rank.R1>;
  private readonly norms: NormWeights[] = [];
  private readonly linears = new Map<string, LinearModule>();

  /**
   * Copies `weights` (HF names and [out, in] layout, checked against the config) into Variables. `linears` supplies
   * ready modules by module name (`layers.0.self_attn.q_proj`, `lm_head`), e.g. frozen weights in native memory;
   * their weights are then not expected in `weights`.
   */
  constructor(
    config: LlamaConfig,
    weights: HostWeights,
    opts: { trainable?: boolean; source?: string; linears?: ReadonlyMap<string, LinearModule> } = {},
  ) {
    this.config = validateLlamaConfig(config);
    const given = opts.linears ?? new Map<string, LinearModule>();
    const hfNameOf = (name: string) => (name === 'lm_head' ? 'lm_head.weight' : `model.${name}.weight`);
    checkWeights(config, weights, opts.source ?? 'weights', new Set([...given.keys()].map(hfNameOf)));
    const shapes = expectedWeightShapes(config);
    for (const [name, m] of given) {
      const shape = shapes.get(hfNameOf(name));
      if (!shape || m.outFeatures !== shape[0] || m.inFeatures !== shape[1])
        throw new ModelError(
          'BAD_MODULE',
          `module for "${name}": expected [${shape?.[1]} → ${shape?.[0]}], got [${m.inFeatures} → ${m.outFeatures}]`,
          { name, expected: shape, actual: [m.outFeatures, m.inFeatures] },
        );
    }
    const trainable = opts.trainable ?? true;
    const variable = <R extends tf.Rank>(name: string): tf.Variable<R> => {
      const w = weights.get(name)!;
      return tf.tidy(() =>
        tf.variable(tf.tensor(w.data, w.shape as number[]) as tf.Tensor, trainable, uniqueVariableName(name)),
      ) as tf.Variable<R>;
    };
    const dense = (name: string, hfName: string) => {
      const module = given.get(name);
      if (module) {
        this.linears.set(name, module);
        return;
      }
      const w = weights.get(hfName)!;
      const t = tf.tensor2d(w.data, w.shape as [number, number]);
      this.linears.set(name, DenseLinear.fromOutIn(t, { name: hfName, trainable }));
      t.dispose();
    };
    this.embedTokens = variable('model.embed_tokens.weight');
    for (let i = 0; i < config.numHiddenLayers; i++) {
      const p = `model.layers.${i}`;
      this.norms.push({
        input: variable(`${p}.input_layernorm.weight`),
        postAttention: variable(`${p}.post_attention_layernorm.weight`),
      });
      for (const m of ATTN) dense(`layers.${i}.self_attn.${m}`, `${p}.self_attn.${m}.weight`);
      for (const m of MLP) dense(`layers.${i}.mlp.${m}`, `${p}.mlp.${m}.weight`);
    }
    this.finalNorm = variable('model.norm.weight');
    if (!config.tieWordEmbeddings) dense('lm_head', 'lm_head.weight');
  }

  /** Names of every linear module, in layer order (`lm_head` last when untied). */
  linearNames(): string[] {
    return [...this.linears.keys()];
  }

  getLinear(name: string): LinearModule {
    const m = this.linears.get(name);
    if (!m)
      throw new ModelError('UNKNOWN_MODULE', `no linear module "${name}" (known: ${this.linearNames().join(', ')})`, {
        name,
      });
    return m;
  }

  /** Replace a linear module (e.g. by a LoRA wrapper). The old module is NOT disposed (a wrapper may keep it). */
  setLinear(name: string, m: LinearModule): void {
    const old = this.getLinear(name);
    if (m.inFeatures !== old.inFeatures || m.outFeatures !== old.outFeatures) {
      throw new ModelError(
        'BAD_MODULE',
        `module for "${name}": expected [${old.inFeatures} → ${old.outFeatures}], got [${m.inFeatures} → ${m.outFeatures}]`,
        {
          name,
          expected: [old.inFeatures, old.outFeatures],
          actual: [m.inFeatures, m.outFeatures],
        },
      );
    }
    this.linears.set(name, m);
  }

  /**
   * Base weights by HF name. Norms and embeddings have HF shapes; linear weights are the {@link DenseLinear}
   * Variables, PRE-TRANSPOSED [in, out] (found through wrappers' `base`; modules without one are left out).
   */
  namedWeights(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>([['model.embed_tokens.weight', this.embedTokens]]);
    for (let i = 0; i < this.config.numHiddenLayers; i++) {
      const p = `model.layers.${i}`;
      out.set(`${p}.input_layernorm.weight`, this.norms[i].input);
      for (const m of ATTN) this.addDense(out, `layers.${i}.self_attn.${m}`);
      out.set(`${p}.post_attention_layernorm.weight`, this.norms[i].postAttention);
      for (const m of MLP) this.addDense(out, `layers.${i}.mlp.${m}`);
    }
    out.set('model.norm.weight', this.finalNorm);
    if (!this.config.tieWordEmbeddings) this.addDense(out, 'lm_head');
    return out;
  }

  private addDense(out: Map<string, tf.Variable>, name: string): void {
    const dense = findDenseBase(this.getLinear(name));
    if (dense) out.set(name === 'lm_head' ? 'lm_head.weight' : `model.${name}.weight`, dense.weight);
  }

  /**
   * Token embeddings: inputIds int32 [B, T] → [B, T, D]. Ids ≥ vocabSize pick rows of `extraRows` [X, D]
   * (gradients flow to both tables).
   */
  embed(inputIds: tf.Tensor2D, extraRows?: tf.Tensor2D): tf.Tensor3D {
    const V = this.config.vocabSize;
    const limit = V + (extraRows ? extraRows.shape[0] : 0);
    // Validated where values can be read synchronously (not on webgpu, where gather clamps instead).
    const ids = supportsSyncRead() ? inputIds.dataSync() : [];
    for (let i = 0; i < ids.length; i++) {
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= limit) {
        throw new ModelError(
          'BAD_TOKEN_ID',
          `token id ${ids[i]} at flat index ${i} is outside [0, ${limit})` +
            (extraRows ? '' : ' (vocabSize; no extra rows given)'),
          {
            field: 'inputIds',
            expected: `[0, ${limit})`,
            actual: ids[i],
          },
        );
      }
    }
    return tf.tidy(() => {
      const table = extraRows ? tf.concat([this.embedTokens, extraRows], 0) : this.embedTokens; // [V+X, D]
      return tf.gather(table, tf.cast(inputIds, 'int32')) as unknown as tf.Tensor3D; // [B, T, D]
    });
  }

  /** The LM head: hidden [N, D] (after the final norm) → logits [N, V]. */
  logitsFromHidden(hidden: tf.Tensor2D, opts: { training?: boolean } = {}): tf.Tensor2D {
    if (this.config.tieWordEmbeddings) return tf.matMul(hidden, this.embedTokens, false, true);
    return this.getLinear('lm_head').apply(hidden, opts);
  }

  forward(o: ForwardOptions): ForwardResult {
    const c = this.config;
    if ((o.inputIds === undefined) === (o.inputsEmbeds === undefined)) {
      throw new ModelError('BAD_ARGUMENT', 'forward: give exactly one of inputIds and inputsEmbeds');
    }
    const past = this.checkPast(o.prefix, o.cache);
    if (o.inputIds && o.inputIds.rank !== 2) this.badShape('inputIds', ['B', 'T'], o.inputIds.shape);
    if (o.inputsEmbeds && (o.inputsEmbeds.rank !== 3 || o.inputsEmbeds.shape[2] !== c.hiddenSize)) {
      this.badShape('inputsEmbeds', ['B', 'T', c.hiddenSize], o.inputsEmbeds.shape);
    }
    const [B, T] = (o.inputIds ?? o.inputsEmbeds!).shape;
    const D = c.hiddenSize;
    const P = past.length;
    const S = P + T;
    if (past.batch > 1 && past.batch !== B) this.badShape('prefix/cache batch', [B], [past.batch]);
    if (o.positionIds && (o.positionIds.shape[0] !== B || o.positionIds.shape[1] !== T))
      this.badShape('positionIds', [B, T], o.positionIds.shape);
    if (o.attentionMask && (o.attentionMask.shape[0] !== B || o.attentionMask.shape[1] !== S))
      this.badShape('attentionMask', [B, S], o.attentionMask.shape);
    if (
      o.mask &&
      (o.mask.rank !== 4 ||
        ![1, B].includes(o.mask.shape[0]) ||
        o.mask.shape[1] !== 1 ||
        o.mask.shape[2] !== T ||
        o.mask.shape[3] !== S)
    ) {
      this.badShape('mask', [B, 1, T, S], o.mask.shape);
    }
    const embeds = o.inputsEmbeds ?? this.embed(o.inputIds!, o.extraEmbeddings); // [B, T, D]

    const result = tf.tidy(() => {
      const positionIds = o.positionIds ?? tf.tile(tf.reshape(tf.range(P, S, 1, 'int32'), [1, T]), [B, 1]);
      const mask = o.mask
        ? o.attentionMask
          ? addPaddingMask(o.mask, o.attentionMask)
          : o.mask
        : causalMask(T, P, o.attentionMask);
      // [B, 1, T, hd]; dynamic NTK scaling depends on the call's length (S when the positions are the default ones).
      const { cos, sin } = ropeCosSin(positionIds as tf.Tensor2D, c.ropeTheta, c.headDim, {
        scaling: c.ropeScaling,
        maxPositionEmbeddings: c.maxPositionEmbeddings,
        seqLen: o.positionIds ? undefined : S,
      });
      // [B·T, heads·hd] → [B, heads, T, hd]; one token (decoding) needs no transpose, its layout is the same.
      const toHeads = (x: tf.Tensor2D, heads: number) =>
        (T === 1
          ? tf.reshape(x, [B, heads, 1, c.headDim])
          : tf.transpose(tf.reshape(x, [B, T, heads, c.headDim]), [0, 2, 1, 3])) as tf.Tensor4D;
      // prefix, cache, then this call's keys/values along the sequence axis; batch-1 prefixes are tiled to B.
      const withPast = (mine: tf.Tensor4D, earlier: tf.Tensor4D[]) => {
        if (earlier.length === 0) return mine;
        const tiled = earlier.map((t) => (t.shape[0] === B ? t : tf.tile(t, [B, 1, 1, 1])));
        return tf.concat([...tiled, mine], 2) as tf.Tensor4D;
      };
      const lin = (name: string, x: tf.Tensor2D) => this.linears.get(name)!.apply(x, { training: o.training });

      let x = tf.reshape(embeds, [B * T, D]) as tf.Tensor2D; // [N, D]
      const newKeys: tf.Tensor4D[] = [];
      const newValues: tf.Tensor4D[] = [];
      const kv: LayerKV[] = [];
      for (let i = 0; i < c.numHiddenLayers; i++) {
        const a = `layers.${i}.self_attn.`;
        const h = rmsNorm(x, this.norms[i].input, c.rmsNormEps);
        const q = rotate(toHeads(lin(a + 'q_proj', h), c.numAttentionHeads), cos, sin); // [B, H, T, hd]
        const kPre = toHeads(lin(a + 'k_proj', h), c.numKeyValueHeads); // [B, nKv, T, hd]
        const k = rotate(kPre, cos, sin);
        const v = toHeads(lin(a + 'v_proj', h), c.numKeyValueHeads);
        if (o.returnKV) kv.push({ keysPreRope: kPre, keys: k, values: v });
        const keys = withPast(
          k,
          past.parts.map((p) => p.keys[i]),
        ); // [B, nKv, S, hd]
        const values = withPast(
          v,
          past.parts.map((p) => p.values[i]),
        );
        newKeys.push(keys);
        newValues.push(values);
        x = tf.add(x, lin(a + 'o_proj', attend(q, keys, values, mask)));

        const m = `layers.${i}.mlp.`;
        const h2 = rmsNorm(x, this.norms[i].postAttention, c.rmsNormEps);
        const gated = swiglu(lin(m + 'gate_proj', h2), lin(m + 'up_proj', h2)); // silu(gate) · up [N, F]
        x = tf.add(x, lin(m + 'down_proj', gated));
      }
      const normed = rmsNorm(x, this.finalNorm, c.rmsNormEps); // [N, D]
      const out: ForwardResult = {};
      if (o.returnHidden) out.hidden = tf.reshape(normed, [B, T, D]);
      else if (o.lastLogitsOnly) {
        const last = tf.reshape(tf.slice(tf.reshape(normed, [B, T, D]), [0, T - 1, 0], [B, 1, D]), [
          B,
          D,
        ]) as tf.Tensor2D;
        out.logits = tf.reshape(this.logitsFromHidden(last, o), [B, 1, c.vocabSize]);
      } else out.logits = tf.reshape(this.logitsFromHidden(normed, o), [B, T, c.vocabSize]);
      if (o.cache) {
        // Without earlier keys the cache would hold the very tensors of `kv`: clone so each can be disposed alone.
        const own = (t: tf.Tensor4D) => (o.returnKV && P === 0 ? (tf.clone(t) as tf.Tensor4D) : t);
        out.cache = { keys: newKeys.map(own), values: newValues.map(own), length: S };
      }
      if (o.returnKV) out.kv = kv;
      return out as unknown as tf.TensorContainer;
    }) as unknown as ForwardResult;
    if (o.inputsEmbeds === undefined) embeds.dispose();
    return result;
  }

  /** Checks the prefix and cache against the config; returns them (non-empty ones, prefix first), their total length and batch. */
  private checkPast(prefix?: KVPrefix, cache?: KVCache): { parts: KVPrefix[]; length: number; batch: number } {
    const c = this.config;
    const parts: KVPrefix[] = [];
    let batch = 1;
    for (const [what, p] of [
      ['prefix', prefix],
      ['cache', cache],
    ] as const) {
      if (!p || p.length === 0) continue;
      if (p.keys.length !== c.numHiddenLayers || p.values.length !== c.numHiddenLayers) {
        this.badShape(`${what} layers`, [c.numHiddenLayers], [p.keys.length, p.values.length]);
      }
      for (const t of [...p.keys, ...p.values]) {
        const [b, h, len, hd] = t.shape;
        if (t.rank !== 4 || h !== c.numKeyValueHeads || len !== p.length || hd !== c.headDim) {
          this.badShape(`${what} keys/values`, ['B', c.numKeyValueHeads, p.length, c.headDim], t.shape);
        }
        if (b !== 1 && batch !== 1 && b !== batch) this.badShape(`${what} batch`, [batch], [b]);
        batch = Math.max(batch, b);
      }
      parts.push(p);
    }
    return { parts, length: parts.reduce((n, p) => n + p.length, 0), batch };
  }

  private badShape(what: string, expected: unknown[], actual: unknown[]): never {
    throw new ModelError(
      'BAD_SHAPE',
      `forward: ${what}: expected shape [${expected.join(', ')}], got [${actual.join(', ')}]`,
      {
        field: what,
        expected,
        actual,
      },
    );
  }

  dispose(): void {
    this.embedTokens.dispose();
    this.finalNorm.dispose();
    for (const n of this.norms) tf.dispose([n.input, n.postAttention]);
    for (const m of this.linears.values()) m.dispose();
    this.linears.clear();
  }
}
