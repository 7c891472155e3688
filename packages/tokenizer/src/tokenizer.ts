import { Tokenizer as Engine } from '@huggingface/tokenizers';
import { addedToken, type AddedTokenJson, type TokenizerConfigJson, type TokenizerJson } from './convert.js';
import { TokenizerError } from './errors.js';
import { detectSentencePieceLayout, encodeWithLayout, type SentencePieceLayout } from './fast-path.js';

export interface EncodeOptions {
  /** Prepend the BOS id (default false). */
  bos?: boolean;
  /** Append the EOS id (default false). */
  eos?: boolean;
  /**
   * Recognise special tokens (`<s>`, `</s>`, `<unk>`, `<GIST_i>`, ...) written literally in the text and emit their ids
   * (default false). By default text is only text, as in SentencePiece: `"<GIST_0>"` in a document is encoded as the
   * characters `<`, `G`, ... and never becomes a gist id; collation code places special ids explicitly. With
   * `parseSpecial`, each stretch of text between special tokens is encoded on its own (its own `▁` prefix), as
   * Hugging Face's Llama tokenizer does.
   */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, UNK, PAD, gist tokens) from the output (default false). */
  skipSpecial?: boolean;
}

export interface BatchEncodeOptions extends EncodeOptions {
  /** Where padding goes (default 'right'; use 'left' for generation). */
  padSide?: 'left' | 'right';
  /** Longest allowed row. Longer rows throw unless `truncation` is set. */
  maxLength?: number;
  /**
   * Cut rows longer than `maxLength`: `true` or 'right' keeps the beginning, 'left' keeps the end. BOS and EOS, when
   * requested, are kept and the text ids are cut (default false).
   */
  truncation?: boolean | 'left' | 'right';
  /** Pad every row to `maxLength` instead of to the longest row (default false). */
  padToMaxLength?: boolean;
}

/** Rectangular batch: `ids[b]` and `attentionMask[b]` all have the same length; padding has mask 0 and id `padId`. */
export interface BatchEncoding {
  ids: number[][];
  attentionMask: number[][];
}

const GIST_TOKEN = /^<GIST_(\d+)>$/;

/** The text of the i-th gist token. */
export function gistToken(i: number): string {
  return `<GIST_${i}>`;
}

/**
 * A tokenizer running on `@huggingface/tokenizers`, built from a Hugging Face `tokenizer.json` and its
 * `tokenizer_config.json` (use `loadTokenizer` for files). Ids are plain `number[]`.
 *
 * - `vocabSize` is the size of the model vocabulary (what the base model's embedding covers); tokens added beyond it,
 *   such as gist tokens, have ids `vocabSize ... numTokens - 1`.
 * - `padId` is the `pad_token` of the config when it names a token; otherwise it falls back to the unknown token
 *   (id 0 for Llama, the convention of Llama fine-tuning code) or, without one, to EOS. `hasPadToken` tells which.
 *   Padding is always masked out by `attentionMask`, so the choice does not change results.
 */
export class Tokenizer {
  readonly vocabSize: number;
  readonly numTokens: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number | undefined;
  readonly padId: number;
  readonly hasPadToken: boolean;
  /** Ids of `<GIST_0>` ... `<GIST_{k-1}>`, in order (empty without gist tokens). */
  readonly gistIds: readonly number[];
  /** Where this tokenizer came from (a file path, or a description), used in error messages. */
  readonly source: string;

  private readonly engine: Engine;
  private plainEngine: Engine | undefined;
  private readonly layout: SentencePieceLayout | null;
  private readonly specialIds: ReadonlySet<number>;
  /** Splits text around special tokens (longest first); null when there are none. */
  private readonly specialSplitter: RegExp | null;
  private readonly specialIdByContent: ReadonlyMap<string, number>;
  private readonly cleanUpSpaces: boolean;

