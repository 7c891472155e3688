import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A writer into `dir` (created when missing): each file is written beside its place and renamed in, so an
 * interrupted run leaves either the previous file or the new one, never half of one. Returns the file's path.
 */
export function reportWriter(dir: string): (name: string, text: string) => string {
  mkdirSync(dir, { recursive: true });
  return (name, text) => {
    const path = join(dir, name);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
    return path;
  };
}
