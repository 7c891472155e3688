import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GistAttentionError, Prefix } from '@hyperllama/gist-attention';
import type { LlamaConfig } from '@hyperllama/llama-model';
import { HyperLlamaError } from '@hyperllama/runtime';

/** A prefix store error: unknown id (`PREFIX_NOT_FOUND`), another base's prefix (`PREFIX_OTHER_BASE`), bad file. */
export class PrefixStoreError extends HyperLlamaError {}

/** A task as the store addresses it: definition and demonstrations, normalised. */
export interface TaskSpec {
  definition?: string;
  examples: Array<{ input: string; output: string }>;
}

/** Unicode NFC, `\r\n` → `\n`, surrounding whitespace trimmed: the same task typed twice gets one id. */
export function normalizeText(s: string): string {
  return s.normalize('NFC').replace(/\r\n?/g, '\n').trim();
}

export function normalizeTask(t: TaskSpec): TaskSpec {
  const definition = t.definition === undefined ? '' : normalizeText(t.definition);
  return {
    ...(definition ? { definition } : {}),
    examples: t.examples.map((e) => ({ input: normalizeText(e.input), output: normalizeText(e.output) })),
  };
}

/** The content address of a task's prefix: 32 hex digits of SHA-256 over the checkpoint hash and the normalised task. */
export function prefixId(checkpointHash: string, task: TaskSpec): string {
  const n = normalizeTask(task);
  const canonical = JSON.stringify([checkpointHash, n.definition ?? '', n.examples.map((e) => [e.input, e.output])]);
  return 'pfx-' + createHash('sha256').update(canonical).digest('hex').slice(0, 32);
}

const ID = /^pfx-[0-9a-f]{32}$/;

/** What the store records with a prefix (string metadata of the prefix file). */
export interface PrefixInfo {
  id: string;
  k: number;
  bytes: number;
  demonstrations: number;
  promptTokensSaved: number;
  created: number;
}

export interface PrefixStoreOptions {
  dir: string;
  config: LlamaConfig;
  /** SHA-256 of the base weights (`baseModelHash`): prefixes recorded with another one are refused. */
  baseHash: string;
  /** Bytes of prefix tensors kept in memory (default 256 MiB); the least recently used go first. */
  cacheBytes?: number;
}

interface Entry {
  prefix: Prefix;
  info: PrefixInfo;
  bytes: number;
  /** Requests using it; an evicted entry is freed when the last one releases it. */
  users: number;
  evicted: boolean;
}

/**
 * Prefixes in a directory shared by any number of server processes: one `<id>.safetensors` per prefix in the prefix
 * file format (`Prefix.save`: written to a temporary file, fsynced, renamed), ids content-addressed so every process
 * computes the same name for the same task, and an LRU cache with a byte budget over the files. A file whose
 * `base_model_hash` differs from this server's base is refused.
 */
export class PrefixStore {
  private readonly cache = new Map<string, Entry>();
  private cachedBytes = 0;
  readonly budget: number;
  readonly counters = { hits: 0, misses: 0, evictions: 0, writes: 0 };

  constructor(readonly o: PrefixStoreOptions) {
    this.budget = o.cacheBytes ?? 256 * 2 ** 20;
    mkdirSync(o.dir, { recursive: true });
  }

  get bytesInMemory(): number {
    return this.cachedBytes;
  }

  private file(id: string): string {
    return join(this.o.dir, `${id}.safetensors`);
  }

  /**
   * Startup scan: removes temporary files whose writer is gone (a crash mid-write), and counts the prefixes of this
   * base and of others (read lazily later).
   */
  scan(): { ours: number; others: number; removedTemporary: number } {
    let removedTemporary = 0;
    let ours = 0;
    let others = 0;
    for (const name of readdirSync(this.o.dir)) {
      const tmp = name.match(/\.(\d+)\.tmp$/);
      if (tmp) {
        if (!processAlive(Number(tmp[1]))) {
          rmSync(join(this.o.dir, name), { force: true });
          removedTemporary++;
        }
        continue;
      }
      const id = name.replace(/\.safetensors$/, '');
      if (!ID.test(id) || id === name) continue;
      try {
        this.acquire(id).release();
        ours++;
      } catch {
        others++;
      }
    }
    return { ours, others, removedTemporary };
  }

  /** Ids of the prefix files in the directory (any base). */
  list(): string[] {
    return readdirSync(this.o.dir)
      .filter((n) => n.endsWith('.safetensors'))
      .map((n) => n.replace(/\.safetensors$/, ''))
      .filter((id) => ID.test(id));
  }

  has(id: string): boolean {
    return ID.test(id) && existsSync(this.file(id));
  }

