#!/usr/bin/env node
// The GPU targets, measured in one run on the webgpu backend: the adapter; fp32 matMul GFLOPS at 1024³,
// 2048³ and 4096³ on tfjs-webgpu's kernel and on our tiled one; the `model` benchmark (train, forward and decode
// tokens/s, peak RSS) for `tiny` and `small` with each kernel; one HyperLlama training step at TinyLlama-1.1B's shapes;
// each target against its required value (the CPU figures from tools/bench/cpu-reference.json).
//
//   node tools/scripts/gpu-check.mjs [--out <dir>] [--quick] [--cpu-reference <json>] [--peak-gflops <n>]
//                                    [--budget <seconds>] [--phases a,b] [--force]
//
// Every phase runs in its own process under its own time limit (and within the run's budget): one that throws, is
// killed at its limit or crashes is recorded as failed with its error, and the next runs, so a run always reports what
// it could measure. $OUT/gpu-check.json (or <dir>/gpu-check.json) is rewritten after each phase; gpu-check.md and the
// standard output end with the Markdown tables for the README's "### GPU" section.
//
// --quick: small sizes for a smoke run on Mesa's software adapter (a couple of minutes): matMul 128³ and 256³, `tiny`
// only at 1 × 32 tokens and 8 new tokens, and a 2-layer, 128-wide stand-in for the 1.1B model.
// Needs `npm ci && npm run build` first, or the bundle tools/scripts/gpu-pack.mjs makes for a machine without npm.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);

const USAGE = `usage: node tools/scripts/gpu-check.mjs [--out <dir>] [--quick] [--cpu-reference <json>] [--peak-gflops <n>] [--budget <seconds>] [--phases a,b] [--force]`;

/** Phases in the order they run (the targets' phases first, then the tiled kernel's model runs). */
const PHASES_FULL = [
  { name: 'adapter', kind: 'adapter', limit: 90 },
  { name: 'matmul', kind: 'matmul', limit: 180 },
  { name: 'model-tiny-tfjs', kind: 'model', config: 'tiny', kernel: 'tfjs', limit: 150 },
  { name: 'model-small-tfjs', kind: 'model', config: 'small', kernel: 'tfjs', limit: 180 },
  { name: 'hyperllama-1b', kind: 'hyperllama', limit: 240 },
  { name: 'model-tiny-tiled', kind: 'model', config: 'tiny', kernel: 'tiled', limit: 150 },
  { name: 'model-small-tiled', kind: 'model', config: 'small', kernel: 'tiled', limit: 180 },
];
const PHASES_QUICK = [
  { name: 'adapter', kind: 'adapter', limit: 60 },
  { name: 'matmul', kind: 'matmul', limit: 120 },
  { name: 'model-tiny-tfjs', kind: 'model', config: 'tiny', kernel: 'tfjs', limit: 240 },
  { name: 'model-tiny-tiled', kind: 'model', config: 'tiny', kernel: 'tiled', limit: 240 },
  { name: 'hyperllama-1b', kind: 'hyperllama', limit: 180 },
];
/** The whole run's default budget in seconds (an H200 call may run 10 minutes; this leaves room for the setup). */
const BUDGET = { full: 450, quick: 600 };
/** A phase is not started with less than this many seconds of the budget left. */
const MIN_START_SECONDS = 20;

/** `model` suite workload in --quick mode (the configuration's is 4 × 256 tokens and 64 new tokens). */
const QUICK_SHAPE = { batch: 1, seq: 32, newTokens: 8 };

/** The 1.1B phase: k gists after a hyper input of `hyper` tokens, a downstream row of `downstream` tokens. */
const HYPER_STEP = {
  full: { hyper: 64, k: 4, downstream: 32, steps: 3 },
  quick: { hyper: 32, k: 4, downstream: 16, steps: 2 },
};
/** --quick's stand-in for TinyLlama-1.1B: its vocabulary and head layout (grouped-query, 8 query heads per KV head), 2 layers, 128 wide. */
const STAND_IN = {
  vocabSize: 32000,
  hiddenSize: 128,
  intermediateSize: 352,
  numHiddenLayers: 2,
  numAttentionHeads: 8,
  numKeyValueHeads: 1,
  headDim: 16,
  maxPositionEmbeddings: 2048,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
};

