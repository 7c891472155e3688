/**
 * Fuzz suite over every file the project reads. Each reader gets at least 500 seeded mutations of small valid files
 * made here (never ../shared); every rejection must be the owning package's typed error naming the file, and every
 * accepted file must satisfy the reader's invariants. Counts are printed as a table.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { stringify as toYaml, parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, exportSniTasks, loadTasks, makeSyntheticTask, type LoadedTasks } from '@hyperllama/datasets';
import { GistAttentionError, Prefix } from '@hyperllama/gist-attention';
import { HypernetError, HyperLlama, loadHyperLlama, saveHyperLlama, baseModelHash } from '@hyperllama/hypernet';
import {
  ModelError,
  createLlama,
  loadLlama,
  saveLlama,
  type LlamaConfig,
  type LlamaModel,
} from '@hyperllama/llama-model';
import { LoraError, deleteAdapter, injectLora, listAdapters, loadAdapter, saveAdapter } from '@hyperllama/lora';
import {
  AdamW,
  OptionError,
  SafetensorsError,
  disposeBackend,
  initBackend,
  readSafetensors,
  serializeSafetensors,
  toFloat32,
  type SafetensorsEntry,
} from '@hyperllama/runtime';
import {
  PieceType,
  TokenizerError,
  Tokenizer,
  loadTokenizer,
  saveTokenizer,
  tokenizerConfigFromPieces,
  tokenizerJsonFromPieces,
  type VocabPiece,
} from '@hyperllama/tokenizer';
import {
  LOCK_FILE,
  TrainerError,
  acquireRunLock,
  applyPatch,
  buildJob,
  defaultConfig,
  readConfigFile,
  restoreCheckpoint,
  truncateMetrics,
  type Job,
} from '@hyperllama/training';
import { main } from '../src/index.js';
import {
  fuzz,
  formatReports,
  mutateJson,
  type Files,
  type FuzzReport,
  type FuzzTarget,
  type Prng,
} from './fuzz/kit.js';
import { TINY, memoryIo } from './helpers.js';

// HYPERLLAMA_FUZZ_ROUNDS raises the count for a longer hunt; CI runs the 500 the suite promises.
const ROUNDS = Math.max(500, Number(process.env.HYPERLLAMA_FUZZ_ROUNDS ?? 500));
const root = mkdtempSync(join(tmpdir(), 'hyperllama-fuzz-'));
const enc = new TextEncoder();
const read = (path: string) => new Uint8Array(readFileSync(path));
const readDir = (dir: string, prefix = ''): Files =>
  Object.fromEntries(
    (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
      .filter((d) => d.isFile())
      .map((d) => {
        const full = join(d.parentPath, d.name);
        return [prefix + full.slice(dir.length + 1), read(full)];
      }),
  );
const isFinite32 = (xs: Float32Array) => xs.every(Number.isFinite);
const invariant = (ok: boolean, what: string) => {
  if (!ok) throw new Error(what);
};
const jsonFile = (p: string) => p.endsWith('.json') || p.endsWith('.jsonl');

/** Mutate a safetensors header as JSON (so the checks past the JSON parse are reached), keeping the data bytes. */
function safetensorsHeader() {
  return (path: string, content: Uint8Array, rng: Prng) => {
    if (!path.endsWith('.safetensors') || content.length < 8) return undefined;
    const n = Number(new DataView(content.buffer, content.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(content.subarray(8, 8 + n)));
    const m = mutateJson(header, rng);
    const json = enc.encode(JSON.stringify(m.value) ?? 'null');
    const out = new Uint8Array(8 + json.length + content.length - 8 - n);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(content.subarray(8 + n), 8 + json.length);
    return { bytes: out, what: `header ${m.what}` };
  };
}

// ---- small valid files ----

const TINY_CONFIG: LlamaConfig = {
  vocabSize: 40,
  hiddenSize: 16,
  intermediateSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: true,
  bosTokenId: 1,
  eosTokenId: 2,
} as LlamaConfig;

function pieces(extra: string[]): VocabPiece[] {
  return [
    { piece: '<unk>', score: 0, type: PieceType.Unknown },
    { piece: '<s>', score: 0, type: PieceType.Control },
    { piece: '</s>', score: 0, type: PieceType.Control },
    ...['▁', 'a', 'b', 'c', 'd', 'e', ...extra].map((piece, i) => ({ piece, score: -i, type: PieceType.Normal })),
  ];
}
const vocabOf = (extra: string[]) => ({
  pieces: pieces(extra),
  unkId: 0,
  bosId: 1,
  eosId: 2,
  padId: -1,
  byteFallback: false,
  addDummyPrefix: true,
  removeExtraWhitespaces: false,
});

/** A SentencePiece ModelProto: pieces (1), trainer_spec (2: BPE), normalizer_spec (3: identity). */
function sentencePieceModel(ps: VocabPiece[]): Uint8Array {
  const bytes: number[] = [];
  const varint = (out: number[], v: number) => {
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x > 0n) b |= 0x80;
      out.push(b);
    } while (x > 0n);
  };
  const field = (out: number[], num: number, wire: number) => varint(out, (num << 3) | wire);
  const message = (num: number, body: number[]) => {
    field(bytes, num, 2);
    varint(bytes, body.length);
    bytes.push(...body);
  };
  for (const p of ps) {
    const body: number[] = [];
    const text = [...enc.encode(p.piece)];
    field(body, 1, 2);
    varint(body, text.length);
    body.push(...text);
    field(body, 2, 5);
    const f = new Uint8Array(new Float32Array([p.score]).buffer);
    body.push(...f);
    field(body, 3, 0);
    varint(body, p.type);
    message(1, body);
  }
  const trainer: number[] = [];
  for (const [num, v] of [
    [3, 2],
    [40, 0],
    [41, 1],
    [42, 2],
    [43, -1],
  ]) {
    field(trainer, num, 0);
    varint(trainer, v);
  }
  message(2, trainer);
  const norm: number[] = [];
  const name = [...enc.encode('identity')];
  field(norm, 1, 2);
  varint(norm, name.length);
  norm.push(...name);
  for (const [num, v] of [
    [3, 1],
    [4, 0],
    [5, 1],
  ]) {
    field(norm, num, 0);
    varint(norm, v);
  }
  message(3, norm);
  return Uint8Array.from(bytes);
}

