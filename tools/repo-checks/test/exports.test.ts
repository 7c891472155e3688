import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { entryPackages, packageExports, readmeExports, root } from '../../scripts/exports.mjs';

/**
 * Each package's README lists its public exports in a table under "## Exports" (`| \`name\` | what |`), and the table
 * names exactly what `src/index.ts` exports (types included, `export *` resolved by the TypeScript compiler), so the
 * two cannot drift: a new export needs a row, a removed one loses its row. `node tools/scripts/exports.mjs --table
 * packages/<name>` prints the table with the descriptions already written.
 */
const packages = entryPackages(['packages']);
// One TypeScript program for every package (about 20 s on 2 cores).
const exportsOf = packageExports(packages);

describe.each(packages)('the README of %s', (dir) => {
  const readme = readFileSync(join(root, dir, 'README.md'), 'utf8');
  const table = readmeExports(readme);
  const actual = exportsOf.get(dir)!;

  it('has an export table whose rows are exactly the exports of src/index.ts', () => {
    expect(actual.length, `${dir}/src/index.ts exports nothing`).toBeGreaterThan(0);
    const names = new Set(actual.map((e: { name: string }) => e.name));
    const missing = [...names].filter((n) => !table.has(n));
    const stale = [...table.keys()].filter((n) => !names.has(n));
    expect({ missing, stale }).toEqual({ missing: [], stale: [] });
  });

  it('says what each export is', () => {
    expect([...table].filter(([, what]) => what.length < 8).map(([name]) => name)).toEqual([]);
  });
});

describe('the export table parser', () => {
  it('reads the first table under "## Exports" and nothing after the next heading', () => {
    const md = [
      '# pkg',
      '| `notMe` | a table before the section |',
      '## Exports',
      'Intro.',
      '',
      '| export | what |',
      '| --- | --- |',
      '| `one` | The first. |',
      '| `Two` | A type with a \\| pipe. |',
      '',
      '| `three` | a second table |',
      '## Tests',
      '| `four` | another section |',
    ].join('\n');
    expect([...readmeExports(md)]).toEqual([
      ['one', 'The first.'],
      ['Two', 'A type with a \\| pipe.'],
    ]);
    expect(readmeExports('# no section\n| `x` | y |').size).toBe(0);
  });
});
