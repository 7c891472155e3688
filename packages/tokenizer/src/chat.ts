import { TokenizerError } from './errors.js';
import type { Tokenizer } from './tokenizer.js';

/** One chat message: `role` is `system`, `user`, `assistant` (or any role name the model knows, e.g. `ipython`). */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** End with an open `assistant` header, for the model to write the reply (default true). */
  addGenerationPrompt?: boolean;
  /** Start with `<|begin_of_text|>` (default true). */
  bos?: boolean;
}

const BOS = '<|begin_of_text|>';
const START = '<|start_header_id|>';
const END = '<|end_header_id|>';
const EOT = '<|eot_id|>';

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages))
    throw new TokenizerError('TOKENIZER_BAD_CHAT', 'chat: expected an array of {role, content} messages', {
      field: 'messages',
      actual: typeof messages,
    });
  messages.forEach((m, i) => {
    if (!m || typeof m.role !== 'string' || !/^[A-Za-z_][\w-]*$/.test(m.role))
      throw new TokenizerError(
        'TOKENIZER_BAD_CHAT',
        `chat: messages[${i}].role must be a role name such as "user", got ${JSON.stringify(m?.role)}`,
        { field: `messages[${i}].role`, actual: m?.role },
      );
    if (typeof m.content !== 'string')
      throw new TokenizerError(
        'TOKENIZER_BAD_CHAT',
        `chat: messages[${i}].content must be a string, got ${typeof m.content}`,
        { field: `messages[${i}].content`, actual: typeof m.content },
      );
  });
}

/**
 * Llama 3's chat format as text (Meta's template, as in the instruction-tuned models' `tokenizer_config.json`):
 * `<|begin_of_text|>`, then per message `<|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|>`,
 * then with `addGenerationPrompt` `<|start_header_id|>assistant<|end_header_id|>\n\n`.
 */
export function renderLlama3Chat(messages: readonly ChatMessage[], o: ChatTemplateOptions = {}): string {
  checkMessages(messages);
  const turns = messages.map((m) => `${START}${m.role}${END}\n\n${m.content.trim()}${EOT}`);
  return (
    ((o.bos ?? true) ? BOS : '') +
    turns.join('') +
    ((o.addGenerationPrompt ?? true) ? `${START}assistant${END}\n\n` : '')
  );
}

/**
 * The ids of {@link renderLlama3Chat}'s text: the header and end-of-turn tokens as their special ids, each text
 * between them encoded on its own, as a Hugging Face tokenizer splits the rendered text at special tokens. Message
 * contents are only text: a `<|eot_id|>` written inside one stays characters and cannot end the turn. Needs a
 * tokenizer with Llama 3's special tokens (`TOKENIZER_NO_SPECIAL` names a missing one).
 */
export function llama3ChatIds(
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  o: ChatTemplateOptions = {},
): number[] {
  checkMessages(messages);
  const special = (t: string): number => {
    const id = tokenizer.tokenToId(t);
    if (id === undefined || !tokenizer.isSpecial(id))
      throw new TokenizerError(
        'TOKENIZER_NO_SPECIAL',
        `${tokenizer.source}: no special token ${t} (not a Llama 3 tokenizer?)`,
        {
          file: tokenizer.source,
          field: t,
        },
      );
    return id;
  };
  const [start, end, eot] = [special(START), special(END), special(EOT)];
  const text = (s: string) => tokenizer.encode(s);
  const header = (role: string) => [start, ...text(role), end];
  const ids: number[] = (o.bos ?? true) ? [special(BOS)] : [];
  for (const m of messages) ids.push(...header(m.role), ...text(`\n\n${m.content.trim()}`), eot);
  if (o.addGenerationPrompt ?? true) ids.push(...header('assistant'), ...text('\n\n'));
  return ids;
}