/** A llama2.c tokenizer.bin: max_token_length, then (score f32, length i32, bytes) per token. */
function llama2cTokenizer(texts: string[]): Uint8Array {
  const parts: number[] = [];
  const i32 = (v: number) => parts.push(...new Uint8Array(new Int32Array([v]).buffer));
  const f32 = (v: number) => parts.push(...new Uint8Array(new Float32Array([v]).buffer));
  i32(Math.max(...texts.map((t) => enc.encode(t).length)));
  texts.forEach((t, i) => {
    const b = enc.encode(t);
    f32(-i);
    i32(b.length);
    parts.push(...b);
  });
  return Uint8Array.from(parts);
}

function checkTokenizer(t: Tokenizer) {
  for (const text of ['ab cd', ' e\n<s>a', '', 'zz é']) {
    const ids = t.encode(text);
    invariant(
      ids.every((id) => Number.isInteger(id) && id >= 0 && id < t.numTokens),
      `encode("${text}") gave ids outside [0, ${t.numTokens}): ${ids}`,
    );
    invariant(typeof t.decode(ids) === 'string', 'decode did not return a string');
  }
  for (const id of [t.bosId, t.eosId, t.padId])
    invariant(Number.isInteger(id) && id >= 0 && id < t.numTokens, `special id ${id} outside [0, ${t.numTokens})`);
}

