// Serves the built playground (dist/) with the cross-origin isolation headers threaded wasm needs.
//   node apps/playground/serve.mjs [--port 5173] [--host 127.0.0.1]
// Prints "playground: http://host:port/" once listening.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.svg': 'image/svg+xml',
};

/** Starts a static server for `dir`; resolves to its URL. Port 0 picks a free one. */
export function startServer({ dir, port = 5173, host = '127.0.0.1' }) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let file = normalize(join(dir, path));
    if (!file.startsWith(dir)) {
      res.writeHead(403).end();
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({ url: `http://${host}:${address.port}/`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'dist');
  if (!existsSync(join(dir, 'index.html'))) {
    console.error(
      `playground: ${dir} has no build; run npm run playground (or npm run build -w @hyperllama/playground)`,
    );
    process.exit(1);
  }
  const { url } = await startServer({
    dir,
    port: Number(arg('port', process.env.PORT ?? '5173')),
    host: arg('host', '127.0.0.1'),
  });
  console.log(`playground: ${url}`);
}
