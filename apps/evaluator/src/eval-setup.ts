import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Prefix } from '@hyperllama/gist-attention';
import { HyperLlama, HypernetError, loadPretrained, resolveCheckpointDir } from '@hyperllama/hypernet';
import type { LlamaModel } from '@hyperllama/llama-model';
import { onSyncReadBackend } from '@hyperllama/runtime';
import type { Tokenizer } from '@hyperllama/tokenizer';
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

/**
 * Loads the base model and tokenizer, and the HyperLlama when a checkpoint is given (its base hash is checked). The
 * hash reads every weight, so on webgpu the loading runs on the cpu backend and the weights move on first use.
 */
export function loadSetup(o: SetupOptions): Promise<EvalSetup> {
  return onSyncReadBackend(() => loadSetupHere(o));
}

/** `HyperLlama.fromPretrained` (with a checkpoint) or `loadPretrained` (a base), their missing paths as usage errors. */
function loadSetupHere(o: SetupOptions): EvalSetup {
  try {
    if (o.checkpoint) {
      const checkpoint = resolveCheckpointDir(o.checkpoint);
      if (!checkpoint)
        throw new CliError('MISSING_FILE', `--checkpoint ${o.checkpoint}: no such directory`, {
          file: o.checkpoint,
          field: 'checkpoint',
        });
      return HyperLlama.fromPretrained(checkpoint, { model: o.model, tokenizer: o.tokenizer });
    }
    if (!o.model)
      throw new CliError('USAGE', 'give --model (or a --checkpoint that records its base model path)', {
        field: 'model',
      });
    return loadPretrained(o.model, { tokenizer: o.tokenizer });
  } catch (e) {
    if (e instanceof HypernetError && e.code === 'HYPERNET_NO_BASE')
      throw new CliError('USAGE', 'give --model (or a --checkpoint that records its base model path)', {
        field: 'model',
      });
    if (e instanceof HypernetError && e.code === 'HYPERNET_NO_TOKENIZER')
      throw new CliError('USAGE', `give --tokenizer: the model ${String(e.details.model)} is a file`, {
        field: 'tokenizer',
      });
    throw e;
  }
}

/**
 * Stored task prefixes (from `compress`) by task name: a prefix file, or a directory of them. The task name is the
 * file's `task` metadata, else its base name.
 */
export function loadPrefixes(path: string, model: LlamaModel): Map<string, Prefix> {
  if (!existsSync(path))
    throw new CliError('MISSING_FILE', `--prefix ${path}: no such file or directory`, { file: path, field: 'prefix' });
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
export function progressReporter(
  io: Io,
  isTty = Boolean(process.stderr.isTTY),
): { update(label: string, done: number, total: number): void; end(): void } {
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