/**
 * Dense fp32 (non-tensor-core) peaks in GFLOPS by the vendors' datasheets, matched against the adapter's and
 * nvidia-smi's names; `--peak-gflops` gives any other.
 */
const FP32_PEAKS = [
  [/H200 NVL/i, 60_000, 'NVIDIA H200 NVL'],
  [/H200/i, 67_000, 'NVIDIA H200 SXM'],
  [/H100 NVL/i, 60_000, 'NVIDIA H100 NVL'],
  [/H100 PCIe/i, 51_000, 'NVIDIA H100 PCIe'],
  [/H100/i, 67_000, 'NVIDIA H100 SXM'],
  [/A100/i, 19_500, 'NVIDIA A100'],
  [/L40S/i, 91_600, 'NVIDIA L40S'],
  [/RTX 4090/i, 82_600, 'NVIDIA GeForce RTX 4090'],
];

function parseArgs(argv) {
  const a = { quick: false, force: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--out') a.out = value();
    else if (flag === '--quick') a.quick = true;
    else if (flag === '--force') a.force = true;
    else if (flag === '--cpu-reference') a.cpuReference = value();
    else if (flag === '--peak-gflops') a.peakGflops = Number(value());
    else if (flag === '--budget') a.budget = Number(value());
    else if (flag === '--phases') a.phases = value().split(',');
    // Internal: one phase in this process.
    else if (flag === '--phase') a.phase = value();
    else if (flag === '--result') a.result = value();
    else if (flag === '--help' || flag === '-h') a.help = true;
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (a.peakGflops !== undefined && !(a.peakGflops > 0)) throw new Error('--peak-gflops needs a positive number');
  if (a.budget !== undefined && !(a.budget > 0)) throw new Error('--budget needs a positive number of seconds');
  return a;
}

// ---------------------------------------------------------------------------------------------------------------
// Phases (each in its own process: `--phase <name> --result <file>`)

async function runPhase(args) {
  const phases = args.quick ? PHASES_QUICK : PHASES_FULL;
  const phase = phases.find((p) => p.name === args.phase);
  if (!phase) throw new Error(`unknown phase ${args.phase}`);
  const runtime = await import('@hyperllama/runtime');
  let out;
  try {
    const backend = await runtime.initBackend({ backend: 'webgpu' });
    if (phase.kind === 'adapter') out = adapterPhase(runtime, backend);
    else if (phase.kind === 'matmul') out = await matmulPhase(args.quick);
    else if (phase.kind === 'model') out = await modelPhase(phase, args.quick);
    else out = await hyperllamaPhase(runtime, args.quick);
  } finally {
    await runtime.disposeBackend();
  }
  writeFileSync(args.result, JSON.stringify(out));
}

function adapterPhase(runtime, backend) {
  const info = runtime.webgpuAdapterInfo();
  if (!info) throw new Error('initBackend returned, but the runtime reports no webgpu adapter');
  return { backend: backend.name, reason: backend.reason, ...info, software: isSoftwareAdapter(info) };
}

/** Mesa's llvmpipe / lavapipe, SwiftShader, or an adapter that calls itself a fallback: correct, but far too slow for full sizes. */
function isSoftwareAdapter(info) {
  return (
    info.isFallbackAdapter ||
    /llvmpipe|lavapipe|softpipe|swiftshader/i.test(`${info.device} ${info.driver} ${info.description}`)
  );
}

async function matmulPhase(quick) {
  const { SUITES } = await import('@hyperllama/bench');
  const records = await (await SUITES.runtime()).run({ quick });
  const gflops = {};
  for (const r of records) {
    const m = /^matMul (\d+)³ (tfjs|tiled)$/.exec(r.name);
    if (m) (gflops[m[1]] ??= {})[m[2]] = r.value;
  }
  return { records, gflops };
}

async function modelPhase(phase, quick) {
  const { SUITES } = await import('@hyperllama/bench');
  const records = await (
    await SUITES.model()
  ).run({
    quick,
    config: phase.config,
    ...(quick ? { shape: QUICK_SHAPE } : {}),
  });
  const metric = (m) => records.find((r) => r.metric === m)?.value;
  return {
    config: phase.config,
    kernel: phase.kernel,
    backend: records[0]?.backend,
    name: records[0]?.name,
    trainTokensPerSec: metric('trainTokensPerSec'),
    forwardTokensPerSec: metric('forwardTokensPerSec'),
    decodeTokensPerSec: metric('decodeTokensPerSec'),
    peakRssMB: metric('peakRssMB'),
    records,
  };
}

/**
 * One HyperLlama at TinyLlama-1.1B's shapes (--quick: a 2-layer stand-in), fp32, random weights, the hyper LoRA the
 * trainer uses (r 8, alpha 16, every linear that can change the prefix), AdamW, global-norm clipping at 1, batch 1:
 * a few training steps; seconds per step, losses, and whether every trainable tensor changed.
 *
 * The weights are made on the host as views into one pool of seeded normal draws (std 0.02), so that 1.1B parameters
 * take seconds rather than the minute `createLlama`'s one draw per weight would, and go straight to the GPU; the gist
 * rows start as the trainer's do (mean of the vocabulary rows + 0.1 σ noise) but are read asynchronously, because
 * `new HyperLlama` reads them synchronously, which webgpu cannot.
 */
async function hyperllamaPhase(runtime, quick) {
  const tf = await import('@tensorflow/tfjs');
  const { LlamaModel, expectedWeightShapes, validateLlamaConfig } = await import('@hyperllama/llama-model');
  const { HyperLlama, trainStep } = await import('@hyperllama/hypernet');
  const { SUITES } = await import('@hyperllama/bench');
  const shape = quick ? HYPER_STEP.quick : HYPER_STEP.full;
  const config = validateLlamaConfig(quick ? STAND_IN : (await SUITES.big()).TINYLLAMA);
  const rng = new runtime.Rng(0);

  let t = performance.now();
  const shapes = expectedWeightShapes(config);
  const sizes = [...shapes.values()].map((s) => s.reduce((x, y) => x * y, 1));
  const largest = Math.max(...sizes);
  const pool = rng.fork('pool').normalArray(largest + (1 << 20), 0, 0.02);
  const weights = new Map();
  let parameters = 0;
  for (const [name, s] of shapes) {
    const n = s.reduce((x, y) => x * y, 1);
    parameters += n;
    const start = rng.int(pool.length - n + 1);
    weights.set(name, {
      shape: s,
      data: s.length === 1 ? new Float32Array(n).fill(1) : pool.subarray(start, start + n),
    });
  }
  const model = new LlamaModel(config, weights, { trainable: false, source: 'gpu-check random weights' });
  weights.clear();
  // Wait for the uploads and transposes: one element of the last linear.
  const probe = tf.tidy(() => tf.slice(tf.reshape(model.embedTokens, [-1]), [0], [1]));
  await probe.data();
  probe.dispose();
  const buildSeconds = (performance.now() - t) / 1000;
  progress(`${(parameters / 1e9).toFixed(3)}B parameters built and uploaded in ${buildSeconds.toFixed(1)} s`);

  const gistEmbeddings = await gistRows(tf, model, shape.k, rng.fork('gist-init'));
  const hl = new HyperLlama(model, { k: shape.k, hyper: { r: 8, alpha: 16 }, seed: 0, gistEmbeddings });
  const params = hl.trainableVariables();
  const names = Object.keys(params);
  const trainable = names.reduce((n, k) => n + params[k].size, 0);
  const optimizer = new runtime.AdamW(params, { lr: 1e-3, weightDecay: 0 });
  const batch = randomHyperBatch(config.vocabSize, hl.gistIds, shape, rng.fork('batch'));
  const before = Object.fromEntries(names.map((k) => [k, tf.clone(params[k])]));

  const steps = [];
  for (let s = 0; s < shape.steps; s++) {
    t = performance.now();
    const { loss, gradNorm } = await trainStep(params, optimizer, () => hl.loss(batch, { training: true }), {
      maxGradNorm: 1,
    });
    // trainStep has read the loss; wait for the update too (one element of the gist rows).
    const probeStep = tf.slice(hl.gistEmbeddings, [0, 0], [1, 1]);
    await probeStep.data();
    probeStep.dispose();
    steps.push({ loss, gradNorm, seconds: (performance.now() - t) / 1000 });
    progress(
      `step ${s + 1}: loss ${loss.toFixed(4)}, gradient norm ${gradNorm.toFixed(4)}, ${steps[s].seconds.toFixed(2)} s`,
    );
  }
  const changedBy = tf.tidy(() => tf.stack(names.map((k) => tf.max(tf.abs(tf.sub(params[k], before[k]))))));
  const deltas = await changedBy.data();
  tf.dispose([changedBy, ...Object.values(before)]);
  const unchanged = names.filter((_, i) => !(deltas[i] > 0));
  const result = {
    model: quick ? 'stand-in (2 layers, hidden 128)' : 'TinyLlama-1.1B shapes',
    config,
    parameters,
    trainableParameters: trainable,
    trainableTensors: names.length,
    changedTensors: names.length - unchanged.length,
    unchanged: unchanged.slice(0, 10),
    hyperTokens: shape.hyper,
    gists: shape.k,
    downstreamTokens: shape.downstream,
    buildSeconds,
    steps,
    firstStepSeconds: steps[0].seconds,
    secondsPerStep: median(steps.slice(1).map((s) => s.seconds)),
    lossesFinite: steps.every((s) => Number.isFinite(s.loss)),
    backendBytes: tf.memory().numBytes,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  };
  optimizer.dispose();
  hl.dispose();
  model.dispose();
  return result;
}

/** [k·D] gist rows: the mean of the vocabulary rows plus N(0, (0.1·σ)²) noise, σ the std of every entry (as the trainer). */
async function gistRows(tf, model, k, rng) {
  const [meanT, stdT] = tf.tidy(() => {
    const e = model.embedTokens;
    return [tf.mean(e, 0), tf.sqrt(tf.mean(tf.square(tf.sub(e, tf.mean(e)))))];
  });
  const mean = await meanT.data();
  const std = (await stdT.data())[0];
  tf.dispose([meanT, stdT]);
  const D = mean.length;
  const noise = rng.normalArray(k * D, 0, 0.1 * std);
  return noise.map((n, i) => mean[i % D] + n);
}

/** One row: `[BOS] <hyper-1 random tokens> <gists>`, then a downstream row whose second half is the target. */
function randomHyperBatch(V, gistIds, shape, rng) {
  const token = () => 3 + rng.int(V - 3);
  const hyperIds = [1, ...Array.from({ length: shape.hyper - 1 }, token), ...gistIds];
  const down = [1, ...Array.from({ length: shape.downstream - 1 }, token)];
  const half = shape.downstream >> 1;
  return {
    hyper: {
      inputIds: [hyperIds],
      attentionMask: [hyperIds.map(() => 1)],
      gistPositions: [gistIds.map((_, j) => shape.hyper + j)],
      lengths: [hyperIds.length],
      numExamples: [1],
    },
    downstream: {
      inputIds: [down],
      attentionMask: [down.map(() => 1)],
      labels: [down.map((id, i) => (i < half ? -100 : id))],
      lengths: [down.length],
    },
  };
}

const progress = (msg) => process.stderr.write(`[gpu-check] ${msg}\n`);

function median(xs) {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ---------------------------------------------------------------------------------------------------------------
// The run: phases in child processes, targets, report

/** The repository root (found upwards from this file, else from the working directory), for the default reference. */
function repoRoot() {
  for (const start of [dirname(self), process.cwd()])
    for (let dir = start; dir !== dirname(dir); dir = dirname(dir))
      if (existsSync(join(dir, 'tools', 'bench', 'cpu-reference.json'))) return dir;
  return null;
}

/**
 * The 2-core CPU figures, per configuration: each metric's best value over the non-webgpu backends of a bench JSON
 * (`{ records }`, as `npm run bench -- --config tiny,small --json <file>` writes, or tools/bench/cpu-reference.json).
 */
export function readCpuReference(file) {
  const json = JSON.parse(readFileSync(file, 'utf8'));
  const figures = {};
  for (const r of json.records ?? []) {
    if (r.suite !== 'model' || /webgpu/.test(r.backend)) continue;
    const metric = { trainTokensPerSec: 'train', forwardTokensPerSec: 'forward', decodeTokensPerSec: 'decode' }[
      r.metric
    ];
    if (!metric || !Number.isFinite(r.value)) continue;
    const row = (figures[r.name] ??= {});
    if (!(row[metric]?.value >= r.value)) row[metric] = { value: r.value, backend: r.backend };
  }
  return {
    file,
    source: json.source ?? json.meta?.date ?? file,
    cpus: json.meta?.cpus ?? json.cpus,
    cpuModel: json.meta?.cpuModel ?? json.cpuModel,
    figures,
  };
}

function nvidiaSmi() {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  return r.status === 0 ? r.stdout.trim() : null;
}

function fp32Peak(args, adapter, smi) {
  if (args.peakGflops) return { gflops: args.peakGflops, source: '--peak-gflops' };
  const names = [adapter?.device, adapter?.driver, adapter?.description, smi].filter(Boolean).join(' ');
  for (const [re, gflops, what] of FP32_PEAKS)
    if (re.test(names)) return { gflops, source: `${what} datasheet, dense fp32 without tensor cores` };
  return null;
}

/** Every GPU target: measured, required, met (true / false / null = could not be decided). */
export function evaluateTargets(report, { quick, peak }) {
  const phase = (name) => report.phases.find((p) => p.name === name);
  const ok = (name) => (phase(name)?.status === 'ok' ? phase(name).data : null);
  const cpu = report.cpuReference?.figures ?? {};
  const targets = [];
  // Outside --quick, a target whose phases all failed or ran out of time is missed; one never started decides nothing.
  const broke = (ps) => !quick && ps.length > 0 && ps.every((p) => p?.status === 'failed' || p?.status === 'timeout');
  const fmt = (x, digits = 0) => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });

  // matMul at 4096³ (the largest size run), best kernel, against the fp32 peak.
  const mm = ok('matmul');
  const sizes = mm ? Object.keys(mm.gflops).map(Number) : [];
  const size = sizes.length ? Math.max(...sizes) : 4096;
  const best = mm?.gflops[size] ? Object.entries(mm.gflops[size]).sort((a, b) => b[1] - a[1])[0] : null;
  const mmTarget = { id: 'matmul-4096', target: 'matMul ≥ 25 % of the adapter’s fp32 peak at 4096³', unit: 'GFLOPS' };
  if (!best) {
    const met = broke([phase('matmul')]) ? false : null;
    targets.push({ ...mmTarget, measured: null, required: null, met, note: whyNot(phase('matmul')) });
  } else {
    const required = peak ? 0.25 * peak.gflops : null;
    const notes = [`${best[0]} kernel at ${size}³`];
    if (peak) notes.push(`${((100 * best[1]) / peak.gflops).toFixed(1)} % of ${fmt(peak.gflops)} (${peak.source})`);
    else notes.push('fp32 peak unknown for this adapter: pass --peak-gflops');
    if (size !== 4096) notes.push(`--quick: ${size}³ instead of 4096³, not the target's size`);
    targets.push({
      ...mmTarget,
      measured: best[1],
      required,
      met: required === null || size !== 4096 ? null : best[1] >= required,
      note: notes.join('; '),
    });
  }

  // Model targets: best of the two kernels.
  const bestModel = (config, metric) => {
    const runs = report.phases
      .filter((p) => p.kind === 'model' && p.config === config && p.status === 'ok')
      .map((p) => ({ kernel: p.kernel, value: p.data[metric] }))
      .filter((r) => Number.isFinite(r.value));
    return runs.sort((a, b) => b.value - a.value)[0] ?? null;
  };
  const ratioTarget = (id, target, config, metric, cpuMetric, factor) => {
    const m = bestModel(config, metric);
    const ref = cpu[config]?.[cpuMetric]?.value;
    const phases = report.phases.filter((p) => p.kind === 'model' && p.config === config);
    const t = { id, target, unit: 'tokens/s' };
    if (!m) {
      const why = phases.length
        ? phases.map((p) => `${p.name}: ${whyNot(p)}`).join('; ')
        : `not run${quick ? ' (--quick)' : ''}`;
      const met = broke(phases) ? false : null;
      return targets.push({ ...t, measured: null, required: ref ? factor * ref : null, met, note: why });
    }
    const notes = [`${m.kernel} matMul`];
    if (quick)
      notes.push(`--quick workload (${QUICK_SHAPE.batch}×${QUICK_SHAPE.seq}, ${QUICK_SHAPE.newTokens} new tokens)`);
    if (!ref) notes.push('CPU figure missing');
    else notes.push(`${(m.value / ref).toFixed(2)}× the CPU's ${fmt(ref, 1)}`);
    targets.push({
      ...t,
      measured: m.value,
      required: ref ? factor * ref : null,
      met: ref && !quick ? m.value >= factor * ref : null,
      note: notes.join('; '),
    });
  };
  ratioTarget('small-train', '`small` training ≥ 10× the 2-core CPU', 'small', 'trainTokensPerSec', 'train', 10);
  ratioTarget('tiny-decode', 'decode ≥ 5× the CPU, `tiny`', 'tiny', 'decodeTokensPerSec', 'decode', 5);
  ratioTarget('small-decode', 'decode ≥ 5× the CPU, `small`', 'small', 'decodeTokensPerSec', 'decode', 5);

  // The 1.1B HyperLlama step.
  const hl = ok('hyperllama-1b');
  const hlTarget = { id: 'hyperllama-1b', target: 'the 1.1B configuration trains a HyperLlama step', unit: 's/step' };
  if (!hl) {
    const p = phase('hyperllama-1b');
    targets.push({ ...hlTarget, measured: null, required: null, met: broke([p]) ? false : null, note: whyNot(p) });
  }
  if (hl) {
    const trained = hl.lossesFinite && hl.changedTensors === hl.trainableTensors;
    targets.push({
      ...hlTarget,
      measured: hl.secondsPerStep,
      required: null,
      met: quick ? null : trained,
      note: [
        quick ? 'stand-in model (--quick)' : hl.model,
        `losses ${hl.steps.map((s) => s.loss.toFixed(3)).join(', ')}`,
        `${hl.changedTensors} of ${hl.trainableTensors} trainable tensors changed`,
        `first step ${hl.firstStepSeconds.toFixed(2)} s`,
      ].join('; '),
    });
  }
  return targets;
}

