// The public exports of each workspace package (what `src/index.ts` exports, `export *` resolved, types included) and
// the export table of its README (the rows `| \`name\` | what |` under "## Exports").
//
//   node tools/scripts/exports.mjs                 per-package counts and the total
//   node tools/scripts/exports.mjs --list <dir>    one line per export: name, kind, first sentence of its doc comment
//   node tools/scripts/exports.mjs --table <dir>   the README table: descriptions kept from the README, else the doc comment
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Workspace folders (relative to the root) whose `src/index.ts` is a public entry point. */
export function entryPackages(groups = ['packages', 'apps']) {
  return groups.flatMap((group) =>
    readdirSync(join(root, group))
      .map((name) => `${group}/${name}`)
      .filter((dir) => existsSync(join(root, dir, 'package.json')) && existsSync(join(root, dir, 'src', 'index.ts'))),
  );
}

function kindOf(checker, symbol) {
  const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
  const decl = target.declarations?.[0];
  if (!decl) return { kind: 'unknown', summary: '' };
  const kind = ts.isFunctionDeclaration(decl)
    ? 'function'
    : ts.isClassDeclaration(decl)
      ? 'class'
      : ts.isInterfaceDeclaration(decl) || ts.isTypeAliasDeclaration(decl)
        ? 'type'
        : ts.isEnumDeclaration(decl)
          ? 'enum'
          : ts.isVariableDeclaration(decl)
            ? 'const'
            : ts.SyntaxKind[decl.kind];
  const doc = ts.displayPartsToString(target.getDocumentationComment(checker)).replace(/\s+/g, ' ').trim();
  // The first sentence (a period followed by a capital, a backtick or the end), at most about 160 characters.
  let sentence = /^(.*?\.)(?=\s+[A-Z`(]|$)/.exec(doc)?.[1] ?? doc;
  if (sentence.length > 160) sentence = sentence.slice(0, sentence.lastIndexOf(' ', 157)) + ' …';
  return { kind, summary: sentence.replace(/\{@link\s+([^}\s|]+)[^}]*\}/g, '`$1`') };
}

/**
 * The exports of each package's `src/index.ts`, by folder (relative to the root): name, kind (function, class, type,
 * const, enum) and the first sentence of the declaration's doc comment. One TypeScript program for all of them.
 */
export function packageExports(dirs = entryPackages()) {
  const entries = dirs.map((dir) => join(root, dir, 'src', 'index.ts'));
  const program = ts.createProgram(entries, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const out = new Map();
  dirs.forEach((dir, i) => {
    const source = program.getSourceFile(entries[i]);
    const module = source && checker.getSymbolAtLocation(source);
    const symbols = module ? checker.getExportsOfModule(module) : [];
    out.set(
      dir,
      symbols.map((s) => ({ name: s.name, ...kindOf(checker, s) })).sort((a, b) => a.name.localeCompare(b.name, 'en')),
    );
  });
  return out;
}

/** The README's export table (the first table under a heading "Exports"): name → description. */
export function readmeExports(markdown) {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#{2,3}\s+Exports\b/.test(l));
  const rows = new Map();
  if (start < 0) return rows;
  let seenTable = false;
  for (const line of lines.slice(start + 1)) {
    if (/^#{1,3}\s/.test(line)) break;
    if (!line.startsWith('|')) {
      if (seenTable) break;
      continue;
    }
    seenTable = true;
    const m = /^\|\s*`([A-Za-z_$][\w$]*)`\s*\|(.*)\|\s*$/.exec(line);
    if (m) rows.set(m[1], m[2].trim());
  }
  return rows;
}

const escapeCell = (text) => text.replace(/\|/g, '\\|');

/** The export table for a package folder: its README's descriptions where present, else the doc comment's. */
export function exportTable(dir, exports = packageExports([dir]).get(dir)) {
  const readme = join(root, dir, 'README.md');
  const known = existsSync(readme) ? readmeExports(readFileSync(readme, 'utf8')) : new Map();
  const rows = exports.map((e) => `| \`${e.name}\` | ${known.get(e.name) || escapeCell(e.summary) || `(${e.kind})`} |`);
  return ['| export | what |', '| --- | --- |', ...rows].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [flag, dirArg] = process.argv.slice(2);
  const dir = dirArg && relative(root, join(process.cwd(), dirArg));
  if (flag === '--table') console.log(exportTable(dir));
  else if (flag === '--list')
    for (const e of packageExports([dir]).get(dir)) console.log(`${e.name}\t${e.kind}\t${e.summary}`);
  else {
    let total = 0;
    for (const [d, exports] of packageExports()) {
      total += exports.length;
      console.log(`${d}\t${exports.length}`);
    }
    console.log(`total\t${total}`);
  }
}
