import { HyperLlamaError } from '@hyperllama/runtime';

/** Errors of `hyperllama-train`: bad configuration or flags (`CONFIG_*`, `USAGE`), checkpoints, divergence. */
export class TrainerError extends HyperLlamaError {}
