import { RuntimeError } from './errors.js';

/**
 * Node's built-in modules, reached through `process.getBuiltinModule` (Node ≥ 20.16) instead of `import` statements,
 * so that the same module bundles for a browser (no `node:` import) and still uses the real `fs` under Node.
 */
interface NodeProcess {
  versions?: { node?: string };
  env: Record<string, string | undefined>;
  pid: number;
  cwd(): string;
  stderr?: { write(text: string): unknown };
  getBuiltinModule?: (id: string) => unknown;
}

/** The Node `process` object, or undefined in a browser. */
export function nodeProcess(): NodeProcess | undefined {
  const p = (globalThis as { process?: NodeProcess }).process;
  return p?.versions?.node ? p : undefined;
}

/** Whether this code runs under Node (not a browser or a web worker). */
export function isNode(): boolean {
  return nodeProcess() !== undefined;
}

/** An environment variable under Node; undefined in a browser. */
export function envVar(name: string): string | undefined {
  return nodeProcess()?.env[name];
}

/**
 * Node's built-in module `name` (e.g. `'fs'`), or undefined outside Node. Under a Node too old to have
 * `process.getBuiltinModule` it is a `NODE_TOO_OLD` error.
 */
export function nodeBuiltin<T>(name: string): T | undefined {
  const p = nodeProcess();
  if (!p) return undefined;
  if (typeof p.getBuiltinModule !== 'function') {
    throw new RuntimeError(
      'NODE_TOO_OLD',
      `Node ${p.versions?.node} has no process.getBuiltinModule: @hyperllama packages need Node 20.16 or newer`,
      { expected: '>=20.16', actual: p.versions?.node },
    );
  }
  return p.getBuiltinModule(`node:${name}`) as T;
}

/** Like {@link nodeBuiltin}, but outside Node a `NODE_ONLY` error naming what needed it. */
export function requireNode<T>(name: string, what: string): T {
  const m = nodeBuiltin<T>(name);
  if (m === undefined)
    throw new RuntimeError('NODE_ONLY', `${what} needs Node (node:${name}); it is not available in a browser`, {
      field: what,
    });
  return m;
}