  /** Store a prefix under `info.id` (atomic write), and keep it in memory. */
  put(prefix: Prefix, info: Omit<PrefixInfo, 'bytes' | 'created'>): PrefixInfo {
    const full: PrefixInfo = { ...info, bytes: prefixBytes(prefix), created: Math.floor(Date.now() / 1000) };
    prefix.save(this.file(info.id), {
      config: this.o.config,
      meta: {
        id: info.id,
        base_model_hash: this.o.baseHash,
        demonstrations: String(info.demonstrations),
        prompt_tokens_saved: String(info.promptTokensSaved),
        created: String(full.created),
      },
    });
    this.counters.writes++;
    const old = this.cache.get(info.id);
    if (old) this.evict(info.id, old);
    this.insert(info.id, { prefix, info: full, bytes: full.bytes, users: 0, evicted: false });
    return full;
  }

  /** The prefix of `id` for one use (from memory, else its file); call `release` when done with it. */
  acquire(id: string): { prefix: Prefix; info: PrefixInfo; release(): void } {
    if (!ID.test(id)) throw new PrefixStoreError('PREFIX_NOT_FOUND', `no prefix "${id}"`, { field: 'prefix' });
    let entry = this.cache.get(id);
    if (entry && !existsSync(this.file(id))) {
      // Deleted by another process sharing the directory.
      this.evict(id, entry);
      entry = undefined;
    }
    if (entry) {
      this.counters.hits++;
      this.cache.delete(id);
      this.cache.set(id, entry); // most recently used last
    } else {
      this.counters.misses++;
      entry = this.read(id);
      this.insert(id, entry);
    }
    const e = entry;
    e.users++;
    let released = false;
    return {
      prefix: e.prefix,
      info: e.info,
      release: () => {
        if (released) return;
        released = true;
        e.users--;
        if (e.evicted && e.users === 0) e.prefix.dispose();
      },
    };
  }

  /** Delete a prefix (its file and its memory copy); false when there was none. */
  delete(id: string): boolean {
    const entry = this.cache.get(id);
    if (entry) this.evict(id, entry);
    if (!this.has(id)) return false;
    rmSync(this.file(id), { force: true });
    return true;
  }

  /** Frees every prefix in memory (files stay). */
  dispose(): void {
    for (const [id, e] of Array.from(this.cache)) this.evict(id, e);
  }

  private read(id: string): Entry {
    const path = this.file(id);
    if (!existsSync(path)) throw new PrefixStoreError('PREFIX_NOT_FOUND', `no prefix "${id}"`, { field: 'prefix' });
    let prefix: Prefix;
    try {
      prefix = Prefix.load(path, this.o.config);
    } catch (e) {
      if (e instanceof GistAttentionError && e.code === 'GIST_CONFIG_MISMATCH')
        throw new PrefixStoreError('PREFIX_OTHER_BASE', `prefix "${id}" belongs to a model of another architecture`, {
          field: 'prefix',
          file: path,
        });
      throw e;
    }
    const m = prefix.meta;
    if (m.base_model_hash !== this.o.baseHash) {
      prefix.dispose();
      throw new PrefixStoreError('PREFIX_OTHER_BASE', `prefix "${id}" was made for another base model`, {
        field: 'prefix',
        file: path,
        expected: this.o.baseHash,
        actual: m.base_model_hash,
      });
    }
    const info: PrefixInfo = {
      id,
      k: prefix.length,
      bytes: prefixBytes(prefix),
      demonstrations: Number(m.demonstrations ?? 0),
      promptTokensSaved: Number(m.prompt_tokens_saved ?? 0),
      created: Number(m.created ?? Math.floor(statSync(path).mtimeMs / 1000)),
    };
    return { prefix, info, bytes: info.bytes, users: 0, evicted: false };
  }

  private insert(id: string, e: Entry): void {
    this.cache.set(id, e);
    this.cachedBytes += e.bytes;
    // Evict least recently used until within budget (the newest always stays).
    for (const [oldId, old] of this.cache) {
      if (this.cachedBytes <= this.budget || oldId === id) break;
      this.evict(oldId, old);
      this.counters.evictions++;
    }
  }

  private evict(id: string, e: Entry): void {
    if (this.cache.get(id) !== e) return;
    this.cache.delete(id);
    this.cachedBytes -= e.bytes;
    e.evicted = true;
    if (e.users === 0) e.prefix.dispose();
  }

  /** Ids held in memory, least recently used first. */
  cachedIds(): string[] {
    return [...this.cache.keys()];
  }
}

/** float32 bytes of a prefix's keys and values. */
export function prefixBytes(p: Prefix): number {
  return [...p.keys, ...p.values].reduce((n, t) => n + t.size * 4, 0);
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
