import { RuntimeError } from './errors.js';
import { isNode, nodeBuiltin, nodeProcess, requireNode } from './platform.js';

/**
 * What the loaders of every package read files through: Node's `fs` under Node (the default), or an in-memory map of
 * fetched or dropped files in a browser ({@link MemoryFileSystem}, installed with {@link setFileSystem} or
 * {@link withFileSystem}). Paths are the loaders' own (joined with {@link joinPath}); writing stays Node-only.
 */
export interface FileSystem {
  /** For messages: `node` or `memory`. */
  readonly name: string;
  exists(path: string): boolean;
  isDirectory(path: string): boolean;
  /** The file's bytes; an Error (ENOENT-like message) when it is missing or a directory. */
  readBytes(path: string): Uint8Array;
  /** The file as UTF-8 text. */
  readText(path: string): string;
  /** Names (not paths) of the entries of a directory, unsorted. */
  list(dir: string): string[];
}

interface NodeFs {
  existsSync(p: string): boolean;
  statSync(p: string): { isDirectory(): boolean };
  readFileSync(p: string): Uint8Array;
  readFileSync(p: string, enc: 'utf8'): string;
  readdirSync(p: string): string[];
}

interface NodePath {
  join(...parts: string[]): string;
  dirname(p: string): string;
  basename(p: string, ext?: string): string;
  extname(p: string): string;
  isAbsolute(p: string): boolean;
  resolve(...parts: string[]): string;
  relative(from: string, to: string): string;
}

let nodeFs: FileSystem | undefined;

/** Node's `fs` as a {@link FileSystem} (undefined outside Node). */
export function nodeFileSystem(): FileSystem | undefined {
  if (nodeFs) return nodeFs;
  const fs = nodeBuiltin<NodeFs>('fs');
  if (!fs) return undefined;
  nodeFs = {
    name: 'node',
    exists: (p) => fs.existsSync(p),
    isDirectory: (p) => fs.existsSync(p) && fs.statSync(p).isDirectory(),
    readBytes: (p) => fs.readFileSync(p),
    readText: (p) => fs.readFileSync(p, 'utf8'),
    list: (d) => fs.readdirSync(d),
  };
  return nodeFs;
}

let installed: FileSystem | null = null;

/** The file system loaders read: the installed one, else Node's; in a browser without one, a `NO_FILE_SYSTEM` error. */
export function fileSystem(): FileSystem {
  const fs = installed ?? nodeFileSystem();
  if (!fs)
    throw new RuntimeError(
      'NO_FILE_SYSTEM',
      'no file system: in a browser, install the fetched or dropped files first (setFileSystem(new MemoryFileSystem(...)))',
    );
  return fs;
}

/** Install `fs` for every loader (null: back to Node's); returns the one it replaces. */
export function setFileSystem(fs: FileSystem | null): FileSystem | null {
  const previous = installed;
  installed = fs;
  return previous;
}

/** Runs the synchronous `f` with `fs` installed, then restores the previous file system. */
export function withFileSystem<T>(fs: FileSystem, f: () => T): T {
  const previous = setFileSystem(fs);
  try {
    return f();
  } finally {
    setFileSystem(previous);
  }
}

// ---- paths: Node's own path module under Node, POSIX rules (root "/") in a browser ----

function nodePath(): NodePath | undefined {
  return isNode() ? nodeBuiltin<NodePath>('path') : undefined;
}

/** POSIX normalisation: collapses `//`, `.` and `..` (a relative path keeps leading `..`). */
function normalize(p: string): string {
  const absolute = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (part !== '..' || !absolute) out.push(part);
  }
  const body = out.join('/');
  return absolute ? `/${body}` : body || '.';
}

export function joinPath(...parts: string[]): string {
  return nodePath()?.join(...parts) ?? normalize(parts.filter((p) => p !== '').join('/') || '.');
}

export function dirnamePath(p: string): string {
  const np = nodePath();
  if (np) return np.dirname(p);
  const trimmed = p.length > 1 ? p.replace(/\/+$/, '') : p;
  const i = trimmed.lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : trimmed.slice(0, i);
}

export function basenamePath(p: string, ext?: string): string {
  const np = nodePath();
  if (np) return np.basename(p, ext);
  const base = p.replace(/\/+$/, '').split('/').pop() ?? '';
  return ext && base.endsWith(ext) && base !== ext ? base.slice(0, -ext.length) : base;
}

export function extnamePath(p: string): string {
  const np = nodePath();
  if (np) return np.extname(p);
  const base = basenamePath(p);
  const i = base.lastIndexOf('.');
  return i <= 0 ? '' : base.slice(i);
}

export function isAbsolutePath(p: string): boolean {
  return nodePath()?.isAbsolute(p) ?? p.startsWith('/');
}

/** An absolute path: against the working directory under Node, against `/` in a browser. */
export function resolvePath(...parts: string[]): string {
  const np = nodePath();
  if (np) return np.resolve(...parts);
  let out = '/';
  for (const p of parts) out = p.startsWith('/') ? p : `${out}/${p}`;
  return normalize(out);
}

