import { initBackend, MemoryFileSystem, onSyncReadBackend, type BackendInfo } from '@hyperllama/runtime';
import type { Prefix } from '@hyperllama/gist-attention';
import type { Task } from '@hyperllama/datasets';
import {
  DEFAULT_MODEL_DIR,
  answerWithIcl,
  answerWithPrefix,
  compress,
  examplesTaskFile,
  tunePrefix,
  fetchModelFiles,
  loadFromFiles,
  loadPrefixBytes,
  parseTask,
  type Answer,
  type Compressed,
  type Loaded,
} from './engine.js';

/** The demo tasks shipped with the site (tasks/<name>.json, S-NI format): file names, as the CLI names tasks. */
const DEMO_TASKS: string[] = (import.meta.env.VITE_DEMO_TASKS ?? '').split(',').filter(Boolean);

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const el = {
  backend: $('backend'),
  modelStatus: $('model-status'),
  modelFiles: $<HTMLInputElement>('model-files'),
  demo: $<HTMLSelectElement>('demo'),
  definition: $<HTMLInputElement>('definition'),
  examples: $<HTMLTextAreaElement>('examples'),
  shots: $<HTMLInputElement>('shots'),
  seed: $<HTMLInputElement>('seed'),
  compress: $<HTMLButtonElement>('compress'),
  compressStatus: $('compress-status'),
  download: $<HTMLAnchorElement>('download'),
  upload: $<HTMLInputElement>('upload'),
  input: $<HTMLInputElement>('input'),
  answer: $<HTMLButtonElement>('answer'),
  answerPrefix: $('answer-prefix'),
  answerIcl: $('answer-icl'),
  timingPrefix: $('timing-prefix'),
  timingIcl: $('timing-icl'),
  tuneSteps: $<HTMLInputElement>('tune-steps'),
  tune: $<HTMLButtonElement>('tune'),
  loss: document.getElementById('loss') as unknown as SVGSVGElement,
  tuneStatus: $('tune-status'),
};

const state: {
  loaded?: Loaded;
  compressed?: Compressed;
  prefix?: Prefix;
  task?: Task;
  /** The S-NI text of the chosen demo task (undefined when the examples are typed). */
  demoText?: string;
  demoName?: string;
} = {};
const pageStart = performance.now();
/** Timings the page reports to scripts (the browser test reads them). */
const timings: Record<string, number> = {};
/** The full generated texts of the last answers (the page shows their first line). */
const answers: { prefix?: string; icl?: string } = {};
(window as unknown as { hyperllama: object }).hyperllama = { timings, answers };

/** The answer proper: generation continues past it with further "Input:" lines until EOS or the token limit. */
function firstLine(text: string): string {
  return text.split('\n')[0].trim();
}

function show(node: HTMLElement, text: string, dataState?: string): void {
  node.textContent = text;
  if (dataState) node.dataset.state = dataState;
}

function fail(node: HTMLElement, e: unknown): void {
  show(node, `Error: ${(e as Error).message}`, 'error');
  console.error(e);
}

interface PageAdapter {
  isFallbackAdapter?: boolean;
  info?: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean };
}

/**
 * The page's backend unless `?backend=` names one: webgpu where the browser has a hardware adapter, else wasm. A
 * software adapter (Chromium's SwiftShader, Mesa's llvmpipe) runs the shaders on the CPU, far slower than wasm (on
 * SwiftShader a compression took 14.5 s against 0.24 s), so it counts as none.
 */
async function chooseBackend(): Promise<{ backend: 'webgpu' | 'wasm'; why: string }> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<PageAdapter | null> } }).gpu;
  if (!gpu) return { backend: 'wasm', why: 'no WebGPU in this browser' };
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) return { backend: 'wasm', why: 'WebGPU finds no adapter' };
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unnamed adapter';
  const software =
    (info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false) ||
    /swiftshader|llvmpipe|lavapipe|software|microsoft basic render/i.test(name);
  return software
    ? { backend: 'wasm', why: `WebGPU's adapter is a software one (${name}), slower than wasm` }
    : { backend: 'webgpu', why: `WebGPU on ${name}` };
}

async function startBackend(): Promise<BackendInfo> {
  const wanted = new URLSearchParams(location.search).get('backend');
  const chosen: { backend: 'webgpu' | 'wasm' | 'cpu'; why: string } =
    wanted === 'wasm' || wanted === 'webgpu' || wanted === 'cpu'
      ? { backend: wanted, why: `?backend=${wanted}` }
      : await chooseBackend();
  const base = new URL('wasm/', location.href).href;
  // Half the logical cores, as tfjs itself chooses (`?threads=N` overrides): on a busy 2-core machine a second wasm
  // thread made decoding about 7x slower (3.4 against 24.6 tokens/s in headless Chromium).
  const asked = Number(new URLSearchParams(location.search).get('threads'));
  const threads =
    Number.isInteger(asked) && asked >= 1 ? asked : Math.max(1, Math.floor((navigator.hardwareConcurrency || 1) / 2));
  let info: BackendInfo;
  let why = chosen.why;
  try {
    info = await initBackend({ backend: chosen.backend, wasmPaths: base, threads });
  } catch (e) {
    if (chosen.backend !== 'webgpu') throw e;
    info = await initBackend({ backend: 'wasm', wasmPaths: base, threads });
    why = `webgpu failed (${(e as Error).message})`;
  }
  const isolation = crossOriginIsolated ? 'cross-origin isolated' : 'not cross-origin isolated';
  const detail = info.name === 'wasm' ? `, ${info.threads} thread(s), ${isolation}` : '';
  show(el.backend, `backend: ${info.name}${detail} (${why})`);
  el.backend.title = info.reason;
  el.backend.dataset.backend = info.name;
  return info;
}