  /** The objects are kept, not copied: do not change them afterwards. */
  constructor(
    private readonly json: TokenizerJson,
    private readonly config: TokenizerConfigJson = {},
    source = 'tokenizer.json',
  ) {
    this.source = source;
    validateTokenizerJson(json, source);
    try {
      this.engine = new Engine(json, config);
    } catch (e) {
      throw new TokenizerError(
        'TOKENIZER_BAD_JSON',
        `${source}: @huggingface/tokenizers rejected it: ${(e as Error).message}`,
        {
          file: source,
        },
        { cause: e },
      );
    }
    keepByteOrderMarks(this.engine.decoder);
    this.vocabSize = modelVocabSize(json);
    this.numTokens = json.added_tokens.reduce((n, t) => Math.max(n, t.id + 1), this.vocabSize);

    const idOf = (field: string, fallback?: string): number | undefined => {
      const name = tokenName(config[field]) ?? fallback;
      return name === undefined ? undefined : this.engine.token_to_id(name);
    };
    const required = (field: string, fallback: string): number => {
      const id = idOf(field, fallback);
      if (id === undefined) {
        throw new TokenizerError(
          'TOKENIZER_NO_SPECIAL',
          `${source}: no ${field} (tokenizer_config.json ${field}, or "${fallback}" in the vocabulary)`,
          {
            file: source,
            field,
          },
        );
      }
      return id;
    };
    this.bosId = required('bos_token', '<s>');
    this.eosId = required('eos_token', '</s>');
    this.unkId = idOf('unk_token', typeof json.model.unk_token === 'string' ? json.model.unk_token : undefined);
    const pad = idOf('pad_token');
    this.hasPadToken = pad !== undefined;
    this.padId = pad ?? this.unkId ?? this.eosId;
    this.gistIds = gistIdsOf(json.added_tokens, source);

    const specials = json.added_tokens.filter((t) => t.special);
    this.specialIds = new Set([
      ...specials.map((t) => t.id),
      this.bosId,
      this.eosId,
      this.padId,
      ...(this.unkId === undefined ? [] : [this.unkId]),
    ]);
    this.specialIdByContent = new Map(specials.map((t) => [t.content, t.id]));
    const contents = specials.map((t) => t.content).sort((a, b) => b.length - a.length);
    this.specialSplitter = contents.length ? new RegExp(`(${contents.map(escapeRegExp).join('|')})`) : null;
    this.layout = detectSentencePieceLayout(json);
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;
  }

