import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain .mjs script without types
import { formatTotals, summarize } from '../../scripts/test-totals.mjs';

// The totals `npm test` prints (tools/scripts/run-tests.mjs) must count every test that did not run, and with CI=true
// count it as failed unless the allow-list explains it by a condition that holds on the machine.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const R = '/repo';

type Status = 'passed' | 'failed' | 'skipped' | 'pending' | 'todo';
const report = (files: Record<string, [string, Status][]>, crashed: string[] = []) => ({
  testResults: [
    ...Object.entries(files).map(([f, tests]) => ({
      name: `${R}/${f}`,
      status: tests.some(([, s]) => s === 'failed') ? 'failed' : 'passed',
      message: '',
      assertionResults: tests.map(([fullName, status]) => ({ fullName, status })),
    })),
    ...crashed.map((f) => ({
      name: `${R}/${f}`,
      status: 'failed',
      message: 'SyntaxError: boom',
      assertionResults: [],
    })),
  ],
});

const allow = [
  { file: 'packages/runtime/test/webgpu.test.ts', when: 'no-webgpu-adapter', reason: 'needs a WebGPU adapter' },
  { file: 'packages/runtime/test/native.test.ts', when: 'native-addon-unavailable', reason: 'optional addon absent' },
];
const machine = (adapter: boolean, addon: boolean) => ({
  'no-webgpu-adapter': { holds: !adapter, why: adapter ? 'adapter: opengles' : 'no WebGPU adapter on this machine' },
  'native-addon-unavailable': { holds: !addon, why: addon ? 'built' : 'cannot build' },
});
const reports = [
  {
    project: 'packages/runtime',
    result: report({
      'packages/runtime/test/a.test.ts': [
        ['adds', 'passed'],
        ['subtracts', 'passed'],
        ['later', 'todo'],
      ],
      'packages/runtime/test/webgpu.test.ts': [['webgpu matches cpu', 'skipped']],
      'packages/runtime/test/native.test.ts': [
        ['native matMul', 'skipped'],
        ['native loss', 'skipped'],
      ],
    }),
  },
  {
    project: 'packages/llama-model',
    result: report(
      {
        'packages/llama-model/test/s.test.ts': [
          ['stories260K (needs ../shared)', 'skipped'],
          ['x', 'failed'],
        ],
      },
      ['packages/llama-model/test/crash.test.ts'],
    ),
  },
];