function checkTasks(l: LoadedTasks) {
  invariant(l.tasks.length > 0, 'no tasks');
  for (const t of l.tasks) {
    invariant(typeof t.name === 'string' && t.name !== '', `task name ${JSON.stringify(t.name)}`);
    invariant(Array.isArray(t.instances) && t.instances.length > 0, `${t.name}: no instances`);
    invariant(['accuracy', 'rougeL', 'exact'].includes(t.metric), `${t.name}: metric ${t.metric}`);
    if (t.options !== undefined)
      invariant(
        Array.isArray(t.options) && t.options.length > 0 && t.options.every((o) => typeof o === 'string'),
        `${t.name}: options ${JSON.stringify(t.options)}`,
      );
    for (const e of [...t.examples, ...t.instances]) {
      invariant(
        typeof e.input === 'string' && typeof e.output === 'string',
        `${t.name}: example ${JSON.stringify(e).slice(0, 80)}`,
      );
      if (e.outputs !== undefined)
        invariant(
          Array.isArray(e.outputs) && e.outputs.length > 0 && e.outputs.every((o) => typeof o === 'string'),
          `${t.name}: outputs ${JSON.stringify(e.outputs)}`,
        );
      if (e.options !== undefined)
        invariant(
          Array.isArray(e.options) && e.options.every((o) => typeof o === 'string'),
          `${t.name}: options ${JSON.stringify(e.options)}`,
        );
      // Rank classification scores over the label set: an accuracy task without one cannot be evaluated.
      if (t.metric === 'accuracy')
        invariant(
          (e.options ?? t.options ?? []).length > 0,
          `${t.name}: metric accuracy but no options for ${JSON.stringify(e.input).slice(0, 40)}`,
        );
    }
  }
}