  /** Token ids of `text` (see {@link EncodeOptions} for BOS/EOS and special tokens in the text). */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') {
      throw new TokenizerError('TOKENIZER_BAD_INPUT', `encode: expected a string, got ${typeof text}`, {
        actual: typeof text,
      });
    }
    const ids = opts.parseSpecial ? this.encodeParsingSpecial(text) : this.encodePlain(text);
    if (opts.bos) ids.unshift(this.bosId);
    if (opts.eos) ids.push(this.eosId);
    return ids;
  }

  /** The text of `ids`. Throws on ids that are not integers in [0, numTokens). */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (let i = 0; i < ids.length; i++) {
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= this.numTokens) {
        throw new TokenizerError(
          'TOKENIZER_BAD_ID',
          `decode: ids[${i}] = ${ids[i]} is not an id in [0, ${this.numTokens})`,
          {
            field: `ids[${i}]`,
            actual: ids[i],
          },
        );
      }
    }
    const kept = opts.skipSpecial ? ids.filter((id) => !this.specialIds.has(id)) : [...ids];
    if (kept.length === 0) return '';
    return this.engine.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /** Encodes each text and pads them into rectangular `ids` and `attentionMask` (see {@link BatchEncodeOptions}). */
  encodeBatch(texts: readonly string[], opts: BatchEncodeOptions = {}): BatchEncoding {
    const { padSide = 'right', maxLength, truncation = false, padToMaxLength = false } = opts;
    if (padSide !== 'left' && padSide !== 'right') badOption('padSide', "'left' or 'right'", padSide);
    if (maxLength !== undefined && !(Number.isInteger(maxLength) && maxLength > 0))
      badOption('maxLength', 'a positive integer', maxLength);
    if (padToMaxLength && maxLength === undefined) badOption('padToMaxLength', 'maxLength to be set', padToMaxLength);
    const specials = (opts.bos ? 1 : 0) + (opts.eos ? 1 : 0);
    if (truncation && maxLength !== undefined && maxLength < specials) {
      badOption('maxLength', `at least ${specials} to hold BOS/EOS`, maxLength);
    }
    const rows = texts.map((text, b) => {
      let body = this.encode(text, { parseSpecial: opts.parseSpecial });
      if (maxLength !== undefined && body.length + specials > maxLength) {
        if (!truncation) {
          throw new TokenizerError(
            'TOKENIZER_TOO_LONG',
            `encodeBatch: texts[${b}] has ${body.length + specials} tokens, maxLength is ${maxLength} (set truncation)`,
            {
              field: `texts[${b}]`,
              expected: maxLength,
              actual: body.length + specials,
            },
          );
        }
        const keep = maxLength - specials;
        body = truncation === 'left' ? body.slice(body.length - keep) : body.slice(0, keep);
      }
      return [...(opts.bos ? [this.bosId] : []), ...body, ...(opts.eos ? [this.eosId] : [])];
    });
    const width = padToMaxLength ? maxLength! : rows.reduce((w, r) => Math.max(w, r.length), 0);
    const ids: number[][] = [];
    const attentionMask: number[][] = [];
    for (const row of rows) {
      const padIds = Array.from({ length: width - row.length }, () => this.padId);
      const padMask = Array.from({ length: width - row.length }, () => 0);
      const mask = Array.from({ length: row.length }, () => 1);
      ids.push(padSide === 'left' ? [...padIds, ...row] : [...row, ...padIds]);
      attentionMask.push(padSide === 'left' ? [...padMask, ...mask] : [...mask, ...padMask]);
    }
    return { ids, attentionMask };
  }

  /**
   * A tokenizer with `k` gist tokens `<GIST_0>` ... `<GIST_{k-1}>` added as special tokens at ids
   * `numTokens ... numTokens + k - 1` (= `vocabSize ...` for Llama). This one is unchanged.
   */
  withGistTokens(k: number): Tokenizer {
    if (!Number.isInteger(k) || k < 1) badOption('k', 'a positive integer', k);
    if (this.gistIds.length > 0) {
      throw new TokenizerError(
        'TOKENIZER_GIST_EXISTS',
        `${this.source}: already has ${this.gistIds.length} gist tokens`,
        {
          file: this.source,
        },
      );
    }
    const gists = Array.from({ length: k }, (_, i) => addedToken(this.numTokens + i, gistToken(i), true));
    for (const g of gists) {
      if (this.engine.token_to_id(g.content) !== undefined) {
        throw new TokenizerError('TOKENIZER_GIST_EXISTS', `${this.source}: "${g.content}" is already a token`, {
          file: this.source,
        });
      }
    }
    const additional = Array.isArray(this.config.additional_special_tokens)
      ? this.config.additional_special_tokens
      : [];
    return new Tokenizer(
      { ...this.json, added_tokens: [...this.json.added_tokens, ...gists] },
      { ...this.config, additional_special_tokens: [...additional, ...gists.map((g) => g.content)] },
      this.source,
    );
  }

  /** The token text of `id` (a vocabulary piece such as `▁Hello`, or an added token), or undefined. */
  idToToken(id: number): string | undefined {
    return this.engine.id_to_token(id);
  }

  /** The id of the token text `token`, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.engine.token_to_id(token);
  }

  /** Whether `id` is a special token (BOS, EOS, UNK, PAD, gist and other special added tokens). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** Copies of the `tokenizer.json` and `tokenizer_config.json` contents (what `saveTokenizer` writes). */
  toFiles(): { tokenizerJson: TokenizerJson; tokenizerConfig: TokenizerConfigJson } {
    const addedTokensDecoder = Object.fromEntries(
      this.json.added_tokens.map(({ id, ...rest }) => [String(id), { ...rest }] as const),
    );
    return {
      tokenizerJson: structuredClone(this.json),
      tokenizerConfig: { ...structuredClone(this.config), added_tokens_decoder: addedTokensDecoder },
    };
  }

  private encodePlain(text: string): number[] {
    if (this.layout) return encodeWithLayout(this.engine, this.layout, text);
    this.plainEngine ??= this.json.added_tokens.some((t) => t.special)
      ? new Engine({ ...this.json, added_tokens: this.json.added_tokens.filter((t) => !t.special) }, this.config)
      : this.engine;
    return this.plainEngine.encode(text, { add_special_tokens: false }).ids;
  }

  private encodeParsingSpecial(text: string): number[] {
    if (!this.layout) return this.engine.encode(text, { add_special_tokens: false }).ids;
    if (!this.specialSplitter) return encodeWithLayout(this.engine, this.layout, text);
    // split() with a capturing group alternates text and special tokens: text, special, text, ...
    return text
      .split(this.specialSplitter)
      .flatMap((section, i) =>
        i % 2 === 1 ? [this.specialIdByContent.get(section)!] : encodeWithLayout(this.engine, this.layout!, section),
      );
  }
}

