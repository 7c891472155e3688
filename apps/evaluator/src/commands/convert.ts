import { saveLlama, loadLlama } from '@hyperllama/llama-model';
import { loadTokenizer, saveTokenizer } from '@hyperllama/tokenizer';
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

export const convertCommand: Command = {
  summary: 'convert a llama2.c checkpoint + tokenizer into a Hugging Face model directory',
  usage: 'hyperllama-eval convert --from <model.bin> --tokenizer <tokenizer.bin|.model|tokenizer.json> --out <dir>',
  async run(argv: string[], io: Io) {
    const v = parseOptions('convert', argv, { from: undefined, tokenizer: undefined, out: undefined });
    const opts = {
      from: requireOption('convert', 'from', v.from),
      tokenizer: requireOption('convert', 'tokenizer', v.tokenizer),
      out: requireOption('convert', 'out', v.out),
    };
    const { files } = convertModel(opts);
    io.stdout(`wrote ${files.join(', ')} to ${opts.out}\n`);
  },
};
