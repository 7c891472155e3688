/**
 * A small seeded mutation fuzzer for the project's file readers. Each target makes a valid file set, then every
 * round mutates one of its files (byte flips, truncations, insertions, deletions, chunk copies, or, for JSON,
 * value swaps at a random path) and runs the reader. A round ends as one of: accepted (and the result passes the
 * target's invariants), rejected with a typed error of the owning package that names the file, or a bug
 * (anything else: another error class, an untyped error, a message that does not name the file, an accepted
 * result that breaks an invariant).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** mulberry32: tiny, fast, and the same sequence for the same seed on every platform. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** Bytes-level mutations; returns the mutated copy and a short description. */
export function mutateBytes(src: Uint8Array, rng: Prng): { bytes: Uint8Array; what: string } {
  const b = Uint8Array.from(src);
  const at = () => rng.int(Math.max(1, b.length));
  switch (rng.int(6)) {
    case 0: {
      const n = 1 + rng.int(4);
      const where: number[] = [];
      for (let i = 0; i < n && b.length > 0; i++) {
        const j = at();
        b[j] ^= 1 << rng.int(8);
        where.push(j);
      }
      return { bytes: b, what: `flip bits at ${where.join(',')}` };
    }
    case 1: {
      const n = rng.int(b.length);
      return { bytes: b.subarray(0, n), what: `truncate to ${n}` };
    }
    case 2: {
      const j = rng.int(b.length + 1);
      const ins = Uint8Array.from({ length: 1 + rng.int(8) }, () =>
        rng.pick([0, 0xff, 0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x0a, 0x80, 0xc3, rng.int(256)]),
      );
      return { bytes: concat(b.subarray(0, j), ins, b.subarray(j)), what: `insert ${ins.length} at ${j}` };
    }
    case 3: {
      const j = at();
      const n = 1 + rng.int(16);
      return { bytes: concat(b.subarray(0, j), b.subarray(j + n)), what: `delete ${n} at ${j}` };
    }
    case 4: {
      const j = at();
      const n = 1 + rng.int(32);
      const k = at();
      return {
        bytes: concat(b.subarray(0, k), b.subarray(j, j + n), b.subarray(k)),
        what: `copy ${n} from ${j} to ${k}`,
      };
    }
    default: {
      const j = at();
      const v = rng.pick([0, 0xff, 0x7f, 0x80]);
      for (let i = j; i < Math.min(b.length, j + 4); i++) b[i] = v;
      return { bytes: b, what: `set 4 bytes at ${j} to ${v}` };
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Replacement values of JSON swaps: wrong types, edge numbers, empty and odd strings. */
const POOL: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1,
  2,
  0.5,
  -0.5,
  1e308,
  -1e308,
  2 ** 53,
  2 ** 31,
  4294967296,
  1e-300,
  '',
  ' ',
  'x',
  '0',
  'NaN',
  '__proto__',
  '\u0000',
  '\ud800',
  'é▁',
  [],
  [0],
  [-1],
  [''],
  [null],
  {},
  { a: 1 },
  { __proto__: null },
];

type Path = Array<string | number>;

function paths(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

function getAt(v: unknown, p: Path): unknown {
  return p.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], v);
}

/** JSON value mutations: replace a value, swap two values, delete or duplicate a key, wrap, stringify. */
export function mutateJson(src: unknown, rng: Prng): { value: unknown; what: string } {
  const v = structuredClone(src);
  const all = paths(v);
  const p = rng.pick(all);
  const label = p.join('.') || '<root>';
  if (p.length === 0) {
    const r = rng.pick(POOL);
    return { value: rng.int(2) ? r : [v], what: `root → ${JSON.stringify(r) ?? 'wrapped'}` };
  }
  const parent = getAt(v, p.slice(0, -1)) as Record<string | number, unknown>;
  const key = p[p.length - 1];
  const cur = parent[key];
  switch (rng.int(7)) {
    case 0:
    case 1: {
      const r = rng.pick(POOL);
      parent[key] = structuredClone(r);
      return { value: v, what: `${label} = ${JSON.stringify(r)}` };
    }
    case 2: {
      const other = rng.pick(all);
      parent[key] = structuredClone(getAt(src, other));
      return { value: v, what: `${label} = value of ${other.join('.') || '<root>'}` };
    }
    case 3: {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      return { value: v, what: `delete ${label}` };
    }
    case 4: {
      parent[key] =
        typeof cur === 'number'
          ? String(cur)
          : typeof cur === 'string' && cur !== '' && Number.isFinite(Number(cur))
            ? Number(cur)
            : [cur];
      return { value: v, what: `${label}: change type` };
    }
    case 5: {
      if (typeof cur === 'number') parent[key] = rng.pick([cur + 1, cur - 1, -cur, cur * 1000, Math.floor(cur / 2)]);
      else if (typeof cur === 'string')
        parent[key] = cur.slice(0, rng.int(cur.length + 1)) + rng.pick(['', '\n', '"', '\u2581', '<s>', cur]);
      else if (Array.isArray(cur)) cur.push(structuredClone(cur[0] ?? null));
      else parent[key] = null;
      return { value: v, what: `${label}: nudge` };
    }
    default: {
      if (Array.isArray(parent)) parent.splice(key as number, 0, structuredClone(cur));
      else parent[`${String(key)}_extra`] = structuredClone(cur);
      return { value: v, what: `${label}: duplicate` };
    }
  }
}

/** A file set: relative path → content. */
export type Files = Record<string, Uint8Array | string>;

export interface FuzzTarget<R> {
  name: string;
  /** Valid file sets (rounds cycle through them). */
  seeds: Files[];
  /** Which file of the set to mutate this round (default: any). */
  mutable?: (files: Files, rng: Prng) => string;
  /** JSON-aware mutation for these files (parse, mutate, serialise); byte mutations apply to all. */
  json?: (path: string) => boolean;
  /** Custom structured mutation (e.g. a safetensors header); return undefined to fall back. */
  structured?: (path: string, content: Uint8Array, rng: Prng) => { bytes: Uint8Array; what: string } | undefined;
  /** Where the reader reads from, given the directory holding the files. */
  read(dir: string): R;
  /** Throws (a plain Error) when an accepted result breaks an invariant. */
  check?(result: R, dir: string): void;
  /** Runs after every round (e.g. remove adapters a load injected). */
  cleanup?(result: R | undefined): void;
  /** Is `e` the owning package's typed error? */
  typed(e: unknown): boolean;
  /** A reader that repairs instead of refusing (every mutant must then be accepted). */
  repairs?: boolean;
}

export interface FuzzReport {
  name: string;
  rounds: number;
  accepted: number;
  rejected: number;
  /** Error codes of the typed rejections, with counts. */
  codes: Record<string, number>;
  bugs: string[];
  /** The slowest round (a reader that takes seconds on a few hundred bytes has a pathological path). */
  slowestMs: number;
  slowest: string;
}

const enc = new TextEncoder();
const bytesOf = (c: Uint8Array | string) => (typeof c === 'string' ? enc.encode(c) : c);

/** Runs `rounds` seeded mutations of `target` in `dir` (emptied first). */
export function fuzz<R>(target: FuzzTarget<R>, dir: string, rounds: number, seed: number): FuzzReport {
  const rng = new Prng(seed);
  const report: FuzzReport = {
    name: target.name,
    rounds,
    accepted: 0,
    rejected: 0,
    codes: {},
    bugs: [],
    slowestMs: 0,
    slowest: '',
  };
  for (let round = 0; round < rounds; round++) {
    const files = target.seeds[round % target.seeds.length];
    rmSync(dir, { recursive: true, force: true });
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), bytesOf(content));
    }
    const names = Object.keys(files);
    const victim = target.mutable ? target.mutable(files, rng) : rng.pick(names);
    const original = bytesOf(files[victim]);
    let mutated: { bytes: Uint8Array; what: string } | undefined;
    const mode = rng.int(3);
    if (mode === 0 && target.structured) mutated = target.structured(victim, original, rng);
    if (!mutated && mode <= 1 && target.json?.(victim)) {
      const text = new TextDecoder().decode(original);
      const lines = victim.endsWith('.jsonl') ? text.split('\n') : [text];
      const li = victim.endsWith('.jsonl') ? rng.int(lines.length) : 0;
      if (lines[li].trim() !== '') {
        const m = mutateJson(JSON.parse(lines[li]), rng);
        const out = JSON.stringify(m.value);
        if (out !== undefined) {
          lines[li] = out;
          mutated = {
            bytes: enc.encode(lines.join('\n')),
            what: `json ${victim.endsWith('.jsonl') ? `line ${li + 1} ` : ''}${m.what}`,
          };
        }
      }
    }
    mutated ??= mutateBytes(original, rng);
    const file = join(dir, victim);
    writeFileSync(file, mutated.bytes);
    const tag = `#${round} ${victim}: ${mutated.what}`;
    let result: R | undefined;
    const started = performance.now();
    try {
      result = target.read(dir);
      try {
        target.check?.(result, dir);
        report.accepted++;
      } catch (e) {
        report.bugs.push(`${tag}: accepted, but ${(e as Error).message}`);
      }
    } catch (e) {
      const err = e as { message?: string; code?: string };
      if (!target.typed(e))
        report.bugs.push(`${tag}: untyped ${(e as Error)?.constructor?.name}: ${String(err?.message).slice(0, 200)}`);
      else if (!String(err.message).includes(file) && !String(err.message).includes(dirname(file)))
        report.bugs.push(`${tag}: ${err.code} does not name the file: ${String(err.message).slice(0, 200)}`);
      else {
        report.rejected++;
        report.codes[err.code!] = (report.codes[err.code!] ?? 0) + 1;
      }
    } finally {
      const ms = performance.now() - started;
      if (ms > report.slowestMs) [report.slowestMs, report.slowest] = [ms, tag];
      target.cleanup?.(result);
    }
  }
  return report;
}

