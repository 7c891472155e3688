import { loadLlama, type LlamaModel } from '@hyperllama/llama-model';
import { loadTokenizer, type Tokenizer } from '@hyperllama/tokenizer';
import {
  loadHyperLlama,
  readHypernetConfig,
  resolveCheckpointDir,
  type HypernetConfigJson,
  HYPERNET_CONFIG_FILE,
} from './checkpoint.js';
import { HypernetError } from './errors.js';
import type { HyperLlama } from './hyperllama.js';
import {
  fileSystem,
  isAbsolutePath as isAbsolute,
  joinPath as join,
  resolvePath as resolve,
} from '@hyperllama/runtime';

/** Where the parts of a pretrained model come from (absolute paths; `checkpoint` is null for a plain base). */
export interface PretrainedSources {
  checkpoint: string | null;
  model: string;
  tokenizer: string;
}

export interface LoadPretrainedOptions {
  /** Tokenizer path; default: the base directory itself (`tokenizer.json` or `tokenizer.model` in it). */
  tokenizer?: string;
  /** Whether the base weights train (default false: a pretrained base is frozen). */
  trainable?: boolean;
}

/** A base model and its tokenizer, loaded together by {@link loadPretrained}. */
export interface Pretrained {
  model: LlamaModel;
  tokenizer: Tokenizer;
  sources: PretrainedSources;
  /** Disposes the model (and, for {@link fromPretrained}, the HyperLlama's gist rows). */
  dispose(): void;
}

export interface FromPretrainedOptions extends LoadPretrainedOptions {
  /** Base model (HF directory or llama2.c `.bin`); default: the checkpoint's recorded `base_model.path`. */
  model?: string;
  /** Tokenizer; default: the checkpoint's recorded `tokenizer`, else the base model directory. */
  tokenizer?: string;
}

/** A HyperLlama checkpoint loaded with its base model and tokenizer by {@link fromPretrained}. */
export interface PretrainedHyperLlama extends Pretrained {
  hyperllama: HyperLlama;
  config: HypernetConfigJson;
}

/**
 * A path recorded in a checkpoint's `hypernet_config.json`: as written when it is absolute; else relative to the
 * checkpoint directory when that exists (a shipped checkpoint records its base so), else relative to the working
 * directory (as the trainer records it).
 */
export function recordedPath(path: string, checkpoint: string): string {
  if (isAbsolute(path)) return path;
  const inCheckpoint = join(checkpoint, path);
  return fileSystem().exists(inCheckpoint) || !fileSystem().exists(path) ? inCheckpoint : path;
}

/** The paths {@link fromPretrained} loads, without loading anything; `model`/`tokenizer` are undefined when unknown. */
export interface ResolvedPretrained {
  /** The checkpoint directory found ({@link resolveCheckpointDir}: `dir`, or the `dir.old` an interrupted save left). */
  checkpoint: string;
  config: HypernetConfigJson;
  model: string | undefined;
  tokenizer: string | undefined;
}

/**
 * Resolve a HyperLlama checkpoint's base model and tokenizer from its own `hypernet_config.json` (explicit
 * `opts.model` / `opts.tokenizer` win): the recorded base path and tokenizer ({@link recordedPath}), the tokenizer
 * defaulting to the base directory. A missing checkpoint is a `HYPERNET_NOT_FOUND` error.
 */
export function resolvePretrained(
  dir: string,
  opts: Pick<FromPretrainedOptions, 'model' | 'tokenizer'> = {},
): ResolvedPretrained {
  const checkpoint = resolveCheckpointDir(dir);
  if (!checkpoint) throw new HypernetError('HYPERNET_NOT_FOUND', `${dir}: no such directory`, { file: dir });
  const config = readHypernetConfig(checkpoint);
  const model = opts.model ?? (config.base_model.path ? recordedPath(config.base_model.path, checkpoint) : undefined);
  const tokenizer = opts.tokenizer ?? (config.tokenizer ? recordedPath(config.tokenizer, checkpoint) : undefined);
  return { checkpoint, config, model, tokenizer };
}

