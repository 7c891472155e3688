// The totals run-tests.mjs prints, from the vitest JSON reports of every project (kept apart so they are tested:
// tools/repo-checks/test/run-tests.test.ts).
//
// A test that did not run (skipped, todo, pending) is a skip. With `ci` true a skip counts as failed unless an entry
// of the allow-list names its file and a condition that holds on this machine (e.g. no WebGPU adapter exists): a
// skip must be explained by the machine, never by a missing input or a broken dependency.

/**
 * @typedef {{ file: string, when: string, reason: string, test?: string }} AllowEntry
 *   file: path of the test file from the repository root; when: a condition name (see run-tests.mjs); reason: why
 *   the skip is acceptable; test: optional regular expression the test's full name must match.
 * @typedef {{ holds: boolean, why: string }} Condition
 * @typedef {{ project: string, result: any | null }} ProjectReport  result: the parsed .vitest-result.json, or null
 */

/**
 * @param {ProjectReport[]} reports
 * @param {{ root: string, ci: boolean, allow: AllowEntry[], conditions: Record<string, Condition>, problems?: string[] }} options
 *   problems: failures found before the tests ran (e.g. ../shared missing in CI); each counts as one failed test.
 */
export function summarize(reports, { root, ci, allow, conditions, problems = [] }) {
  let passed = 0;
  let failed = problems.length;
  const failures = [...problems];
  const skipped = [];
  const missing = [];
  for (const { project, result } of reports) {
    if (!result) {
      missing.push(project);
      continue;
    }
    for (const file of result.testResults ?? []) {
      const path = file.name.startsWith(root) ? file.name.slice(root.length + 1) : file.name;
      const tests = file.assertionResults ?? [];
      // A file that failed with no failed test (it crashed, or a beforeAll/afterAll hook failed and vitest marked
      // its tests skipped) counts as one failure.
      if (file.status === 'failed' && !tests.some((t) => t.status === 'failed')) {
        failed++;
        failures.push(
          `${path}: ${(file.message || (tests.length ? 'a hook failed, so its tests did not run' : 'crashed before its tests ran')).split('\n')[0]}`,
        );
      }
      for (const t of tests) {
        if (t.status === 'passed') passed++;
        else if (t.status === 'failed') {
          failed++;
          failures.push(`${path} › ${t.fullName}`);
        } else skipped.push({ file: path, name: t.fullName, ...allowance(path, t.fullName, allow, conditions) });
      }
    }
  }
  if (missing.length) {
    // A project that wrote no report ran no tests we can count: that is a failure, not a pass.
    failed += missing.length;
    failures.push(...missing.map((p) => `${p}: no test results (its build or test run failed before vitest reported)`));
  }
  const notAllowed = skipped.filter((s) => !s.allowed);
  if (ci) failed += notAllowed.length; // listed with the skipped tests, marked FAILED
  return { passed, failed, skipped, notAllowed, failures, missing };
}

/** Whether an allow-list entry covers this skipped test on this machine, and why (or why not). */
function allowance(file, name, allow, conditions) {
  const entries = allow.filter((a) => a.file === file && (!a.test || new RegExp(a.test).test(name)));
  for (const a of entries) {
    const c = conditions[a.when];
    if (c?.holds) return { allowed: true, reason: `${a.reason} (${c.why})` };
  }
  if (entries.length) {
    const c = conditions[entries[0].when];
    return {
      allowed: false,
      reason: `allow-listed only when ${entries[0].when}, which does not hold here${c ? ` (${c.why})` : ''}`,
    };
  }
  return { allowed: false, reason: 'not on the allow-list' };
}

/** The report's closing lines; the last is always exactly "N passed, N failed" (the CI harness parses it). */
export function formatTotals(summary, { ci }) {
  const lines = [];
  const { skipped, notAllowed } = summary;
  if (skipped.length) {
    lines.push('skipped tests:');
    for (const s of skipped)
      lines.push(`  ${s.allowed ? 'allowed' : ci ? 'FAILED' : 'skipped'}: ${s.file} › ${s.name} — ${s.reason}`);
  }
  if (summary.failures.length) {
    lines.push('failures:');
    for (const f of summary.failures) lines.push(`  ${f}`);
  }
  const reasons = new Map();
  for (const s of skipped.filter((x) => x.allowed)) reasons.set(s.reason, (reasons.get(s.reason) ?? 0) + 1);
  const allowedText = [...reasons].map(([r, n]) => `${n}: ${r}`).join('; ');
  const allowedCount = skipped.length - notAllowed.length;
  let line = `${skipped.length} skipped (allowed: ${allowedCount}${allowedText ? ` — ${allowedText}` : ''}`;
  if (notAllowed.length)
    line += `; not allowed: ${notAllowed.length}${ci ? ', counted as failed because CI=true' : ', which CI counts as failed'}`;
  lines.push(`${line})`);
  lines.push(`${summary.passed} passed, ${summary.failed} failed`);
  return lines;
}
