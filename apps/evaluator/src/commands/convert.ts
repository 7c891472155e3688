import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { loadLlama, readHfLlama, saveGguf, saveLlama } from '@hyperllama/llama-model';
import { ggufTokenizerMetadata, loadTokenizer, saveTokenizer } from '@hyperllama/tokenizer';
import { CliError, parseOptions, requireOption, type Command, type Io } from '../cli-kit.js';

export interface ConvertOptions {
  /** A llama2.c v0 checkpoint (or any model `loadLlama` reads). */
  from: string;
  /** Its tokenizer: llama2.c `tokenizer.bin`, SentencePiece `.model`, or `tokenizer.json`. */
  tokenizer: string;
  /** Output Hugging Face model directory. */
  out: string;
}

/**
 * Write an HF model directory from a llama2.c checkpoint and its tokenizer: config.json, model.safetensors,
 * generation_config.json, tokenizer.json, tokenizer_config.json.
 */
export function convertModel(opts: ConvertOptions): { vocabSize: number; files: string[] } {
  const model = loadLlama(opts.from, { trainable: false });
  try {
    const tokenizer = loadTokenizer(opts.tokenizer, { vocabSize: model.config.vocabSize });
    if (tokenizer.vocabSize !== model.config.vocabSize) {
      throw new CliError(
        'VOCAB_MISMATCH',
        `convert: tokenizer ${opts.tokenizer} has ${tokenizer.vocabSize} tokens, model ${opts.from} has ${model.config.vocabSize}`,
        {
          expected: model.config.vocabSize,
          actual: tokenizer.vocabSize,
        },
      );
    }
    saveLlama(model, opts.out);
    saveTokenizer(tokenizer, opts.out);
    return {
      vocabSize: model.config.vocabSize,
      files: ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'],
    };
  } finally {
    model.dispose();
  }
}

export interface GgufConvertOptions {
  /** An HF model directory (read without building a model) or a llama2.c checkpoint. */
  from: string;
  /** The tokenizer to describe in the file; default the directory's own `tokenizer.json`. */
  tokenizer?: string;
  /** `tokenizer` (default): its `tokenizer.ggml.*` metadata; `ids`: placeholder tokens, ids only (benchmarking). */
  vocab?: 'tokenizer' | 'ids';
  /** Output `.gguf` file. */
  out: string;
}

/**
 * Write a float32 GGUF v3 file that llama.cpp loads: the model's weights under llama.cpp's names and, with
 * `vocab: 'tokenizer'`, its tokenizer (a `TOKENIZER_NOT_GGUF` error when llama.cpp cannot express it).
 */
export function convertToGguf(opts: GgufConvertOptions): { vocab: 'tokenizer' | 'ids'; bytes: number } {
  const vocab = opts.vocab ?? 'tokenizer';
  const isDir = existsSync(opts.from) && statSync(opts.from).isDirectory();
  const tokenizerPath = opts.tokenizer ?? (isDir ? opts.from : undefined);
  if (vocab === 'tokenizer' && tokenizerPath === undefined) {
    throw new CliError('USAGE', 'convert: --to gguf from a checkpoint file needs --tokenizer (or --vocab ids)', {
      field: 'tokenizer',
    });
  }
  const source = isDir ? readHfLlama(opts.from) : loadLlama(opts.from, { trainable: false });
  try {
    const vocabSize = source.config.vocabSize;
    const tokenizer =
      vocab === 'tokenizer'
        ? ggufTokenizerMetadata(loadTokenizer(tokenizerPath!, { vocabSize }), { vocabSize })
        : undefined;
    saveGguf(source, opts.out, { tokenizer, name: basename(opts.from) });
  } finally {
    if ('dispose' in source) source.dispose();
  }
  return { vocab, bytes: statSync(opts.out).size };
}

export const convertCommand: Command = {
  summary: 'convert a llama2.c checkpoint + tokenizer into an HF model directory, or a model into a GGUF file',
  usage:
    'hyperllama-eval convert --from <model.bin> --tokenizer <tokenizer.bin|.model|tokenizer.json> --out <dir>\n' +
    '       hyperllama-eval convert --from <hf dir|model.bin> --to gguf [--tokenizer <path>] [--vocab tokenizer|ids] --out <model.gguf>',
  async run(argv: string[], io: Io) {
    const v = parseOptions('convert', argv, {
      from: undefined,
      tokenizer: undefined,
      out: undefined,
      to: 'hf',
      vocab: 'tokenizer',
    });
    const from = requireOption('convert', 'from', v.from);
    const out = requireOption('convert', 'out', v.out);
    if (v.to !== 'hf' && v.to !== 'gguf')
      throw new CliError('USAGE', `convert: --to: expected hf or gguf, got ${v.to}`, { field: 'to', actual: v.to });
    if (v.vocab !== 'tokenizer' && v.vocab !== 'ids')
      throw new CliError('USAGE', `convert: --vocab: expected tokenizer or ids, got ${v.vocab}`, { field: 'vocab' });
    if (v.to === 'gguf') {
      const { bytes, vocab } = convertToGguf({ from, tokenizer: v.tokenizer, vocab: v.vocab, out });
      io.stdout(
        `wrote ${out} (GGUF v3, float32, ${bytes} bytes, vocabulary: ${vocab === 'ids' ? 'ids only' : 'tokenizer'})\n`,
      );
      return;
    }
    const { files } = convertModel({ from, tokenizer: requireOption('convert', 'tokenizer', v.tokenizer), out });
    io.stdout(`wrote ${files.join(', ')} to ${out}\n`);
  },
};
