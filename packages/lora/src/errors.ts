import { HyperLlamaError } from '@hyperllama/runtime';

/**
 * Errors of `@hyperllama/lora`: bad LoRA options, unknown adapters or target modules, PEFT adapter files whose
 * config, keys or shapes do not fit the model, and weights that cannot be quantised. `details` names the offending
 * field, keys, expected and actual values.
 */
export class LoraError extends HyperLlamaError {}