function badOption(field: string, expected: string, actual: unknown): never {
  throw new TokenizerError('TOKENIZER_BAD_OPTION', `${field}: expected ${expected}, got ${JSON.stringify(actual)}`, {
    field,
    expected,
    actual,
  });
}

/**
 * @huggingface/tokenizers 0.2.0's ByteFallback decoder turns byte tokens into text with a default `TextDecoder`, which
 * drops a U+FEFF at the start of each byte run; a text holding U+FEFF (where it has no piece of its own) would not
 * decode back. Give every such decoder one that keeps it (visits Sequence decoders' children).
 */
function keepByteOrderMarks(decoder: unknown): void {
  // The engine's components are callable objects (functions), not plain objects.
  if (!decoder || (typeof decoder !== 'object' && typeof decoder !== 'function')) return;
  const d = decoder as { text_decoder?: InstanceType<typeof TextDecoder>; decoders?: unknown };
  // Duck-typed: the engine's TextDecoder may come from another realm than ours.
  if (d.text_decoder && typeof d.text_decoder.decode === 'function' && d.text_decoder.ignoreBOM === false) {
    d.text_decoder = new TextDecoder(d.text_decoder.encoding, { fatal: d.text_decoder.fatal, ignoreBOM: true });
  }
  if (Array.isArray(d.decoders)) d.decoders.forEach(keepByteOrderMarks);
}

