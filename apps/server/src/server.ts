import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from './app.js';
import { loadService, type Service, type ServiceOptions } from './service.js';

export interface ServeOptions extends ServiceOptions, AppOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

/** A running server: its address, and `close()` that drains in-flight requests before it returns. */
export interface RunningServer {
  url: string;
  app: FastifyInstance;
  service: Service;
  /** What the startup scan of the store found. */
  scan: { ours: number; others: number; removedTemporary: number };
  close(): Promise<void>;
}

/** Load the model and the store, and listen. */
export async function serve(o: ServeOptions = {}): Promise<RunningServer> {
  const service = loadService(o);
  const scan = service.store.scan();
  const app = buildApp(service, o);
  try {
    await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 8080 });
  } catch (e) {
    service.dispose();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const host = o.host ?? '127.0.0.1';
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    app,
    service,
    scan,
    close() {
      // Stop accepting, let in-flight requests finish (fastify waits for them), then free the model.
      closing ??= (async () => {
        await app.close();
        await service.engine.drain();
        service.dispose();
      })();
      return closing;
    },
  };
}