export function relativePath(from: string, to: string): string {
  const np = nodePath();
  if (np) return np.relative(from, to);
  const a = resolvePath(from).split('/').filter(Boolean);
  const b = resolvePath(to).split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => '..'), ...b.slice(i)].join('/');
}

/** The working directory under Node, `/` in a browser. */
export function workingDirectory(): string {
  return nodeProcess()?.cwd() ?? '/';
}

// ---- an in-memory file system for browsers (and tests) ----

/** A dropped file or a Blob with a name (`webkitRelativePath` when a whole folder was dropped or picked). */
export interface NamedBlob {
  name: string;
  webkitRelativePath?: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/**
 * Files held in memory, keyed by resolved path ({@link resolvePath}): fetched from a URL base ({@link fromUrls}) or
 * dropped by the user ({@link fromFiles}). Directories exist implicitly as the prefixes of the files' paths.
 */
export class MemoryFileSystem implements FileSystem {
  readonly name = 'memory';
  private readonly files = new Map<string, Uint8Array>();

  constructor(entries: Iterable<[string, Uint8Array | string]> = []) {
    for (const [path, data] of entries) this.set(path, data);
  }

  set(path: string, data: Uint8Array | string): this {
    this.files.set(resolvePath(path), typeof data === 'string' ? new TextEncoder().encode(data) : data);
    return this;
  }

  /** Every file's resolved path, sorted. */
  paths(): string[] {
    return [...this.files.keys()].sort();
  }

  exists(path: string): boolean {
    return this.files.has(resolvePath(path)) || this.isDirectory(path);
  }

  isDirectory(path: string): boolean {
    const dir = resolvePath(path);
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    for (const key of this.files.keys()) if (key.startsWith(prefix)) return true;
    return false;
  }

  readBytes(path: string): Uint8Array {
    const data = this.files.get(resolvePath(path));
    if (!data)
      throw new Error(
        `ENOENT: no such file in memory, open '${path}'${this.isDirectory(path) ? ' (it is a directory)' : ''}`,
      );
    return data;
  }

  readText(path: string): string {
    return new TextDecoder().decode(this.readBytes(path));
  }

  list(dir: string): string[] {
    const d = resolvePath(dir);
    const prefix = d.endsWith('/') ? d : `${d}/`;
    const names = new Set<string>();
    for (const key of this.files.keys()) if (key.startsWith(prefix)) names.add(key.slice(prefix.length).split('/')[0]);
    if (names.size === 0 && !this.files.has(d))
      throw new Error(`ENOENT: no such directory in memory, scandir '${dir}'`);
    return [...names];
  }

  /**
   * Fetches `paths` (relative to `base`, a URL ending in `/` or not) and stores each under `root`/path. A failed
   * request is a `FETCH_FAILED` error naming the URL and status.
   */
  static async fromUrls(
    base: string,
    paths: readonly string[],
    opts: {
      root?: string;
      fetch?: (url: string) => Promise<{ ok: boolean; status: number; arrayBuffer(): Promise<ArrayBuffer> }>;
    } = {},
  ): Promise<MemoryFileSystem> {
    const get = opts.fetch ?? ((url: string) => fetch(url));
    const fs = new MemoryFileSystem();
    const prefix = base.endsWith('/') ? base : `${base}/`;
    await Promise.all(
      paths.map(async (p) => {
        const url = prefix + p;
        const response = await get(url);
        if (!response.ok)
          throw new RuntimeError('FETCH_FAILED', `${url}: HTTP ${response.status}`, {
            file: url,
            actual: response.status,
          });
        fs.set(joinPath(opts.root ?? '/', p), new Uint8Array(await response.arrayBuffer()));
      }),
    );
    return fs;
  }

  /** Reads dropped or picked files, each under `root`/(its `webkitRelativePath`, else its name). */
  static async fromFiles(files: Iterable<NamedBlob>, opts: { root?: string } = {}): Promise<MemoryFileSystem> {
    const fs = new MemoryFileSystem();
    for (const f of files) {
      const rel = f.webkitRelativePath || f.name;
      fs.set(joinPath(opts.root ?? '/', rel), new Uint8Array(await f.arrayBuffer()));
    }
    return fs;
  }
}

/** The writing half of Node's `fs` that the savers use (writing files is Node-only). */
export interface NodeWriteFs {
  existsSync(path: string): boolean;
  mkdirSync(path: string, options?: { recursive?: boolean }): unknown;
  writeFileSync(path: string, data: string | Uint8Array): void;
  renameSync(from: string, to: string): void;
  rmSync(path: string, options?: { recursive?: boolean; force?: boolean }): void;
}

/** Node's `fs` for writing; outside Node a `NODE_ONLY` error naming `what`. */
export function nodeWriteFs(what = 'writing files'): NodeWriteFs {
  return requireNode<NodeWriteFs>('fs', what);
}
