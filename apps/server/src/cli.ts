#!/usr/bin/env node
import { disposeBackend, initBackend, type BackendName } from '@hyperllama/runtime';
import { USAGE, UsageError, parseServeArgs } from './args.js';
import { serve } from './server.js';

async function main(): Promise<number> {
  let o;
  try {
    o = parseServeArgs(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n\n${USAGE}\n`);
      return 2;
    }
    throw e;
  }
  if (o.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const info = await initBackend({ backend: (o.backend ?? 'auto') as BackendName });
  process.stderr.write(`[hyperllama] backend: ${info.name} (${info.reason})\n`);
  const server = await serve(o);
  const { service } = server;
  const { scan } = server;
  process.stderr.write(
    `[hyperllama] serving ${service.modelId} (${service.sources.checkpoint ?? service.sources.model}); prefix store ${service.store.o.dir}: ${scan.ours} prefixes of this base${scan.others ? `, ${scan.others} refused (another base)` : ''}\n`,
  );
  // The first line on stdout is the address (scripts and tests read it).
  process.stdout.write(`listening on ${server.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`[hyperllama] ${signal}: draining in-flight requests\n`);
      void server.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  process.stderr.write('[hyperllama] drained; exiting\n');
  await disposeBackend();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const err = e as { code?: string; message?: string };
    process.stderr.write(`error ${err.code ?? 'FATAL'}: ${err.message ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