const reports: FuzzReport[] = [];
const seconds: Record<string, number> = {};
let model: LlamaModel;
let baseHash: string;
let job: Job;
let optimizer: AdamW;
const targets: Array<FuzzTarget<any>> = [];

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  const header = safetensorsHeader();
  const scratch = (name: string) => mkdtempSync(join(root, `${name}-`));

  // safetensors: every dtype, metadata, an empty tensor
  const entry = (dtype: SafetensorsEntry['dtype'], shape: number[], size: number): SafetensorsEntry => ({
    dtype,
    shape,
    data: Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) * size }, (_, i) => (i * 37) & 0x3f),
  });
  const st = (m: Record<string, SafetensorsEntry>, md?: Record<string, string>): Files => ({
    't.safetensors': serializeSafetensors(m, md),
  });
  targets.push({
    name: 'safetensors',
    seeds: [
      st(
        { a: entry('F32', [2, 3], 4), b: entry('F16', [4], 2), c: entry('I64', [1, 2], 8) },
        { format: 'pt', note: 'x' },
      ),
      st({
        w: entry('BF16', [3, 2], 2),
        empty: entry('F32', [0, 4], 4),
        u: entry('U8', [5], 1),
        flag: entry('BOOL', [2], 1),
        i: entry('I32', [2], 4),
      }),
    ],
    structured: header,
    read: (dir) => readSafetensors(join(dir, 't.safetensors')),
    check: (r) => {
      for (const [name, e] of r.tensors) {
        const size =
          { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, U8: 1, I8: 1, BOOL: 1, F64: 8 }[e.dtype as string] ?? 0;
        invariant(
          size > 0 && e.data.byteLength === e.shape.reduce((a: number, b: number) => a * b, 1) * size,
          `${name}: ${e.data.byteLength} bytes for ${e.dtype} ${e.shape}`,
        );
        if (['F32', 'F16', 'BF16'].includes(e.dtype))
          invariant(
            toFloat32(e, name).length === e.shape.reduce((a: number, b: number) => a * b, 1),
            `${name}: decoded length`,
          );
      }
    },
    typed: (e) => e instanceof SafetensorsError,
  });

  // tokenizers: tokenizer.json (+ its config), SentencePiece .model, llama2.c .bin
  const tokDir = scratch('tok');
  saveTokenizer(
    new Tokenizer(
      tokenizerJsonFromPieces(vocabOf(['ab', '▁a', '▁ab', 'cd'])),
      tokenizerConfigFromPieces(vocabOf(['ab', '▁a', '▁ab', 'cd'])),
    ),
    tokDir,
  );
  const tokTyped = (e: unknown) => e instanceof TokenizerError;
  targets.push({
    name: 'tokenizer.json (+ tokenizer_config.json)',
    seeds: [readDir(tokDir)],
    mutable: (_f, rng) => (rng.int(4) === 0 ? 'tokenizer_config.json' : 'tokenizer.json'),
    json: jsonFile,
    read: (dir) => loadTokenizer(join(dir, 'tokenizer.json')),
    check: checkTokenizer,
    typed: tokTyped,
  });
  targets.push({
    name: 'tokenizer.model (SentencePiece)',
    seeds: [
      { 'tokenizer.model': sentencePieceModel(pieces(['ab', '▁a', '▁ab'])) },
      { 'tokenizer.model': sentencePieceModel(pieces(['cd', 'de'])) },
    ],
    read: (dir) => loadTokenizer(join(dir, 'tokenizer.model')),
    check: checkTokenizer,
    typed: tokTyped,
  });
  const l2c = ['<unk>', '<s>', '</s>', ' ', 'a', 'b', ' a', 'ab', '<0x0A>', 'é'];
  targets.push({
    name: 'tokenizer.bin (llama2.c)',
    seeds: [{ 'tok.bin': llama2cTokenizer(l2c) }],
    read: (dir) => loadTokenizer(join(dir, 'tok.bin'), { vocabSize: l2c.length }),
    check: checkTokenizer,
    typed: tokTyped,
  });

  // task files
  const sniDir = scratch('sni');
  exportSniTasks(
    [
      makeSyntheticTask('constant', 'c1', { seed: 1, numExamples: 3, numInstances: 3 }),
      { ...makeSyntheticTask('symbol_rule', 'vowel_first_l2', { seed: 2, numExamples: 2, numInstances: 2 }) },
    ],
    sniDir,
  );
  const taskTyped = (e: unknown) => e instanceof DatasetError;
  targets.push({
    name: 'task file: S-NI .json',
    seeds: readdirSync(sniDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => ({ 'task.json': read(join(sniDir, f)) })),
    json: jsonFile,
    read: (dir) => loadTasks(join(dir, 'task.json')),
    check: checkTasks,
    typed: taskTyped,
  });
  const lines = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  targets.push({
    name: 'task files: MetaICL folder',
    seeds: [
      {
        'quiz_2_100_train.jsonl': lines([
          { task: 'quiz', input: 'a?', output: 'yes', options: ['yes', 'no'] },
          { task: 'quiz', input: 'b?', output: 'no', options: ['yes', 'no'] },
        ]),
        'quiz_2_100_test.jsonl': lines([{ task: 'quiz', input: 'c?', output: 'yes', options: ['yes', 'no'] }]),
      },
      {
        'gen_1_7_train.jsonl': lines([{ input: 'x', output: 'y' }]),
        'gen_1_7_dev.jsonl': lines([
          { input: 'z', output: 'w' },
          { input: 'q', output: 'r' },
        ]),
      },
    ],
    json: jsonFile,
    read: (dir) => loadTasks(dir),
    check: checkTasks,
    typed: taskTyped,
  });
  targets.push({
    name: 'task file: JSONL (plain and P3)',
    seeds: [
      {
        'qa.jsonl': lines([
          { input: 'one', output: '1' },
          { input: 'two', output: '2', options: ['1', '2'] },
        ]),
      },
      {
        'p3.jsonl': lines([
          { inputs: 'Is it? ', targets: ['yes'], answer_choices: ['yes', 'no'] },
          { inputs: 'Or not?', targets: 'no', answer_choices: ['yes', 'no'] },
        ]),
      },
    ],
    json: jsonFile,
    read: (dir) => loadTasks(join(dir, readdirSync(dir)[0])),
    check: checkTasks,
    typed: taskTyped,
  });

  // trainer configs
  const cfgObject = {
    steps: 10,
    lr: 0.001,
    method: 'icl',
    model: { hiddenSize: 32, numHiddenLayers: 1, tokenizer: 'builtin:char' },
    data: { shots: 4, minShots: 2, maxLength: 64 },
    hyper: { k: 2, targetModules: ['q_proj', 'v_proj'] },
  };
  const protoKeys = Object.getOwnPropertyNames(Object.prototype).join();
  const checkConfig = (c: ReturnType<typeof defaultConfig>) => {
    invariant(
      Object.getOwnPropertyNames(Object.prototype).join() === protoKeys &&
        ({} as Record<string, unknown>).polluted === undefined,
      'Object.prototype changed',
    );
    invariant(Number.isInteger(c.steps) && c.steps >= 1 && Number.isFinite(c.lr), `steps ${c.steps}, lr ${c.lr}`);
    applyPatch(defaultConfig('multitask'), JSON.parse(JSON.stringify(c)), 'round-trip'); // what was accepted validates again
  };
  const readConfig = (file: string) => applyPatch(defaultConfig('multitask'), readConfigFile(file), file);
  targets.push({
    name: 'trainer config: JSON',
    seeds: [{ 'c.json': JSON.stringify(cfgObject, null, 2) }, { 'c.json': '{}' }],
    json: jsonFile,
    read: (dir) => readConfig(join(dir, 'c.json')),
    check: checkConfig,
    typed: (e) => e instanceof TrainerError,
  });
  targets.push({
    name: 'trainer config: YAML',
    seeds: [{ 'c.yaml': toYaml(cfgObject) }, { 'c.yaml': 'steps: 3 # comment\nmodel:\n  base: null\n' }],
    structured: (_p, content, rng) => {
      const m = mutateJson(parseYaml(new TextDecoder().decode(content)), rng);
      return { bytes: enc.encode(toYaml(m.value) ?? ''), what: `yaml ${m.what}` };
    },
    read: (dir) => readConfig(join(dir, 'c.yaml')),
    check: checkConfig,
    typed: (e) => e instanceof TrainerError,
  });

  // model files: HF directory (config.json + model.safetensors), llama2.c .bin comes from the same weights
  model = createLlama(TINY_CONFIG, { seed: 3, std: 0.2, trainable: false });
  const modelDir = scratch('model');
  saveLlama(model, modelDir);
  targets.push({
    name: 'model: config.json + model.safetensors',
    seeds: [readDir(modelDir)],
    json: jsonFile,
    structured: header,
    read: (dir) => loadLlama(dir, { trainable: false }),
    // An accepted model must compute: finite logits for a few tokens within its context. Only with weights of
    // ordinary size: finite but huge weights (a flipped exponent) overflow in any reader's model, which is the file's
    // content, not a format violation.
    check: (m: LlamaModel) => {
      for (const v of m.namedWeights().values())
        if ((v.dataSync() as Float32Array).some((x) => Math.abs(x) > 100)) return;
      const ids = [1, 3, 5].map((i) => i % m.config.vocabSize).slice(0, m.config.maxPositionEmbeddings);
      const logits = tf.tidy(
        () => m.forward({ inputIds: tf.tensor2d([ids], [1, ids.length], 'int32') }).logits!.dataSync() as Float32Array,
      );
      invariant(
        isFinite32(logits),
        `non-finite logits (${JSON.stringify({ rmsNormEps: m.config.rmsNormEps, ropeTheta: m.config.ropeTheta })})`,
      );
    },
    cleanup: (m?: LlamaModel) => m?.dispose(),
    typed: (e) => e instanceof ModelError || e instanceof SafetensorsError,
  });

  // prefix files
  const prefixFile = join(scratch('prefix'), 'p.safetensors');
  const t4 = () =>
    tf.tensor4d(
      Float32Array.from({ length: 2 * 2 * 3 * 4 }, (_, i) => Math.sin(i)),
      [2, 2, 3, 4],
    );
  new Prefix({ keys: [t4(), t4()], values: [t4(), t4()], length: 3, scheme: 'continue', positionOffsets: [5, 7] }).save(
    prefixFile,
    { config: TINY_CONFIG, meta: { task: 'demo' } },
  );
  targets.push({
    name: 'prefix file (.safetensors)',
    seeds: [{ 'p.safetensors': read(prefixFile) }],
    structured: header,
    read: (dir) => Prefix.load(join(dir, 'p.safetensors'), TINY_CONFIG),
    check: (p: Prefix) => {
      invariant(p.keys.length === TINY_CONFIG.numHiddenLayers && p.values.length === p.keys.length, 'layer count');
      for (const t of [...p.keys, ...p.values]) {
        invariant(t.shape.join() === [p.positionOffsets.length, 2, p.length, 4].join(), `shape ${t.shape}`);
        invariant(isFinite32(t.dataSync() as Float32Array), 'non-finite prefix values');
      }
    },
    cleanup: (p?: Prefix) => p?.dispose(),
    typed: (e) => e instanceof GistAttentionError || e instanceof SafetensorsError,
  });

  // PEFT adapters
  const adapterDir = scratch('adapter');
  injectLora(model, { name: 'seed', r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] });
  saveAdapter(model, 'seed', adapterDir);
  deleteAdapter(model, 'seed');
  const dropAdapters = () => listAdapters(model).forEach((a) => deleteAdapter(model, a));
  targets.push({
    name: 'adapter: adapter_config.json + adapter_model.safetensors',
    seeds: [readDir(adapterDir)],
    json: jsonFile,
    structured: header,
    read: (dir) => loadAdapter(dir, model, 'fz'),
    cleanup: dropAdapters,
    typed: (e) => e instanceof LoraError || e instanceof SafetensorsError,
  });

  // HyperLlama checkpoints (hypernet_config.json, gist rows, hyper/ and downstream/ adapters)
  baseHash = baseModelHash(model);
  const hlDir = join(scratch('hl'), 'ckpt');
  const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, downstream: { r: 2, alpha: 4 }, seed: 1 });
  saveHyperLlama(hl, hlDir, { basePath: 'base', baseHash });
  hl.dispose();
  dropAdapters();
  targets.push({
    name: 'HyperLlama checkpoint folder',
    seeds: [readDir(hlDir)],
    json: jsonFile,
    structured: header,
    read: (dir) => loadHyperLlama(dir, model, { baseHash }),
    check: (r: ReturnType<typeof loadHyperLlama>) =>
      invariant(isFinite32(r.hyperllama.gistEmbeddings.dataSync() as Float32Array), 'non-finite gist rows'),
    cleanup: (r?: ReturnType<typeof loadHyperLlama>) => {
      r?.hyperllama.dispose();
      dropAdapters();
    },
    typed: (e) => e instanceof HypernetError || e instanceof LoraError || e instanceof SafetensorsError,
  });

  // metrics.jsonl as a resume reads it: never an error, and what is kept parses and ends at the resumed step
  const metricLines = lines([
    { step: 0, evalLoss: 5.1 },
    ...[1, 2, 3, 4, 5, 6].map((step) => ({ step, loss: 5 - step / 10, lr: 0.001, tokens: 64 })),
    { step: 6, evalLoss: 4.4 },
  ]);
  targets.push({
    name: 'trainer metrics.jsonl (resume repair)',
    seeds: [{ 'metrics.jsonl': metricLines }],
    json: jsonFile,
    read: (dir) => truncateMetrics(join(dir, 'metrics.jsonl'), 4),
    check: (_dropped: number, dir: string) => {
      for (const line of readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean)) {
        const step = JSON.parse(line).step;
        invariant(typeof step === 'number' && step <= 4, `kept ${line}`);
      }
    },
    typed: () => false, // a damaged log is repaired, never an error
    repairs: true,
  });

  // the run lock as the next run reads it: taken (then it names this process) or OUT_LOCKED naming the holder
  const lockSeed = JSON.stringify({
    pid: 2 ** 22 + 17,
    host: hostname(),
    started: '2026-01-01T00:00:00.000Z',
    stage: 'multitask',
  });
  targets.push({
    name: 'trainer run lock',
    seeds: [
      { [LOCK_FILE]: lockSeed },
      { [LOCK_FILE]: JSON.stringify({ pid: 1, host: 'elsewhere', started: 'x', stage: 'hyperpretrain' }) },
    ],
    json: jsonFile,
    read: (dir) => acquireRunLock(dir, 'multitask', () => {}),
    check: (release: () => void, dir: string) => {
      const held = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
      invariant(held.pid === process.pid && held.host === hostname(), `lock names ${JSON.stringify(held)}`);
      release();
    },
    typed: (e) => e instanceof TrainerError && e.code === 'OUT_LOCKED',
  });

  // trainer checkpoints (state.json, trainable and optimizer safetensors), from a real 2-step run
  const run = scratch('run');
  const io = memoryIo();
  const code = await main(
    [
      'multitask',
      '--method',
      'zero-shot',
      '--out',
      run,
      '--steps',
      '2',
      '--eval-every',
      '0',
      '--backend',
      'cpu',
      ...TINY,
    ],
    io,
    () => {},
  );
  expect(code, io.lines.join('\n')).toBe(0);
  const ckpt = Object.fromEntries(
    ['state.json', 'trainable.safetensors', 'optimizer.safetensors'].map((f) => [
      `checkpoint/${f}`,
      read(join(run, 'checkpoint', f)),
    ]),
  );
  const { stage: _stage, ...saved } = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  const cfg = applyPatch(defaultConfig('multitask'), saved, 'config.json');
  job = buildJob('multitask', cfg);
  optimizer = new AdamW(job.params, { lr: cfg.lr });
  targets.push({
    name: 'trainer checkpoint (state + weights + optimizer)',
    seeds: [ckpt],
    json: jsonFile,
    structured: header,
    read: (dir) => restoreCheckpoint(join(dir, 'checkpoint'), 'multitask', job, optimizer),
    check: (r: { step: number }) => {
      for (const [name, v] of Object.entries(job.params))
        invariant(isFinite32(v.dataSync() as Float32Array), `${name} not finite`);
      const { tensors, metadata } = optimizer.stateEntries();
      invariant(Number(metadata.step) === r.step, `optimizer step ${metadata.step}, state step ${r.step}`);
      for (const [name, e] of tensors) invariant(isFinite32(toFloat32(e, name)), `optimizer ${name} not finite`);
    },
    typed: (e) => e instanceof TrainerError || e instanceof SafetensorsError || e instanceof OptionError,
  });
}, 120_000);

