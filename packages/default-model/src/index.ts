import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The package root, from the built module (dist/index.js) or the sources (src/index.ts): both sit one level down.
const root = fileURLToPath(new URL('..', import.meta.url));

function assetDir(name: 'base' | 'hyperllama', marker: string): string {
  const dir = join(root, name);
  if (!existsSync(join(dir, marker)))
    throw new Error(
      `@hyperllama/default-model: ${join(dir, marker)} is missing (the package was installed without its ${name}/ files)`,
    );
  return dir;
}

/**
 * The embedded default base: an HF Llama directory (config.json, model.safetensors, tokenizer.json), 4 layers, hidden
 * 192, 3.48 M parameters, trained to learn in context (see base/TRAINING.md).
 */
export function defaultBaseDir(): string {
  return assetDir('base', 'config.json');
}

/**
 * The HyperLlama checkpoint trained on {@link defaultBaseDir} by `npm start`'s multi-task stage; its
 * hypernet_config.json records the base relative to itself, so `HyperLlama.fromPretrained` needs nothing else.
 */
export function defaultHyperLlamaDir(): string {
  return assetDir('hyperllama', 'hypernet_config.json');
}
