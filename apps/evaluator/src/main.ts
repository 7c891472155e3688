import { HyperLlamaError } from '@hyperllama/runtime';
import { CliError, processIo, type Command, type Io } from './cli-kit.js';
import { convertCommand } from './commands/convert.js';
import { generateCommand } from './commands/generate.js';
import { compressCommand } from './commands/compress.js';
import { runCommand } from './commands/run.js';
import { mergeCommand } from './commands/merge.js';
import { defaultCommand } from './commands/default.js';
import { analyzeCommand } from './commands/analyze.js';

/** Subcommands of `hyperllama-eval`; later commands register here. */
export const commands: Record<string, Command> = {
  convert: convertCommand,
  generate: generateCommand,
  run: runCommand,
  merge: mergeCommand,
  compress: compressCommand,
  default: defaultCommand,
  analyze: analyzeCommand,
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  return [
    'usage: hyperllama-eval <command> [options]',
    '',
    'commands:',
    ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
    '',
    'hyperllama-eval <command> --help shows its options.',
    '',
  ].join('\n');
}

/**
 * Run `hyperllama-eval` with `argv` (without node and script). Returns the exit code: 0 success, 1 a failure
 * (a typed error, printed as one line), 2 a usage error.
 */
export async function runCli(argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    io.stderr(`hyperllama-eval: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(`${command.summary}\n\nusage: ${command.usage}\n`);
    return 0;
  }
  try {
    await command.run(rest, io);
    return 0;
  } catch (e) {
    if (e instanceof CliError && e.code === 'USAGE') {
      io.stderr(`hyperllama-eval: ${e.message}\nusage: ${command.usage}\n`);
      return 2;
    }
    if (e instanceof HyperLlamaError) {
      io.stderr(`hyperllama-eval ${name}: error ${e.code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