function whyNot(p) {
  if (!p) return 'not run';
  if (p.status === 'ok') return 'ok';
  return `${p.status}${p.error ? `: ${p.error.split('\n')[0]}` : ''}`;
}

const num = (x, digits = 0) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
/** Three significant digits or the whole number: 2.46, 24.6, 246, 2,460. */
const auto = (x) => num(x, Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);

/** The Markdown for the README's GPU section. */
export function markdown(report) {
  const lines = [];
  const a = report.adapter;
  const when = report.meta.date.slice(0, 10);
  lines.push(
    `Adapter: ${a ? `${[a.vendor, a.architecture, a.device].filter(Boolean).join(' ') || 'unnamed'} (Dawn's ${a.source} adapter${a.driver ? `, ${a.driver}` : ''}${a.software ? ', software' : ''})` : 'none'}` +
      `${report.meta.nvidiaSmi ? `; nvidia-smi: ${report.meta.nvidiaSmi}` : ''}; Node ${report.meta.node}; ${when}; ` +
      `\`node tools/scripts/gpu-check.mjs${report.meta.quick ? ' --quick' : ''}\` in ${num(report.meta.totalSeconds)} s.`,
  );
  const mm = report.phases.find((p) => p.name === 'matmul');
  if (mm?.status === 'ok') {
    lines.push('', '| fp32 matMul, GFLOPS | tfjs-webgpu | tiled (ours) |', '| --- | ---: | ---: |');
    for (const [n, k] of Object.entries(mm.data.gflops).sort((x, y) => Number(x[0]) - Number(y[0])))
      lines.push(`| ${n}³ | ${auto(k.tfjs)} | ${auto(k.tiled)} |`);
  }
  const models = report.phases.filter((p) => p.kind === 'model');
  if (models.length) {
    lines.push(
      '',
      '| config | matMul kernel | train tokens/s | forward tokens/s | decode tokens/s | peak RSS MB |',
      '| --- | --- | ---: | ---: | ---: | ---: |',
    );
    for (const p of models) {
      const d = p.status === 'ok' ? p.data : null;
      const name = d?.name ?? p.config;
      lines.push(
        d
          ? `| ${name} | ${p.kernel} | ${auto(d.trainTokensPerSec)} | ${auto(d.forwardTokensPerSec)} | ${auto(d.decodeTokensPerSec)} | ${num(d.peakRssMB)} |`
          : `| ${name} | ${p.kernel} | ${whyNot(p)} | | | |`,
      );
    }
  }
  const hl = report.phases.find((p) => p.name === 'hyperllama-1b');
  if (hl?.status === 'ok') {
    const d = hl.data;
    lines.push(
      '',
      `HyperLlama step (${d.model}, ${(d.parameters / 1e9).toFixed(3)}B parameters, fp32, hyper LoRA r 8 on ${d.trainableTensors} tensors = ${num(d.trainableParameters)} trainable, AdamW, batch 1: ${d.hyperTokens}-token hyper input + ${d.gists} gists, ${d.downstreamTokens}-token downstream): ` +
        `weights built and uploaded in ${num(d.buildSeconds, 1)} s, first step ${num(d.firstStepSeconds, 2)} s, then ${num(d.secondsPerStep, 2)} s per step; losses ${d.steps.map((s) => num(s.loss, 3)).join(', ')}; ` +
        `${d.changedTensors} of ${d.trainableTensors} trainable tensors changed; ${num(d.backendBytes / 2 ** 30, 2)} GiB on the backend, peak RSS ${num(d.peakRssMB)} MB.`,
    );
  }
  lines.push('', '| GPU target | measured | required | result |', '| --- | ---: | ---: | --- |');
  for (const t of report.targets) {
    const measured = t.measured === null ? '—' : `${auto(t.measured)} ${t.unit}`;
    const required = t.required === null ? '—' : `${auto(t.required)} ${t.unit}`;
    const result = t.met === true ? 'met' : t.met === false ? '**not met**' : 'not decided';
    lines.push(`| ${t.target} | ${measured} | ${required} | ${result} (${t.note}) |`);
  }
  const failed = report.phases.filter((p) => p.status !== 'ok');
  if (failed.length)
    lines.push('', `Phases not measured: ${failed.map((p) => `${p.name} (${whyNot(p)})`).join('; ')}.`);
  if (report.cpuReference)
    lines.push(
      '',
      `CPU figures: ${report.cpuReference.source}${report.cpuReference.cpus ? ` (${report.cpuReference.cpus} cores)` : ''}.`,
    );
  return lines.join('\n');
}

function runAll(args) {
  const started = performance.now();
  const out = resolve(args.out ?? process.env.OUT ?? join('bench-results', 'gpu-check'));
  mkdirSync(out, { recursive: true });
  const budget = args.budget ?? (args.quick ? BUDGET.quick : BUDGET.full);
  const deadline = started + budget * 1000;
  let phases = args.quick ? PHASES_QUICK : PHASES_FULL;
  if (args.phases) {
    const unknown = args.phases.filter((n) => !phases.some((p) => p.name === n));
    if (unknown.length)
      throw new Error(`unknown phase(s) ${unknown.join(', ')}; known: ${phases.map((p) => p.name).join(', ')}`);
    phases = phases.filter((p) => p.name === 'adapter' || args.phases.includes(p.name));
  }

  let cpuReference = null;
  const refFile = args.cpuReference ?? (repoRoot() && join(repoRoot(), 'tools', 'bench', 'cpu-reference.json'));
  try {
    if (refFile) cpuReference = readCpuReference(refFile);
  } catch (e) {
    process.stderr.write(
      `[gpu-check] CPU reference ${refFile} unreadable: ${e.message}; targets against the CPU are not decided\n`,
    );
  }

  const report = {
    meta: {
      date: new Date().toISOString(),
      quick: args.quick,
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      nvidiaSmi: nvidiaSmi(),
      budgetSeconds: budget,
      totalSeconds: 0,
      argv: process.argv.slice(2),
    },
    adapter: null,
    cpuReference,
    phases: [],
    targets: [],
    markdown: '',
  };
  const save = () => {
    report.meta.totalSeconds = (performance.now() - started) / 1000;
    const adapterData = report.phases.find((p) => p.name === 'adapter' && p.status === 'ok')?.data ?? null;
    report.adapter = adapterData;
    report.targets = evaluateTargets(report, {
      quick: args.quick,
      peak: fp32Peak(args, adapterData, report.meta.nvidiaSmi),
    });
    report.markdown = markdown(report);
    writeFileSync(join(out, 'gpu-check.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(out, 'gpu-check.md'), `${report.markdown}\n`);
  };

  const scratch = mkdtempSync(join(tmpdir(), 'gpu-check-'));
  let stop = null; // why the remaining phases do not run
  try {
    for (const p of phases) {
      const entry = { name: p.name, kind: p.kind, config: p.config, kernel: p.kernel, status: 'not run', seconds: 0 };
      report.phases.push(entry);
      const left = (deadline - performance.now()) / 1000;
      if (stop || left < MIN_START_SECONDS) {
        entry.error = stop ?? `out of the run's ${budget} s budget`;
        save();
        continue;
      }
      const limit = Math.min(p.limit, Math.floor(left));
      entry.limitSeconds = limit;
      progress(`${p.name} (limit ${limit} s) ...`);
      const result = join(scratch, `${p.name}.json`);
      const t = performance.now();
      const child = spawnSync(
        process.execPath,
        [self, '--phase', p.name, '--result', result, ...(args.quick ? ['--quick'] : [])],
        {
          stdio: ['ignore', 'inherit', 'inherit'],
          timeout: limit * 1000,
          killSignal: 'SIGKILL',
          env: { ...process.env, ...(p.kernel ? { HYPERLLAMA_WEBGPU_MATMUL: p.kernel } : {}) },
        },
      );
      entry.seconds = (performance.now() - t) / 1000;
      if (existsSync(result)) {
        entry.status = 'ok';
        entry.data = JSON.parse(readFileSync(result, 'utf8'));
      } else if (child.error?.code === 'ETIMEDOUT' || (child.signal === 'SIGKILL' && entry.seconds >= limit - 1)) {
        entry.status = 'timeout';
        entry.error = `killed after its ${limit} s limit`;
      } else {
        entry.status = 'failed';
        const errFile = `${result}.error`;
        entry.error = existsSync(errFile)
          ? readFileSync(errFile, 'utf8')
          : `exited with ${child.status ?? child.signal}${child.error ? ` (${child.error.message})` : ''}`;
      }
      process.stderr.write(
        `[gpu-check] ${p.name}: ${entry.status} in ${entry.seconds.toFixed(1)} s${entry.error ? ` — ${entry.error.split('\n')[0]}` : ''}\n`,
      );
      if (p.name === 'adapter') {
        if (entry.status !== 'ok') stop = `no webgpu backend (adapter phase ${entry.status})`;
        else if (entry.data.software && !args.quick && !args.force)
          stop = `software adapter (${entry.data.description}): full sizes would take hours; use --quick, fix the GPU driver, or --force`;
      }
      save();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  save();
  console.log(`\n${report.markdown}\n\nwrote ${join(out, 'gpu-check.json')} and gpu-check.md`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(USAGE);
    return;
  }
  if (!args.phase) return runAll(args);
  try {
    await runPhase(args);
  } catch (e) {
    writeFileSync(`${args.result}.error`, e instanceof Error ? (e.stack ?? e.message) : String(e));
    throw e;
  }
  // Dawn's instance can keep the event loop alive; the result is written.
  process.exit(0);
}

const invoked = process.argv[1] && resolve(process.argv[1]) === self;
if (invoked) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