/** `tokenizer`, else `model` when it is a directory (which holds its tokenizer), else a `HYPERNET_NO_TOKENIZER` error. */
function tokenizerFor(model: string, tokenizer: string | undefined): string {
  if (tokenizer) return tokenizer;
  if (fileSystem().exists(model) && fileSystem().isDirectory(model)) return model;
  throw new HypernetError('HYPERNET_NO_TOKENIZER', `the model ${model} is a file: give its tokenizer`, {
    field: 'tokenizer',
    model,
  });
}

/**
 * A `TOKENIZER_MISMATCH` error unless the tokenizer's ids (gist tokens aside, which live past the vocabulary) are
 * exactly the model's vocabulary: a smaller one cannot decode what the model generates, a larger one indexes past
 * the embedding.
 */
export function checkTokenizerFits(
  tokenizer: Tokenizer,
  tokenizerPath: string,
  model: LlamaModel,
  modelPath: string,
): void {
  const tokens = tokenizer.numTokens - tokenizer.gistIds.length;
  if (tokens !== model.config.vocabSize) {
    throw new HypernetError(
      'TOKENIZER_MISMATCH',
      `tokenizer ${tokenizerPath} has ${tokens} tokens but the model ${modelPath} has vocabSize ${model.config.vocabSize}: they do not belong together`,
      { field: 'tokenizer', file: tokenizerPath, expected: model.config.vocabSize, actual: tokens },
    );
  }
}

function loadBase(
  modelPath: string,
  tokenizerPath: string,
  trainable: boolean,
): { model: LlamaModel; tokenizer: Tokenizer } {
  const model = loadLlama(modelPath, { trainable });
  try {
    const tokenizer = loadTokenizer(tokenizerPath, { vocabSize: model.config.vocabSize });
    checkTokenizerFits(tokenizer, tokenizerPath, model, modelPath);
    return { model, tokenizer };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * Load a base model (an HF directory or a llama2.c `.bin`) with its tokenizer (default: the directory itself; a `.bin`
 * needs `opts.tokenizer`, else `HYPERNET_NO_TOKENIZER`). The tokenizer must match the model's vocabulary
 * ({@link checkTokenizerFits}).
 */
export function loadPretrained(dir: string, opts: LoadPretrainedOptions = {}): Pretrained {
  const tokenizerPath = tokenizerFor(dir, opts.tokenizer);
  const { model, tokenizer } = loadBase(dir, tokenizerPath, opts.trainable ?? false);
  return {
    model,
    tokenizer,
    sources: { checkpoint: null, model: resolve(dir), tokenizer: resolve(tokenizerPath) },
    dispose: () => model.dispose(),
  };
}

/**
 * Load a HyperLlama checkpoint with everything it needs, from its own `hypernet_config.json` (like PEFT's
 * `AutoPeftModelForCausalLM.from_pretrained`): the recorded base model, the recorded tokenizer (else the base
 * directory's), the adapters and the gist rows. The base hash is checked (`HYPERNET_BASE_MISMATCH`). Without a recorded
 * base path and without `opts.model` it is a `HYPERNET_NO_BASE` error. Exposed as `HyperLlama.fromPretrained`.
 */
export function fromPretrained(dir: string, opts: FromPretrainedOptions = {}): PretrainedHyperLlama {
  const r = resolvePretrained(dir, opts);
  if (!r.model) {
    const file = join(r.checkpoint, HYPERNET_CONFIG_FILE);
    throw new HypernetError('HYPERNET_NO_BASE', `${file}: base_model.path is null: give the base model`, {
      file,
      field: 'base_model.path',
    });
  }
  const tokenizerPath = tokenizerFor(r.model, r.tokenizer);
  const { model, tokenizer } = loadBase(r.model, tokenizerPath, opts.trainable ?? false);
  try {
    const { hyperllama, config } = loadHyperLlama(r.checkpoint, model);
    return {
      model,
      tokenizer,
      hyperllama,
      config,
      sources: { checkpoint: resolve(r.checkpoint), model: resolve(r.model), tokenizer: resolve(tokenizerPath) },
      dispose() {
        hyperllama.dispose();
        model.dispose();
      },
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
