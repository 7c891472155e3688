import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// Every command in the README's shell blocks, checked as a user would run it from a checkout after `npm ci`:
// - `npx <bin> …`: the bin is linked by npm ci to a committed launcher, `<command> --help` succeeds and names every
//   option the README uses (and every `--set` key); commands without placeholders run for real when cheap
//   (stories260K convert/generate with the files in the current directory, `--quick` runs, the analyses on the
//   quick run's checkpoint with `--quick`);
// - `npm …`: the script exists; `npm start -- --quick` runs (its output goes to a temporary folder); `npm start`
//   (15 minutes) and `npm test` (what runs this) do not;
// - `curl …`: the serving session, run against a live server by apps/server/test/readme.test.ts;
// - anything else must be taught to this file, so an unchecked command cannot slip in.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const STORIES = join(root, '..', 'shared', 'models', 'stories260K');
const storiesFiles = ['stories260K.bin', 'tok512.bin'];
const haveStories = storiesFiles.every((f) => existsSync(join(STORIES, f)));
const readme = readFileSync(join(root, 'README.md'), 'utf8');

interface Command {
  line: number;
  text: string;
}

/** The commands of the README's ```sh blocks: comments dropped, `\` continuations joined, `&&` chains split. */
export function readmeCommands(markdown: string): Command[] {
  const out: Command[] = [];
  const lines = markdown.split('\n');
  let inBlock = false;
  let pending: Command | null = null;
  lines.forEach((raw, i) => {
    if (raw.startsWith('```')) {
      inBlock = !inBlock && /^```(sh|bash|shell)\s*$/.test(raw);
      return;
    }
    if (!inBlock) return;
    const line = raw.replace(/(^|\s)#.*$/, '').trimEnd();
    const cont = line.endsWith('\\');
    const body = cont ? line.slice(0, -1) : line;
    pending = pending
      ? { line: pending.line, text: `${pending.text} ${body.trim()}` }
      : { line: i + 1, text: body.trim() };
    if (!cont) {
      for (const part of pending.text.split(/\s&&\s/))
        if (part.trim()) out.push({ line: pending.line, text: part.trim() });
      pending = null;
    }
  });
  return out;
}

/** Shell words, with quotes removed and each `<placeholder>` kept as one word. */
function words(text: string): string[] {
  const re = /"([^"]*)"|'([^']*)'|(\S*<[^>]*>\S*)|(\S+)/g;
  return [...text.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]);
}
const hasPlaceholder = (ws: string[]) => ws.some((w) => /<[^>]*>/.test(w));

function run(cmd: string, args: string[], cwd: string, timeout = 120_000) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, FORCE_COLOR: '0' } });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', all: `${r.stdout}\n${r.stderr}` };
}

// A user's working directory inside the checkout (npx finds the workspace's bins from here; git ignores .tmp-*), with
// stories260K's files next to them as the README's convert line expects.
const work = join(root, `.tmp-readme-${process.pid}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
if (haveStories) for (const f of storiesFiles) symlinkSync(join(STORIES, f), join(work, f));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const vars: Record<string, string> = {};
const expand = (text: string) => text.replace(/\$(\w+)|\$\{(\w+)\}/g, (_, a, b) => vars[a ?? b] ?? `$${a ?? b}`);
const scriptsOf = (ws?: string) => {
  const dir = ws ? join(root, ws.startsWith('@hyperllama/') ? findWorkspace(ws) : ws) : root;
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).scripts as Record<string, string>;
};
function findWorkspace(name: string): string {
  const dirs = ['packages', 'apps', 'tools'].flatMap((g) =>
    existsSync(join(root, g)) ? readdirSync(join(root, g)).map((n) => `${g}/${n}`) : [],
  );
  const hit = dirs.find(
    (d) =>
      existsSync(join(root, d, 'package.json')) &&
      JSON.parse(readFileSync(join(root, d, 'package.json'), 'utf8')).name === name,
  );
  if (!hit) throw new Error(`no workspace named ${name}`);
  return hit;
}

/** `--help` of the command (bin plus its subcommand words) must list every option the README passes it. */
function expectOptionsDocumented(bin: string, ws: string[]) {
  const sub = [];
  for (const w of ws) {
    if (w.startsWith('-')) break;
    sub.push(w);
  }
  // `--` keeps npx from taking `--help` for itself when the bin has no subcommand (hyperllama-serve --help).
  const help = run('npx', ['--no', '--', bin, ...sub, '--help'], work);
  expect(help.code, `${bin} ${sub.join(' ')} --help:\n${help.all}`).toBe(0);
  for (const [i, w] of ws.entries()) {
    const flag = w.match(/^(--[\w-]+)/)?.[1];
    if (flag) expect(help.all, `${bin} ${sub.join(' ')} --help names ${flag}`).toMatch(new RegExp(`${flag}(?![\\w-])`));
    if (w === '--set') {
      const key = ws[i + 1].split('=')[0];
      expect(help.all, `${bin} ${sub.join(' ')} --help names the option ${key}`).toMatch(
        new RegExp(`(^|\\s)${key.replace('.', '\\.')}\\s`, 'm'),
      );
    }
  }
  return sub;
}

const commands = readmeCommands(readme);

describe('the README', () => {
  it('has shell blocks with the set-up, the main job, the tests and the CLIs', () => {
    const texts = commands.map((c) => c.text);
    for (const c of ['npm ci', 'npm start', 'npm test']) expect(texts).toContain(c);
    expect(texts.some((t) => t.startsWith('npx hyperllama-eval convert'))).toBe(true);
    expect(texts.some((t) => t.startsWith('npx hyperllama-train'))).toBe(true);
  });

  it('the commands are split as a shell would', () => {
    const md = ['```sh', 'A=1 # set', 'npx x a \\', '   --b "c d" && npm test', '```', '```', 'not sh', '```'].join(
      '\n',
    );
    expect(readmeCommands(md)).toEqual([
      { line: 2, text: 'A=1' },
      { line: 3, text: 'npx x a --b "c d"' },
      { line: 3, text: 'npm test' },
    ]);
    expect(words('--set data.tasks=<S-NI or MetaICL dir> --prompt "Once upon"')).toEqual([
      '--set',
      'data.tasks=<S-NI or MetaICL dir>',
      '--prompt',
      'Once upon',
    ]);
  });
});

describe.each(commands.map((c) => [`README line ${c.line}: ${c.text}`, c] as const))('%s', (_title, c) => {
  const ws = words(c.text);
  const [head, ...rest] = ws;

  if (/^[A-Z_]+=\S+$/.test(c.text)) {
    it('sets a variable later commands use', () => {
      const [name, value] = c.text.split('=');
      vars[name] = value;
      expect(commands.some((o) => o.line > c.line && o.text.includes(`$${name}`))).toBe(true);
    });
    return;
  }

  if (head === 'npm') {
    const w = rest.indexOf('-w');
    const workspace = w >= 0 ? rest[w + 1] : undefined;
    const script = rest[0] === 'run' ? rest[1] : rest[0];
    const extra = rest.includes('--') ? rest.slice(rest.indexOf('--') + 1) : [];
    if (script === 'ci') {
      it('installs from the committed lock file', () => {
        expect(
          JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')).lockfileVersion,
        ).toBeGreaterThanOrEqual(2);
      });
      return;
    }
    it(`runs the script "${script}"${workspace ? ` of ${workspace}` : ''}, which exists`, () => {
      expect(Object.keys(scriptsOf(workspace))).toContain(script);
      if (script === 'test') expect(scriptsOf().test).toBe('node tools/scripts/run-tests.mjs');
    });
    if (script === 'start' && extra.includes('--quick')) {
      it('runs at toy size and names the checkpoint and the report it wrote', () => {
        // --ignore-scripts skips prestart's build (nx already built the evaluator for this test); --out keeps the
        // run out of runs/default, and is where later commands (CK=runs/default/…) find it.
        const out = join(work, 'runs', 'default');
        const r = run('npm', ['start', '--ignore-scripts', '--', ...extra, '--out', out], work, 900_000);
        expect(r.code, r.all.slice(-3000)).toBe(0);
        const checkpoint = r.stdout.match(/HyperLlama checkpoint: (\S+)/)?.[1];
        expect(checkpoint).toBe(join(out, 'multitask-hyperllama', 'final', 'hyperllama'));
        expect(existsSync(checkpoint!)).toBe(true);
        const report = r.stdout.match(/report: (\S+)/)?.[1];
        expect(existsSync(report!)).toBe(true);
      }, 900_000);
    }
    if (script === 'bench' && extra.length) {
      it('passes options the benchmark knows', () => {
        const help = run('node', [join(root, 'tools', 'bench', 'dist', 'cli.js'), '--help'], root);
        expect(help.code, help.all).toBe(0);
        for (const f of extra.filter((x) => x.startsWith('--'))) expect(help.all).toContain(f);
      });
    }
    return;
  }

  if (head === 'npx') {
    const bin = rest[0];
    const args = rest.slice(1);
    it(`${bin} is linked by npm ci to a committed launcher`, () => {
      const link = join(root, 'node_modules', '.bin', bin);
      expect(existsSync(link), `${link} (npm ci links bins whose target exists at install time)`).toBe(true);
      const target = realpathSync(link);
      expect(target).toMatch(/\/(apps|packages|tools)\/[^/]+\/bin\/[^/]+\.js$/);
      expect(
        run('git', ['ls-files', '--error-unmatch', target.slice(root.length + 1)], root).code,
        `${target} is committed`,
      ).toBe(0);
    });
    it('--help of the command names every option the README passes', () => {
      expectOptionsDocumented(bin, args);
    });
    const sub = args.filter((a) => !a.startsWith('-')).slice(0, 2);
    const cheap =
      !hasPlaceholder(args) &&
      ((bin === 'hyperllama-eval' && ['convert', 'generate'].includes(sub[0])) ||
        args.includes('--quick') ||
        sub[0] === 'analyze');
    if (cheap) {
      const usesStories = storiesFiles.some((f) => args.includes(f)) || args.includes('stories-hf');
      it.skipIf(usesStories && !haveStories)(
        `runs as written${sub[0] === 'analyze' ? ' (with --quick)' : ''}${usesStories ? ` (needs ${STORIES})` : ''}`,
        () => {
          const argv = words(expand(c.text)).slice(2);
          if (sub[0] === 'analyze' && !argv.includes('--quick')) argv.push('--quick');
          const r = run('npx', ['--no', bin, ...argv], work, 900_000);
          expect(r.code, r.all.slice(-3000)).toBe(0);
          if (sub[0] === 'convert') {
            const out = join(work, argv[argv.indexOf('--out') + 1]);
            for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
              expect(existsSync(join(out, f))).toBe(true);
          }
          if (sub[0] === 'generate' && argv[argv.indexOf('--model') + 1] === 'stories-hf') {
            // Greedy decoding of stories260K is llama2.c's own text, so the prompt and its continuation are a prefix of it.
            const prompt = argv[argv.indexOf('--prompt') + 1];
            expect(r.stdout.trim().length).toBeGreaterThan(10);
            expect(
              readFileSync(join(STORIES, 'expected_greedy.txt'), 'utf8').startsWith(prompt + r.stdout.trimEnd()),
            ).toBe(true);
          }
          if (sub[0] === 'analyze')
            expect(existsSync(join(work, 'runs', 'analyze', sub[1], 'results.json'))).toBe(true);
        },
        900_000,
      );
    }
    return;
  }

  if (head === 'curl') {
    // The serving session: apps/server/test/readme.test.ts runs these against a live hyperllama-serve and compares
    // the answers the README shows.
    it("calls the README's hyperllama-serve (run against a live server by apps/server/test/readme.test.ts)", () => {
      expect(c.text).toMatch(/^curl -s\S* localhost:8080\//);
      expect(existsSync(join(root, 'apps', 'server', 'test', 'readme.test.ts'))).toBe(true);
    });
    return;
  }

  if (String(head).endsWith('python3')) {
    it('runs a committed script whose options include those used', () => {
      const script = readFileSync(join(root, rest[0]), 'utf8');
      for (const f of rest.filter((x) => x.startsWith('--'))) expect(script).toContain(`"${f}"`);
    });
    return;
  }

  it('is a command this test knows how to check', () => {
    expect.fail(
      `README line ${c.line}: "${c.text}" is not checked; teach tools/repo-checks/test/readme.test.ts to run or check it`,
    );
  });
});
