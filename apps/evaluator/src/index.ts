export { runCli, commands } from './main.js';
export { CliError, type Command, type Io } from './cli-kit.js';
export {
  convertModel,
  convertToGguf,
  convertCommand,
  type ConvertOptions,
  type GgufConvertOptions,
} from './commands/convert.js';
export { generateText, generateCommand, type GenerateTextOptions } from './commands/generate.js';
export { runEvaluation, runCommand, type RunOptions, type RunOutput } from './commands/run.js';
export { mergeReports, mergeCommand, readPartialReport } from './commands/merge.js';
export { compressTask, compressCommand, type CompressOptions } from './commands/compress.js';
export { loadSetup, loadPrefixes, type EvalSetup, type SetupOptions } from './eval-setup.js';
export {
  runDefault,
  defaultCommand,
  embeddedBase,
  type DefaultOptions,
  type DefaultResult,
} from './commands/default.js';
