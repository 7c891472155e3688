import { HyperLlamaError } from '@hyperllama/runtime';

/**
 * A tokenizer file that cannot be read (unknown format, truncated or malformed content), or a bad argument given
 * to a tokenizer method. `details.file` names the file when one is involved.
 */
export class TokenizerError extends HyperLlamaError {}
