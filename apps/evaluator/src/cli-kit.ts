import { parseArgs, type ParseArgsConfig } from 'node:util';
import { HyperLlamaError, initBackend, type BackendName } from '@hyperllama/runtime';

/** A command-line mistake (unknown option, missing or malformed value); the CLI prints it with the usage. */
export class CliError extends HyperLlamaError {}

/** Where a command writes: stdout for results, stderr for progress and statistics. Replaceable in tests. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** One subcommand of `hyperllama-eval`. */
export interface Command {
  summary: string;
  usage: string;
  run(argv: string[], io: Io): Promise<void>;
}

/** String options of a command: name → default (undefined = none). */
export type OptionSpec = Record<string, string | undefined>;

/** Parse `--name value` options strictly (unknown options and stray positionals are CliErrors). */
export function parseOptions(command: string, argv: string[], spec: OptionSpec): Record<string, string | undefined> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, def] of Object.entries(spec))
    options[name] = def === undefined ? { type: 'string' } : { type: 'string', default: def };
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | undefined
    >;
  } catch (e) {
    throw new CliError('USAGE', `${command}: ${(e as Error).message}`, { command });
  }
}

export function requireOption(command: string, name: string, value: string | undefined): string {
  if (value === undefined || value === '')
    throw new CliError('USAGE', `${command}: --${name} is required`, { command, field: name });
  return value;
}

/** A number option; `integer` also demands an integer, `min` a smallest value; undefined stays undefined. */
export function numberOption(
  command: string,
  name: string,
  value: string | undefined,
  integer = false,
  min = -Infinity,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) {
    const what = `${integer ? 'an integer' : 'a number'}${min > -Infinity ? ` ≥ ${min}` : ''}`;
    throw new CliError('USAGE', `${command}: --${name}: expected ${what}, got "${value}"`, {
      command,
      field: name,
      actual: value,
    });
  }
  return n;
}

/** The `--backend` option shared by commands that compute. */
export const backendOption: OptionSpec = { backend: undefined };

export async function startBackend(backend: string | undefined, io: Io): Promise<void> {
  const info = await initBackend({ backend: (backend ?? 'auto') as BackendName });
  io.stderr(`[hyperllama] backend: ${info.name} (${info.reason})\n`);
}
