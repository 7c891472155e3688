import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';

// The command as a user starts it (the committed bin launcher, the embedded default), stopped with SIGTERM while a
// streamed completion is in flight, then started again on the same store.
const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'hyperllama-serve.js');
const store = mkdtempSync(join(tmpdir(), 'hl-lifecycle-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(store, { recursive: true, force: true });
});

/** Start `hyperllama-serve --port 0 --store <store>`; resolves with its URL (the first stdout line). */
async function start(): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [bin, '--port', '0', '--store', store, '--backend', 'wasm'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = out.match(/listening on (\S+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`hyperllama-serve exited (${code}): ${err}`)));
  });
  return { child, url, stderr: () => err };
}

const exited = (c: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    c.exitCode !== null
      ? resolve({ code: c.exitCode, signal: null })
      : c.on('exit', (code, signal) => resolve({ code, signal })),
  );

describe('hyperllama-serve as a process', () => {
  it('drains in-flight requests on SIGTERM, exits 0, and serves its prefixes again after a restart', async () => {
    const first = await start();
    const client = new OpenAI({ apiKey: 'x', baseURL: `${first.url}/v1`, maxRetries: 0 });
    const { id } = await client.post<{ id: string }>('/prefixes', {
      body: { examples: ['red', 'blue', 'green'].map((input) => ({ input, output: 'apple' })) },
    });
    const params = { model: 'hyperllama-default', prompt: 'the farmer and the', max_tokens: 40, temperature: 0 };
    const before = await client.completions.create({
      ...params,
      prefix: id,
    } as OpenAI.CompletionCreateParamsNonStreaming);

    // A plain completion of 40 tokens (ignore_eos) in flight, streamed; SIGTERM after its first chunk.
    const long = { ...params, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming;
    const stream = await client.completions.create({ ...long, stream: true } as OpenAI.CompletionCreateParamsStreaming);
    let afterSignal = 0;
    let text = '';
    let finish: string | null = null;
    let signalled = false;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (signalled) afterSignal++;
      else {
        first.child.kill('SIGTERM');
        signalled = true;
      }
    }
    expect(signalled).toBe(true);
    expect(finish, 'the in-flight stream ran to its end').toBe('length');
    expect(afterSignal, 'chunks that arrived after SIGTERM').toBeGreaterThan(10);
    // New connections are refused while it drains or after it stopped.
    await expect(client.models.list()).rejects.toThrow();
    expect(await exited(first.child)).toEqual({ code: 0, signal: null });
    expect(first.stderr()).toMatch(/SIGTERM: draining/);

    const second = await start();
    const again = new OpenAI({ apiKey: 'x', baseURL: `${second.url}/v1`, maxRetries: 0 });
    expect(second.stderr()).toMatch(/1 prefixes of this base/);
    expect(await again.get(`/prefixes/${id}`)).toMatchObject({ id, k: 4 });
    const after = await again.completions.create({
      ...params,
      prefix: id,
    } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(after.choices[0].text).toBe(before.choices[0].text);
    const plain = await again.completions.create(long);
    expect(plain.choices[0].text).toBe(text); // the drained stream was not cut short
    second.child.kill('SIGTERM');
    expect(await exited(second.child)).toEqual({ code: 0, signal: null });
  }, 180_000);
});