function useModel(l: Loaded): void {
  state.loaded?.dispose();
  state.loaded = l;
  const c = l.model.config;
  show(
    el.modelStatus,
    `${l.label}: ${c.numHiddenLayers}-layer Llama, hidden ${c.hiddenSize}, vocabulary ${c.vocabSize}; HyperLlama k = ${l.hyperllama.k} gist tokens`,
    'ready',
  );
  el.compress.disabled = false;
}

/** The task as a file text and name, exactly what `hyperllama-eval compress --task` would read. */
function taskFile(): { text: string; name: string } {
  if (state.demoText !== undefined && state.demoName) return { text: state.demoText, name: `${state.demoName}.json` };
  return examplesTaskFile(el.definition.value, el.examples.value);
}

async function onCompress(): Promise<void> {
  if (!state.loaded) return;
  show(el.compressStatus, 'Compressing…', 'busy');
  await new Promise((r) => setTimeout(r, 0));
  try {
    const { text, name } = taskFile();
    const task = parseTask(text, name);
    const c = await compress(state.loaded, task, { shots: Number(el.shots.value), seed: Number(el.seed.value) });
    if (state.prefix && state.prefix !== state.compressed?.prefix) state.prefix.dispose();
    state.compressed?.prefix.dispose();
    state.compressed = c;
    state.prefix = c.prefix;
    state.task = task;
    timings.compressSeconds = c.seconds;
    const url = URL.createObjectURL(new Blob([c.bytes as BlobPart], { type: 'application/octet-stream' }));
    el.download.href = url;
    el.download.download = `${task.name}.prefix.safetensors`;
    el.download.hidden = false;
    show(
      el.compressStatus,
      `${task.name}: ${c.demonstrations} demonstrations (${c.contextTokens} tokens in context) → k = ${c.k} prefix positions, ` +
        `${(c.bytes.byteLength / 1024).toFixed(1)} KiB, ${(c.seconds * 1000).toFixed(0)} ms; ` +
        `each query saves ${c.contextTokens - c.k} prompt tokens`,
      'done',
    );
    if (!el.input.value && task.instances[0]) el.input.value = task.instances[0].input;
    el.answer.disabled = false;
    el.tune.disabled = false;
  } catch (e) {
    fail(el.compressStatus, e);
  }
}

function timing(a: Answer): string {
  const s = a.stats;
  return `${s.promptTokens} prompt tokens, ${s.newTokens} new; prefill ${(s.prefillSeconds * 1000).toFixed(0)} ms, decode ${(s.decodeSeconds * 1000).toFixed(0)} ms (${s.tokensPerSecond.toFixed(1)} tokens/s)`;
}

async function onAnswer(): Promise<void> {
  const l = state.loaded;
  if (!l || !state.prefix) return;
  el.answer.disabled = true;
  show(el.answerPrefix, '…', 'busy');
  el.answerIcl.dataset.state = 'busy';
  show(
    el.answerIcl,
    state.compressed ? '…' : '(no examples: the prefix was uploaded)',
    state.compressed ? 'busy' : 'done',
  );
  try {
    const withPrefix = await answerWithPrefix(l, state.prefix, el.input.value);
    answers.prefix = withPrefix.text;
    show(el.answerPrefix, firstLine(withPrefix.text), 'done');
    el.answerPrefix.title = withPrefix.text;
    show(el.timingPrefix, timing(withPrefix));
    timings.firstAnswerMs ??= performance.now() - pageStart;
    timings.prefixTokensPerSecond = withPrefix.stats.tokensPerSecond;
    if (state.compressed) {
      const icl = await answerWithIcl(l, state.compressed.plan, el.input.value);
      answers.icl = icl.text;
      show(el.answerIcl, firstLine(icl.text), 'done');
      el.answerIcl.title = icl.text;
      show(el.timingIcl, timing(icl));
      timings.iclTokensPerSecond = icl.stats.tokensPerSecond;
    }
  } catch (e) {
    fail(el.answerPrefix, e);
  } finally {
    el.answer.disabled = false;
  }
}

