import { HyperLlamaError } from '@hyperllama/runtime';

/**
 * Errors of `@hyperllama/llama-model`: an invalid config, weights that do not fit the config (missing, unexpected or
 * mis-shaped tensors, listed together), an unreadable llama2.c file, or bad arguments to forward/generate.
 */
export class ModelError extends HyperLlamaError {}