/** One table row per reader, for the test output and the report. */
export function formatReports(reports: FuzzReport[], seconds: Record<string, number>): string {
  const rows = reports.map(
    (r) =>
      `${r.name.padEnd(34)} ${String(r.rounds).padStart(6)} ${String(r.accepted).padStart(9)} ${String(r.rejected).padStart(15)} ${String(r.bugs.length).padStart(5)} ${seconds[r.name].toFixed(1).padStart(6)}s ${r.slowestMs.toFixed(0).padStart(6)}ms`,
  );
  const total = reports.reduce(
    (a, r) => ({ n: a.n + r.rounds, acc: a.acc + r.accepted, rej: a.rej + r.rejected, bugs: a.bugs + r.bugs.length }),
    { n: 0, acc: 0, rej: 0, bugs: 0 },
  );
  return [
    `${'reader'.padEnd(34)} ${'rounds'.padStart(6)} ${'accepted'.padStart(9)} ${'typed-rejected'.padStart(15)} ${'bugs'.padStart(5)} ${'time'.padStart(7)} ${'slowest'.padStart(8)}`,
    ...rows,
    `${'total'.padEnd(34)} ${String(total.n).padStart(6)} ${String(total.acc).padStart(9)} ${String(total.rej).padStart(15)} ${String(total.bugs).padStart(5)}`,
  ].join('\n');
}
