/** `hyperllama-train`'s command line; the stages, config and checkpoints are `@hyperllama/training`. */
export { main, usage, stageHelp, resolveConfig } from './cli-main.js';