/** The loss curve: one polyline over the steps so far, the y axis from 0 to the largest loss. */
function drawLoss(losses: number[]): void {
  const w = 480;
  const h = 160;
  const pad = 24;
  const top = Math.max(...losses, 1e-6);
  const x = (i: number) => pad + (i / Math.max(1, losses.length - 1)) * (w - 2 * pad);
  const y = (v: number) => h - pad - (v / top) * (h - 2 * pad);
  const points = losses.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  el.loss.innerHTML =
    `<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#888"/>` +
    `<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" stroke="#888"/>` +
    `<text x="${pad + 4}" y="${pad - 6}" font-size="11">${top.toFixed(2)} nats</text>` +
    `<text x="${w - pad - 40}" y="${h - 6}" font-size="11">step ${losses.length}</text>` +
    `<polyline fill="none" stroke="#24478f" stroke-width="2" points="${points}"/>`;
}

async function onTune(): Promise<void> {
  const l = state.loaded;
  const c = state.compressed;
  if (!l || !c) return;
  el.tune.disabled = true;
  const losses: number[] = [];
  show(el.tuneStatus, 'Tuning…', 'busy');
  const start = performance.now();
  try {
    const tuned = await tunePrefix(l, c, { steps: Number(el.tuneSteps.value) }, (step, loss) => {
      losses.push(loss);
      drawLoss(losses);
      show(el.tuneStatus, `step ${step}: loss ${loss.toFixed(3)}`, 'busy');
    });
    if (state.prefix && state.prefix !== c.prefix) state.prefix.dispose();
    state.prefix = tuned;
    const bytes = await tuned.toBytes({ config: l.model.config });
    el.download.href = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
    el.download.download = `${c.task.name}.tuned.prefix.safetensors`;
    show(
      el.tuneStatus,
      `${losses.length} step${losses.length === 1 ? '' : 's'} in ${((performance.now() - start) / 1000).toFixed(1)} s: loss ${losses[0].toFixed(3)} → ${losses[losses.length - 1].toFixed(3)}; answers and the download now use the tuned prefix`,
      'done',
    );
  } catch (e) {
    fail(el.tuneStatus, e);
  } finally {
    el.tune.disabled = false;
  }
}

async function onUpload(): Promise<void> {
  const file = el.upload.files?.[0];
  if (!file || !state.loaded) return;
  try {
    const prefix = loadPrefixBytes(state.loaded, new Uint8Array(await file.arrayBuffer()), file.name);
    if (state.prefix && state.prefix !== state.compressed?.prefix) state.prefix.dispose();
    state.compressed?.prefix.dispose();
    state.compressed = undefined;
    state.prefix = prefix;
    el.tune.disabled = true;
    show(
      el.compressStatus,
      `${file.name}: prefix of ${prefix.length} positions loaded (task ${prefix.meta.task ?? '?'})`,
      'done',
    );
    el.answer.disabled = false;
  } catch (e) {
    fail(el.compressStatus, e);
  }
}

async function onModelFiles(): Promise<void> {
  const files = el.modelFiles.files;
  if (!files || files.length === 0) return;
  show(el.modelStatus, `Reading ${files.length} files…`, 'loading');
  try {
    const fs = await MemoryFileSystem.fromFiles([...files], { root: '/dropped' });
    useModel(
      await onSyncReadBackend(() => loadFromFiles(fs, files[0].webkitRelativePath.split('/')[0] || 'dropped files')),
    );
  } catch (e) {
    fail(el.modelStatus, e);
  }
}

async function onDemo(): Promise<void> {
  const name = el.demo.value;
  if (!name) {
    state.demoText = state.demoName = undefined;
    return;
  }
  const text = await (await fetch(new URL(`tasks/${name}.json`, location.href))).text();
  state.demoText = text;
  state.demoName = name;
  const task = parseTask(text, `${name}.json`);
  el.definition.value = task.definition ?? '';
  el.examples.value = task.examples.map((e) => `${e.input} => ${e.output}`).join('\n');
  el.input.value = task.instances[0]?.input ?? '';
}

async function main(): Promise<void> {
  el.demo.append(new Option('(type your own examples)', ''));
  for (const name of DEMO_TASKS) el.demo.append(new Option(name, name));
  el.demo.addEventListener('change', () => void onDemo());
  // Typing edits the examples: the page then compresses what is typed, not the demo file.
  el.examples.addEventListener('input', () => (state.demoText = state.demoName = undefined));
  el.definition.addEventListener('input', () => (state.demoText = state.demoName = undefined));
  el.compress.addEventListener('click', () => void onCompress());
  el.answer.addEventListener('click', () => void onAnswer());
  el.tune.addEventListener('click', () => void onTune());
  el.upload.addEventListener('change', () => void onUpload());
  el.modelFiles.addEventListener('change', () => void onModelFiles());
  try {
    await startBackend();
    const fs = await fetchModelFiles(new URL(`${DEFAULT_MODEL_DIR}/`, location.href).href);
    // Loading hashes the base's weights (synchronous reads): on webgpu that runs on the cpu backend.
    useModel(await onSyncReadBackend(() => loadFromFiles(fs, 'embedded default')));
    timings.modelLoadedMs = performance.now() - pageStart;
    if (DEMO_TASKS.length > 0) {
      el.demo.value = DEMO_TASKS[0];
      await onDemo();
    }
    document.body.dataset.ready = 'true';
  } catch (e) {
    fail(el.modelStatus, e);
  }
}

void main();