describe('test totals', () => {
  it('outside CI, skips are counted and listed but do not fail', () => {
    const s = summarize(reports, { root: R, ci: false, allow, conditions: machine(false, false) });
    expect([s.passed, s.failed, s.skipped.length]).toEqual([2, 2, 5]); // 1 failed test + 1 crashed file
    const lines = formatTotals(s, { ci: false });
    expect(lines.at(-1)).toBe('2 passed, 2 failed');
    expect(lines.at(-2)).toMatch(/^5 skipped \(allowed: 3 — .*; not allowed: 2, which CI counts as failed\)$/);
    expect(lines).toContain(
      '  skipped: packages/llama-model/test/s.test.ts › stories260K (needs ../shared) — not on the allow-list',
    );
  });

  it('with CI=true a skip fails unless an allow-list entry holds on this machine', () => {
    const none = summarize(reports, { root: R, ci: true, allow, conditions: machine(false, false) });
    expect(none.failed).toBe(2 + 2); // the todo and the ../shared skip are on no allow-list
    // On a machine with an adapter and the addon built, those skips have no excuse either.
    const equipped = summarize(reports, { root: R, ci: true, allow, conditions: machine(true, true) });
    expect(equipped.failed).toBe(2 + 5);
    const lines = formatTotals(equipped, { ci: true });
    expect(lines.at(-1)).toBe('2 passed, 7 failed');
    expect(lines.at(-2)).toBe('5 skipped (allowed: 0; not allowed: 5, counted as failed because CI=true)');
    expect(lines.join('\n')).toMatch(
      /FAILED: packages\/runtime\/test\/webgpu\.test\.ts › webgpu matches cpu — allow-listed only when no-webgpu-adapter, which does not hold here \(adapter: opengles\)/,
    );
  });

  it('a file whose hook failed (its tests reported skipped, none failed) is a failure', () => {
    // What vitest writes when beforeAll throws: the file failed, every test skipped, no message.
    const result = {
      testResults: [
        {
          name: `${R}/packages/runtime/test/webgpu.test.ts`,
          status: 'failed',
          message: '',
          assertionResults: [{ fullName: 'webgpu matches cpu', status: 'skipped' }],
        },
      ],
    };
    const s = summarize([{ project: 'packages/runtime', result }], {
      root: R,
      ci: false,
      allow,
      conditions: machine(false, false),
    });
    expect([s.passed, s.failed, s.skipped.length]).toEqual([0, 1, 1]);
    expect(s.failures).toEqual(['packages/runtime/test/webgpu.test.ts: a hook failed, so its tests did not run']);
  });

  it('a project without a report and problems found before the run are failures', () => {
    const s = summarize([{ project: 'apps/trainer', result: null }], {
      root: R,
      ci: true,
      allow,
      conditions: machine(false, false),
      problems: ['../shared is missing'],
    });
    expect(s.failed).toBe(2);
    expect(formatTotals(s, { ci: true }).at(-1)).toBe('0 passed, 2 failed');
  });

  it('the allow-list names existing test files, known conditions and a reason', () => {
    const list = JSON.parse(readFileSync(join(root, 'tools', 'scripts', 'allowed-skips.json'), 'utf8'))
      .allowed as typeof allow;
    expect(list.length).toBeGreaterThan(0);
    for (const a of list) {
      expect(readFileSync(join(root, a.file), 'utf8').length).toBeGreaterThan(0);
      expect(['no-webgpu-adapter', 'native-addon-unavailable', 'no-prebuilt-for-platform']).toContain(a.when);
      expect(a.reason.length).toBeGreaterThan(10);
    }
  });

  it('the test cache fingerprint changes with ../shared, optional backends and the adapter, and prints one line', () => {
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, [join(root, 'tools', 'scripts', 'test-inputs.mjs')], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      });
    const a = run({});
    expect(a.status).toBe(0);
    expect(a.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    expect(run({}).stdout).toBe(a.stdout);
    // Restricting the adapter to one that never exists here changes what the probe finds, and so the fingerprint.
    expect(run({ HYPERLLAMA_WEBGPU_ADAPTER: 'none-such' }).stdout).not.toBe(a.stdout);
  });

  it('the fingerprint depends on the contents of ../shared', () => {
    // The script reads <its repo>/../shared: give a copy of it a fake repository with and without a shared folder.
    const tmp = mkdtempSync(join(tmpdir(), 'test-inputs-'));
    try {
      const scripts = join(tmp, 'repo', 'tools', 'scripts');
      mkdirSync(scripts, { recursive: true });
      for (const f of ['test-inputs.mjs', 'webgpu-adapter.mjs'])
        copyFileSync(join(root, 'tools', 'scripts', f), join(scripts, f));
      const fingerprint = () =>
        spawnSync(process.execPath, [join(scripts, 'test-inputs.mjs')], { encoding: 'utf8' }).stdout;
      const absent = fingerprint();
      mkdirSync(join(tmp, 'shared', 'models'), { recursive: true });
      writeFileSync(join(tmp, 'shared', 'models', 'm.bin'), 'a');
      const one = fingerprint();
      writeFileSync(join(tmp, 'shared', 'models', 'm.bin'), 'b');
      const changed = fingerprint();
      writeFileSync(join(tmp, 'shared', 'NOTES.md'), 'notes are not test inputs');
      expect(new Set([absent, one, changed]).size).toBe(3);
      expect(fingerprint()).toBe(changed);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
