export { runCli, commands } from './main.js';
export { CliError, type Command, type Io } from './cli-kit.js';
export { convertModel, convertCommand, type ConvertOptions } from './commands/convert.js';
export { generateText, generateCommand, type GenerateTextOptions } from './commands/generate.js';