afterAll(async () => {
  if (reports.length)
    console.log(`\nfuzz: ${ROUNDS} seeded mutations per reader\n${formatReports(reports, seconds)}\n`);
  optimizer?.dispose();
  job?.dispose();
  model?.dispose();
  rmSync(root, { recursive: true, force: true });
  await disposeBackend();
});

describe('fuzz: every reader rejects damaged files with its typed error naming the file', () => {
  it(
    `${ROUNDS} seeded mutations per reader`,
    () => {
      expect(targets.length).toBeGreaterThanOrEqual(16);
      targets.forEach((t, i) => {
        const start = performance.now();
        reports.push(fuzz(t, join(root, `round-${i}`), ROUNDS, 1000 + i));
        seconds[t.name] = (performance.now() - start) / 1000;
      });
      const bugs = reports.flatMap((r) => r.bugs.slice(0, 5).map((b) => `${r.name}: ${b}`));
      expect(bugs).toEqual([]);
      // Each reader both accepted some mutants and rejected some: the mutations reach past the first check.
      reports.forEach((r, i) => {
        if (targets[i].repairs) expect(r.accepted, r.name).toBe(ROUNDS);
        else expect(r.rejected, r.name).toBeGreaterThan(0);
        expect(r.accepted + r.rejected, r.name).toBe(ROUNDS);
        // A synchronous hang cannot be timed out from here; a round this slow on a few hundred bytes is its warning.
        expect(r.slowestMs, `${r.name}: ${r.slowest}`).toBeLessThan(2000);
      });
    },
    180_000 * (ROUNDS / 500),
  );
});