/** Token text of a config entry: a string, or an AddedToken object `{ content }` as transformers writes them. */
function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** Number of ids the model's vocabulary covers (highest id + 1; Unigram vocabularies are lists). */
function modelVocabSize(json: TokenizerJson): number {
  const vocab = json.model.vocab;
  if (Array.isArray(vocab)) return vocab.length;
  let size = 0;
  for (const id of Object.values(vocab as Record<string, number>)) size = Math.max(size, id + 1);
  return size;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function gistIdsOf(added: readonly AddedTokenJson[], source: string): number[] {
  const byIndex = new Map<number, number>();
  for (const t of added) {
    const m = GIST_TOKEN.exec(t.content);
    if (m) byIndex.set(Number(m[1]), t.id);
  }
  const ids = Array.from({ length: byIndex.size }, (_, i) => byIndex.get(i));
  if (ids.some((id) => id === undefined)) {
    throw new TokenizerError(
      'TOKENIZER_BAD_GIST',
      `${source}: gist tokens must be <GIST_0> ... <GIST_${byIndex.size - 1}>, found indices ${[...byIndex.keys()].sort((a, b) => a - b).join(', ')}`,
      {
        file: source,
      },
    );
  }
  return ids as number[];
}

/** Checks the shape @huggingface/tokenizers needs and fills optional top-level fields with null. */
export function validateTokenizerJson(json: unknown, source: string): asserts json is TokenizerJson {
  const bad = (what: string): never => {
    throw new TokenizerError('TOKENIZER_BAD_JSON', `${source}: not a tokenizer.json: ${what}`, { file: source });
  };
  if (!json || typeof json !== 'object' || Array.isArray(json)) bad('expected a JSON object');
  const j = json as Record<string, unknown>;
  const model = j.model as Record<string, unknown> | undefined;
  if (!model || typeof model !== 'object') bad('missing "model"');
  if (!model!.vocab || typeof model!.vocab !== 'object') bad('missing "model.vocab"');
  if (model!.type !== undefined && !['BPE', 'WordPiece', 'Unigram'].includes(model!.type as string)) {
    bad(`model.type ${JSON.stringify(model!.type)} is not BPE, WordPiece or Unigram`);
  }
  // Unigram lists [piece, score] pairs; BPE and WordPiece map piece → id. The engine takes either shape for any model
  // and then yields undefined ids.
  const unigram = model!.type === 'Unigram';
  if (Array.isArray(model!.vocab) !== unigram)
    bad(
      `model.vocab is ${Array.isArray(model!.vocab) ? 'a list' : 'an object'}, which ${model!.type ?? 'BPE'} does not use`,
    );
  if (unigram) {
    (model!.vocab as unknown[]).forEach((e, i) => {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'number')
        bad(`model.vocab[${i}] is not a [piece, score] pair`);
    });
  } else {
    for (const [token, id] of Object.entries(model!.vocab as Record<string, unknown>)) {
      if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= MAX_TOKEN_ID)
        bad(`model.vocab["${token}"] = ${JSON.stringify(id)} is not an id in [0, ${MAX_TOKEN_ID})`);
    }
  }
  j.added_tokens ??= [];
  if (!Array.isArray(j.added_tokens)) bad('"added_tokens" is not an array');
  (j.added_tokens as unknown[]).forEach((t, i) => {
    const a = t as Partial<AddedTokenJson> | null;
    if (!a || typeof a.content !== 'string' || !Number.isInteger(a.id) || a.id! < 0 || a.id! >= MAX_TOKEN_ID)
      bad(`added_tokens[${i}] needs a string "content" and an integer "id" in [0, ${MAX_TOKEN_ID})`);
  });
  for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) {
    j[key] ??= null;
    checkComponent(j[key], key, bad);
  }
}

/** No vocabulary comes near 2^24 tokens; a larger id is damage (and would make every id array enormous). */
const MAX_TOKEN_ID = 2 ** 24;

/** Fields of `Sequence` components that hold their parts. */
const PARTS = ['normalizers', 'pretokenizers', 'processors', 'decoders'];

/**
 * A pipeline component is null or an object with a string `type`; its parts (in a Sequence) are components too, and a
 * `pattern` is `{String}` or `{Regex}`. The tokenizers engine accepts some malformed ones and fails later, on encode
 * or decode, with a TypeError.
 */
function checkComponent(v: unknown, path: string, bad: (what: string) => never): void {
  if (v === null) return;
  if (typeof v !== 'object' || Array.isArray(v) || typeof (v as { type?: unknown }).type !== 'string')
    bad(`${path} is not null or an object with a string "type"`);
  const c = v as Record<string, unknown>;
  for (const key of PARTS) {
    if (!(key in c)) continue;
    if (!Array.isArray(c[key])) bad(`${path}.${key} is not an array`);
    (c[key] as unknown[]).forEach((part, i) => {
      if (part === null) bad(`${path}.${key}[${i}] is null`);
      checkComponent(part, `${path}.${key}[${i}]`, bad);
    });
  }
  if ('pattern' in c) {
    const p = c.pattern as Record<string, unknown> | null;
    const keys = p && typeof p === 'object' && !Array.isArray(p) ? Object.keys(p) : [];
    if (keys.length !== 1 || !['String', 'Regex'].includes(keys[0]) || typeof p![keys[0]] !== 'string')
      bad(`${path}.pattern is not {"String": …} or {"Regex": …}`);
  }
}
