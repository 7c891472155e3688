import { joinPath as join, nodeWriteFs } from '@hyperllama/runtime';
/**
 * A writer into `dir` (created when missing): each file is written beside its place and renamed in, so an
 * interrupted run leaves either the previous file or the new one, never half of one. Returns the file's path.
 */
export function reportWriter(dir: string): (name: string, text: string) => string {
  nodeWriteFs().mkdirSync(dir, { recursive: true });
  return (name, text) => {
    const path = join(dir, name);
    nodeWriteFs().writeFileSync(`${path}.tmp`, text);
    nodeWriteFs().renameSync(`${path}.tmp`, path);
    return path;
  };
}
