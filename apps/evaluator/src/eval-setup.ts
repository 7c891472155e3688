import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { Prefix } from '@hyperllama/gist-attention';
import { HyperLlama, loadHyperLlama, readHypernetConfig, resolveCheckpointDir } from '@hyperllama/hypernet';
import { loadLlama, type LlamaModel } from '@hyperllama/llama-model';
import { onSyncReadBackend } from '@hyperllama/runtime';
import { loadTokenizer, type Tokenizer } from '@hyperllama/tokenizer';
import { CliError, type Io } from './cli-kit.js';

/** The model, tokenizer and (with a checkpoint) HyperLlama an evaluation runs on. */
export interface EvalSetup {
  model: LlamaModel;
  tokenizer: Tokenizer;
  hyperllama?: HyperLlama;
  /** Where each part came from (recorded in the report). */
  sources: { checkpoint: string | null; model: string; tokenizer: string };
  dispose(): void;
}

export interface SetupOptions {
  /** A HyperLlama checkpoint directory (hypernet_config.json, hyper/, gist_embeddings.safetensors). */
  checkpoint?: string;
  /** Base model (HF directory or llama2.c .bin); default: the checkpoint's recorded base. */
  model?: string;
  /** Tokenizer; default: the checkpoint's recorded one, else the model directory. */
  tokenizer?: string;
}

/** A path recorded in a checkpoint: as given when it exists, else relative to the checkpoint. */
function recorded(path: string, checkpoint: string): string {
  if (isAbsolute(path) || existsSync(path)) return path;
  return join(checkpoint, path);
}

/**
 * Loads the base model and tokenizer, and the HyperLlama when a checkpoint is given (its base hash is checked). The
 * hash reads every weight, so on webgpu the loading runs on the cpu backend and the weights move on first use.
 */
export function loadSetup(o: SetupOptions): Promise<EvalSetup> {
  return onSyncReadBackend(() => loadSetupHere(o));
}

function loadSetupHere(o: SetupOptions): EvalSetup {
  let checkpoint: string | undefined;
  let modelPath = o.model;
  let tokenizerPath = o.tokenizer;
  if (o.checkpoint) {
    checkpoint = resolveCheckpointDir(o.checkpoint);
    if (!checkpoint) throw new CliError('MISSING_FILE', `--checkpoint ${o.checkpoint}: no such directory`, { file: o.checkpoint, field: 'checkpoint' });
    const config = readHypernetConfig(checkpoint);
    modelPath ??= config.base_model.path ? recorded(config.base_model.path, checkpoint) : undefined;
    tokenizerPath ??= config.tokenizer ? recorded(config.tokenizer, checkpoint) : undefined;
  }
  if (!modelPath) throw new CliError('USAGE', 'give --model (or a --checkpoint that records its base model path)', { field: 'model' });
  tokenizerPath ??= existsSync(modelPath) && statSync(modelPath).isDirectory() ? modelPath : undefined;
  if (!tokenizerPath) throw new CliError('USAGE', `give --tokenizer: the model ${modelPath} is a file`, { field: 'tokenizer' });
  const model = loadLlama(modelPath, { trainable: false });
  try {
    const tokenizer = loadTokenizer(tokenizerPath, { vocabSize: model.config.vocabSize });
    checkTokenizerFits(tokenizer, tokenizerPath, model, modelPath);
    const hyperllama = checkpoint ? loadHyperLlama(model, checkpoint).hyperllama : undefined;
    return {
      model,
      tokenizer,
      hyperllama,
      sources: { checkpoint: checkpoint ? resolve(checkpoint) : null, model: resolve(modelPath), tokenizer: resolve(tokenizerPath) },
      dispose() {
        hyperllama?.dispose();
        model.dispose();
      },
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * A `TOKENIZER_MISMATCH` error unless the tokenizer's ids (gist tokens aside, which live past the vocabulary) are
 * exactly the model's vocabulary: a smaller one cannot decode what the model generates, a larger one indexes past
 * the embedding.
 */
export function checkTokenizerFits(tokenizer: Tokenizer, tokenizerPath: string, model: LlamaModel, modelPath: string): void {
  const tokens = tokenizer.numTokens - tokenizer.gistIds.length;
  if (tokens !== model.config.vocabSize) {
    throw new CliError('TOKENIZER_MISMATCH', `tokenizer ${tokenizerPath} has ${tokens} tokens but the model ${modelPath} has vocabSize ${model.config.vocabSize}: they do not belong together`, {
      field: 'tokenizer',
      file: tokenizerPath,
      expected: model.config.vocabSize,
      actual: tokens,
    });
  }
}

/**
 * Stored task prefixes (from `compress`) by task name: a prefix file, or a directory of them. The task name is the
 * file's `task` metadata, else its base name.
 */
export function loadPrefixes(path: string, model: LlamaModel): Map<string, Prefix> {
  if (!existsSync(path)) throw new CliError('MISSING_FILE', `--prefix ${path}: no such file or directory`, { file: path, field: 'prefix' });
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((n) => n.endsWith('.safetensors'))
        .sort()
        .map((n) => join(path, n))
    : [path];
  const out = new Map<string, Prefix>();
  for (const file of files) {
    const prefix = Prefix.load(file, model.config);
    out.set(prefix.meta.task ?? basename(file).replace(/\.safetensors$/, ''), prefix);
  }
  return out;
}

/** Progress on stderr: one rewritten line on a terminal, plain lines otherwise. */
export function progressReporter(io: Io, isTty = Boolean(process.stderr.isTTY)): { update(label: string, done: number, total: number): void; end(): void } {
  const start = performance.now();
  let drawn = false;
  return {
    update(label, done, total) {
      const seconds = (performance.now() - start) / 1000;
      const eta = done > 0 ? (seconds / done) * (total - done) : 0;
      const width = 24;
      const filled = Math.round((done / Math.max(1, total)) * width);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${label} ${seconds.toFixed(0)}s elapsed, ETA ${eta.toFixed(0)}s`;
      if (isTty) {
        io.stderr(`\r${bar}\x1b[K`);
        drawn = true;
      } else io.stderr(`${bar}\n`);
    },
    end() {
      if (drawn) io.stderr('\n');
    },
  };
}

