import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { serve, type RunningServer } from '../src/server.js';

// The root README's serving session, run as written against a live server of the embedded default (its address put
// in place of localhost:8080): every `curl` command of its sh blocks, with the answers its `# …` lines show, and its
// `openai` snippet.
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const run = promisify(execFile);

interface Curl {
  line: number;
  command: string;
  /** The `# …` lines right after it: the answer it shows. */
  shown: string;
}

/** `curl` commands of the README's sh blocks (`\` continuations joined) with the comment lines that follow each. */
function curlCommands(markdown: string): Curl[] {
  const out: Curl[] = [];
  let inBlock = false;
  let pending: Curl | null = null;
  let last: Curl | null = null;
  markdown.split('\n').forEach((raw, i) => {
    if (raw.startsWith('```')) {
      inBlock = !inBlock && /^```(sh|bash|shell)\s*$/.test(raw);
      last = null;
      return;
    }
    if (!inBlock) return;
    if (raw.startsWith('#') && last) {
      last.shown += raw.slice(1).trim() + '\n';
      return;
    }
    const line = raw.replace(/(^|\s)#.*$/, '').trimEnd();
    const cont = line.endsWith('\\');
    const body = (cont ? line.slice(0, -1) : line).trim();
    pending = pending
      ? { ...pending, command: `${pending.command} ${body}` }
      : { line: i + 1, command: body, shown: '' };
    if (!cont) {
      last = pending.command.startsWith('curl ') ? pending : null;
      if (last) out.push(last);
      pending = null;
    }
  });
  return out;
}

/** The `"key":value` pairs an answer shows (values elided with … are not compared). */
function shownPairs(shown: string): string[] {
  return [...shown.matchAll(/"(\w+)":("[^"]*"|-?[\d.]+|null|true|false)/g)]
    .map((m) => `"${m[1]}":${m[2]}`)
    .filter((p) => !p.includes('…'));
}

function jsSnippet(markdown: string): string {
  const start = markdown.indexOf('```js\n', markdown.indexOf('## Serving'));
  expect(start, 'a js block in the Serving section').toBeGreaterThan(0);
  return markdown.slice(start + 6, markdown.indexOf('\n```', start + 6));
}

let server: RunningServer;
let store: string;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  store = mkdtempSync(join(tmpdir(), 'hl-readme-'));
  server = await serve({ port: 0, store });
});

afterAll(async () => {
  await server?.close();
  rmSync(store, { recursive: true, force: true });
  await disposeBackend();
});

const curls = curlCommands(readme);

describe('the README serving session', () => {
  it('has curl commands for prefixes, completions (whole and streamed) and classification', () => {
    const all = curls.map((c) => c.command).join('\n');
    for (const route of ['/v1/prefixes', '/v1/completions', '/v1/classify']) expect(all).toContain(route);
    expect(all).toContain('"stream": true');
  });

  it.each(curls.map((c) => [c.line, c] as const))(
    'README line %i runs as written and answers as shown',
    async (_l, c) => {
      expect(c.command).toContain('localhost:8080/');
      const command = c.command.replaceAll('localhost:8080', server.url.replace(/^http:\/\//, ''));
      const { stdout } = await run('bash', ['-c', command], { timeout: 120_000 });
      expect(stdout, c.command).not.toMatch(/"error":/);
      expect(stdout.length).toBeGreaterThan(0);
      for (const pair of shownPairs(c.shown)) expect(stdout, `README line ${c.line} shows ${pair}`).toContain(pair);
    },
  );

  it('its openai snippet runs and prints what its comment says', async () => {
    const code = jsSnippet(readme).replace('http://localhost:8080/v1', `${server.url}/v1`);
    const shown = code.match(/console\.log\(.*\); \/\/ (.*)$/m)?.[1];
    expect(shown).toBeDefined();
    // In the package folder, so `openai` resolves.
    const file = join(here, '..', `.tmp-readme-${process.pid}.mjs`);
    writeFileSync(file, code);
    try {
      const { stdout } = await run(process.execPath, [file], { timeout: 120_000 });
      const [first, ...rest] = stdout.split('\n');
      expect(first).toBe(shown);
      // The streamed text is the text of the whole answer.
      expect(JSON.stringify(rest.join('\n'))).toBe(shown!.split(' ').slice(1).join(' '));
    } finally {
      rmSync(file, { force: true });
    }
  });
});
