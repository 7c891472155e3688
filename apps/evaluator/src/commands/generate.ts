import { DEFAULT_TEMPLATE } from '@hyperllama/datasets';
import { Prefix } from '@hyperllama/gist-attention';
import { HypernetError, loadPretrained, type Pretrained } from '@hyperllama/hypernet';
import { generate, type GenerateResult } from '@hyperllama/llama-model';
import { llama3ChatIds, type ChatMessage } from '@hyperllama/tokenizer';
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
  /**
   * Chat with an instruction-tuned Llama 3: the prompt is a user message (after `system`, when given) in Llama 3's chat
   * format, with an open assistant header; generation also stops at `<|eot_id|>`.
   */
  chat?: boolean;
  system?: string;
}

/** Load a model and tokenizer and continue one prompt (BOS prepended), or answer it as a chat turn (`chat`). */
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
    const { prefix: prefixFile, chat, system, ...sampling } = opts;
    if (chat && prefixFile)
      throw new CliError('USAGE', 'generate: --chat and --prefix do not go together (a prefix answers task inputs)', {
        field: 'chat',
      });
    if (system !== undefined && !chat)
      throw new CliError('USAGE', 'generate: --system needs --chat', { field: 'system' });
    const stored = prefixFile ? Prefix.load(prefixFile, model.config) : undefined;
    try {
      let prompts: string[] | number[][] = [stored ? DEFAULT_TEMPLATE.prompt(opts.prompt) : opts.prompt];
      let stopIds = opts.stopIds;
      if (chat) {
        const messages: ChatMessage[] = [
          ...(system !== undefined ? [{ role: 'system', content: system }] : []),
          { role: 'user', content: opts.prompt },
        ];
        prompts = [llama3ChatIds(tokenizer, messages)];
        const eot = tokenizer.tokenToId('<|eot_id|>')!;
        stopIds ??= [...new Set([...(model.config.eosTokenIds ?? [model.config.eosTokenId]), eot])];
      }
      const result = await generate(model, prompts, {
        ...sampling,
        stopIds,
        tokenizer,
        addBos: true,
        prefix: stored,
      });
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
    '    [--temperature T=0] [--top-k K] [--top-p P] [--seed S=0] [--stop-ids 1,2] [--prefix <prefix.safetensors>]\n' +
    '    [--chat [--system <text>]] [--backend auto|wasm|cpu|tensorflow|webgpu]\n' +
    "  --chat: the prompt is a user turn in Llama 3's chat format (instruction-tuned Llama 3 models); stops at <|eot_id|> too.",
  async run(argv: string[], io: Io) {
    const c = 'generate';
    // --chat is a flag: taken out before the string options are parsed.
    const chat = argv.includes('--chat');
    const v = parseOptions(
      c,
      argv.filter((a) => a !== '--chat'),
      {
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
        system: undefined,
        ...backendOption,
      },
    );
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
      chat,
      system: v.system,
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
