import { linkSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { TrainerError } from './errors.js';

export const LOCK_FILE = 'hyperllama-train.lock';

/** What a lock file holds: the process that owns the run directory. */
export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the holder took the lock. */
  started: string;
  stage: string;
}

/** Whether a process with this pid exists on this host (EPERM: it exists but belongs to another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    return Number.isInteger(h?.pid) && h.pid > 0 && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Take `<out>/hyperllama-train.lock` for this process, so that two runs never write one run directory (they would
 * share `checkpoint.old/` and interleave `metrics.jsonl`). A lock whose holder is on this host and no longer running
 * is stale (the run was killed) and is taken over, with a note through `log`. A live holder, or one on another host
 * (whose pid cannot be checked), is an `OUT_LOCKED` error naming its pid, host and start time. Returns the release
 * function (it removes the lock only while it is still this process's).
 */
export function acquireRunLock(out: string, stage: string, log: (line: string) => void): () => void {
  const file = join(out, LOCK_FILE);
  const me: LockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString(), stage };
  // Written complete under a pid-named name, then hard-linked: link fails if the lock exists, so the check and the
  // take are one step and a reader never sees a half-written lock.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(me) + '\n');
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, file);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw e;
      }
      const holder = readHolder(file);
      if (holder && !(holder.host === me.host && !alive(holder.pid))) {
        const where =
          holder.host === me.host
            ? ''
            : ' (on another host: its pid cannot be checked; delete the lock file if that run is over)';
        throw new TrainerError(
          'OUT_LOCKED',
          `${file}: ${out} is in use by process ${holder.pid} on ${holder.host}, started ${holder.started} (stage ${holder.stage})${where}; wait for it, or use another --out`,
          { file, pid: holder.pid, host: holder.host, started: holder.started },
        );
      }
      log(
        holder
          ? `${file}: taking over a stale lock: process ${holder.pid} on ${holder.host} (started ${holder.started}) is gone`
          : `${file}: taking over an unreadable lock file`,
      );
      rmSync(file, { force: true });
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  return () => {
    const holder = readHolder(file);
    if (holder && holder.pid === me.pid && holder.host === me.host && holder.started === me.started)
      rmSync(file, { force: true });
  };
}

/**
 * Remove the temporary files and folders (`<name>.<pid>.tmp`, `<name>.tmp-<pid>`) that processes no longer running
 * left in `out` when they were killed mid-write; returns their names. Call it while holding the lock.
 */
export function removeStaleTemporaries(out: string): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(out)) {
    const m = /\.(\d+)\.tmp$/.exec(name) ?? /\.tmp-(\d+)$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || alive(pid)) continue;
    rmSync(join(out, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
