import { parseArgs } from 'node:util';
import { HyperLlamaError } from '@hyperllama/runtime';
import type { ServeOptions } from './server.js';

export const USAGE = `hyperllama-serve [--checkpoint DIR | --model DIR] [--host 127.0.0.1] [--port 8080] [--store DIR]
    [--api-key KEY] [--max-batch 16] [--max-queue 64] [--cache-mb 256] [--body-limit-kb 1024]
    [--max-hyper-length 1024] [--backend auto|wasm|cpu|tensorflow]
  An OpenAI-compatible server (GET /v1/models, POST /v1/completions, POST /v1/prefixes, GET|DELETE
  /v1/prefixes/{id}, POST /v1/classify, GET /healthz, GET /metrics) for one frozen Llama and many stored task prefixes.
  --checkpoint DIR   a HyperLlama checkpoint (default: the embedded default and its base)
  --model DIR        a base model: with --checkpoint it replaces the recorded base; alone, a plain base (no compression)
  --store DIR        the prefix store, shareable by several servers (default ./prefix-store)
  --max-hyper-length tokens of the hypernetwork input (default 1024, at most the model's context)
  --api-key KEY      required as "Authorization: Bearer KEY" on every route but /healthz (also HYPERLLAMA_API_KEY)
  SIGTERM or SIGINT stops accepting requests, finishes those in flight, then exits.`;

/** A command-line mistake; the CLI prints it with the usage and exits 2. */
export class UsageError extends HyperLlamaError {}

const int = (name: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min)
    throw new UsageError('USAGE', `--${name}: expected an integer ≥ ${min}, got "${v}"`, { field: name, actual: v });
  return n;
};

/** `hyperllama-serve` options → {@link ServeOptions} (plus the backend and whether help was asked for). */
export function parseServeArgs(
  argv: string[],
  env: Record<string, string | undefined> = {},
): ServeOptions & { backend?: string; help: boolean } {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        checkpoint: { type: 'string' },
        model: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        store: { type: 'string' },
        'api-key': { type: 'string' },
        'max-batch': { type: 'string' },
        'max-queue': { type: 'string' },
        'cache-mb': { type: 'string' },
        'body-limit-kb': { type: 'string' },
        'max-hyper-length': { type: 'string' },
        backend: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw new UsageError('USAGE', `hyperllama-serve: ${(e as Error).message}`, {});
  }
  const s = (k: string) => v[k] as string | undefined;
  const cacheMb = int('cache-mb', s('cache-mb'), 1);
  const bodyKb = int('body-limit-kb', s('body-limit-kb'), 1);
  return {
    help: v.help === true,
    checkpoint: s('checkpoint'),
    model: s('model'),
    host: s('host') ?? '127.0.0.1',
    port: int('port', s('port'), 0) ?? 8080,
    store: s('store'),
    apiKey: s('api-key') ?? env.HYPERLLAMA_API_KEY,
    maxBatch: int('max-batch', s('max-batch'), 1),
    maxQueue: int('max-queue', s('max-queue'), 0),
    cacheBytes: cacheMb === undefined ? undefined : cacheMb * 2 ** 20,
    bodyLimit: bodyKb === undefined ? undefined : bodyKb * 1024,
    maxHyperLength: int('max-hyper-length', s('max-hyper-length'), 8),
    backend: s('backend'),
  };
}
