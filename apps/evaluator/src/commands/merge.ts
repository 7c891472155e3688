import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  PARTIAL_FILE,
  formatTable,
  mergePartialReports,
  parsePartialReport,
  writeReport,
  type PartialReport,
} from '@hyperllama/eval';
import { CliError, requireOption, type Command, type Io } from '../cli-kit.js';

/** The partial report in a shard's directory (`partial.json`), or that file itself. */
export function readPartialReport(path: string): PartialReport {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, PARTIAL_FILE) : path;
  if (!existsSync(file))
    throw new CliError('NO_PARTIAL_REPORT', `merge: ${file}: no partial report (written by run --shard i/n)`, {
      file,
    });
  return parsePartialReport(readFileSync(file, 'utf8'), file);
}

/** Joins the partial reports in `dirs` (each written by `run --shard i/n`) into the unsharded report, written to `out`. */
export function mergeReports(dirs: readonly string[], out: string) {
  const report = mergePartialReports(dirs.map((d) => readPartialReport(d)));
  return { report, paths: writeReport(report, out) };
}

export const mergeCommand: Command = {
  summary: 'merge the partial reports of `run --shard i/n` (one directory per shard) into the report of the whole run',
  usage:
    'hyperllama-eval merge <shard dir|partial.json> ... --out <dir>\n' +
    '  Every shard 0..n-1 of one run must be given once; writes results.json, results.md and the SVGs as the\n' +
    '  unsharded run would (same numbers; only the creation time differs).',
  async run(argv: string[], io: Io) {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: { out: { type: 'string' } }, strict: true, allowPositionals: true });
    } catch (e) {
      throw new CliError('USAGE', `merge: ${(e as Error).message}`, { command: 'merge' });
    }
    const out = requireOption('merge', 'out', parsed.values.out);
    if (parsed.positionals.length === 0)
      throw new CliError('USAGE', 'merge: give the shard directories (or their partial.json files)', {
        field: 'dirs',
      });
    const { report, paths } = mergeReports(parsed.positionals, out);
    io.stdout(formatTable(report));
    io.stdout(
      `report: ${paths.json}\n        ${paths.markdown}\n        ${paths.chart}\n${paths.curves ? `        ${paths.curves}\n` : ''}`,
    );
  },
};
