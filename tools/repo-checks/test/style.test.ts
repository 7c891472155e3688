import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The tree's habits, checked on every test run (so CI runs them): prettier at width 120 leaves every source
 * unchanged, and every workspace's lint (oxlint, type-aware, floating promises included) reports 0 warnings.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

describe('style', () => {
  it('prettier finds nothing to reformat (fix with `npm run format`)', () => {
    const r = spawnSync(
      process.execPath,
      [join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs'), '--list-different', '.'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(r.stderr.trim()).toBe('');
    // --list-different exits 1 and names each file that is not formatted.
    expect(r.stdout.trim().split('\n').filter(Boolean)).toEqual([]);
    expect(r.status).toBe(0);
  }, 120_000);

  it('every workspace lints with 0 warnings and 0 errors', () => {
    const r = spawnSync(npm, ['run', 'lint', '--workspaces', '--if-present'], { cwd: root, encoding: 'utf8' });
    const out = `${r.stdout}\n${r.stderr}`;
    const found = [...out.matchAll(/Found (\d+) warnings? and (\d+) errors?/g)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    expect(found.length, out).toBeGreaterThan(10);
    expect(
      found.filter(([w, e]) => w > 0 || e > 0),
      out,
    ).toEqual([]);
    expect(r.status, out).toBe(0);
  }, 300_000);
});
