import { DEFAULT_TEMPLATE } from '@hyperllama/datasets';
import { Prefix } from '@hyperllama/gist-attention';
import { HypernetError, loadPretrained, type Pretrained } from '@hyperllama/hypernet';
import { generate, type GenerateResult } from '@hyperllama/llama-model';
import {
  CliError,
  backendOption,
  numberOption,
  parseOptions,
  requireOption,
  startBackend,
  type Command,
  type Io,
} from '../cli-kit.js';

export interface GenerateTextOptions {
  /** An HF model directory or a llama2.c `.bin`. */
  model: string;
  /** Tokenizer path; default: the model directory (tokenizer.json or tokenizer.model). */
  tokenizer?: string;
  prompt: string;
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Default: the model's eos. */
  stopIds?: number[];
  /**
   * A task prefix stored by `compress`: the model attends to it, and the prompt is the task input, put into the
   * training template (`Input: <prompt>\nOutput:`).
   */
  prefix?: string;
}

/** Load a model and tokenizer and continue one prompt (BOS prepended). */
export async function generateText(opts: GenerateTextOptions): Promise<{ text: string; result: GenerateResult }> {
  let loaded: Pretrained;
  try {
    loaded = loadPretrained(opts.model, { tokenizer: opts.tokenizer });
  } catch (e) {
    if (e instanceof HypernetError && e.code === 'HYPERNET_NO_TOKENIZER') {
      throw new CliError('USAGE', `generate: --tokenizer is required when --model is a file (${opts.model})`, {
        field: 'tokenizer',
      });
    }
    throw e;
  }
  const { model, tokenizer } = loaded;
  try {
    const { prefix: prefixFile, ...sampling } = opts;
    const stored = prefixFile ? Prefix.load(prefixFile, model.config) : undefined;
    try {
      const prompt = stored ? DEFAULT_TEMPLATE.prompt(opts.prompt) : opts.prompt;
      const result = await generate(model, [prompt], { ...sampling, tokenizer, addBos: true, prefix: stored });
      return { text: result.texts![0], result };
    } finally {
      stored?.dispose();
    }
  } finally {
    model.dispose();
  }
}

export const generateCommand: Command = {
  summary: 'continue a prompt with a model (greedy by default)',
  usage:
    'hyperllama-eval generate --model <dir|model.bin> [--tokenizer <path>] --prompt <text> [--max-new-tokens N=256]\n' +
    '    [--temperature T=0] [--top-k K] [--top-p P] [--seed S=0] [--stop-ids 1,2] [--prefix <prefix.safetensors>] [--backend auto|wasm|cpu|tensorflow|webgpu]',
  async run(argv: string[], io: Io) {
    const c = 'generate';
    const v = parseOptions(c, argv, {
      model: undefined,
      tokenizer: undefined,
      prompt: '',
      'max-new-tokens': '256',
      temperature: undefined,
      'top-k': undefined,
      'top-p': undefined,
      seed: undefined,
      'stop-ids': undefined,
      prefix: undefined,
      ...backendOption,
    });
    const stopIds = v['stop-ids']?.split(',').map((s, i) => numberOption(c, `stop-ids[${i}]`, s.trim(), true)!);
    const opts: GenerateTextOptions = {
      model: requireOption(c, 'model', v.model),
      tokenizer: v.tokenizer,
      prompt: v.prompt!,
      maxNewTokens: numberOption(c, 'max-new-tokens', v['max-new-tokens'], true, 1)!,
      temperature: numberOption(c, 'temperature', v.temperature),
      topK: numberOption(c, 'top-k', v['top-k'], true),
      topP: numberOption(c, 'top-p', v['top-p']),
      seed: numberOption(c, 'seed', v.seed, true),
      stopIds,
      prefix: v.prefix,
    };
    await startBackend(v.backend, io);
    const { text, result } = await generateText(opts);
    io.stdout(text + '\n');
    const s = result.stats;
    io.stderr(
      `${s.newTokens} tokens in ${(s.prefillSeconds + s.decodeSeconds).toFixed(2)} s (${s.tokensPerSecond.toFixed(1)} tokens/s; prompt ${s.promptTokens} tokens)\n`,
    );
  },
};
