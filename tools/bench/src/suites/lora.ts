// Benchmarks of @hyperllama/lora: NF4 storage (bytes per quantised parameter) and the cost of dequantising NF4 weights
// in every forward pass, for one linear and for a whole model, against float32 weights on the active backend.
import * as tf from '@tensorflow/tfjs';
import { createLlama, type LlamaConfig, type LlamaModel } from '@hyperllama/llama-model';
import { Nf4Linear, injectLora, quantizeNf4, nf4StoredBytes, quantizeModel } from '@hyperllama/lora';
import { Rng } from '@hyperllama/runtime';

export interface BenchRow {
  suite: string;
  name: string;
  backend: string;
  metric: string;
  value: number;
  unit: string;
  runs?: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Milliseconds per call of `fn` (its result read back, so the work is done), after one warm-up call. */
function timeRuns(fn: () => tf.Tensor, runs: number): number[] {
  tf.tidy(() => fn().dataSync());
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    tf.tidy(() => fn().dataSync());
    out.push(performance.now() - t0);
  }
  return out;
}

export async function run(opts: { quick: boolean }): Promise<BenchRow[]> {
  const backend = tf.getBackend();
  const rows: BenchRow[] = [];
  const row = (name: string, metric: string, value: number, unit: string, runs?: number[]) =>
    rows.push({ suite: 'lora', name, backend, metric, value, unit, ...(runs ? { runs } : {}) });
  const rng = new Rng(0);
  const runs = opts.quick ? 3 : 7;

  // Storage: bytes per quantised parameter (independent of the backend).
  const shapes: Array<[number, number]> = opts.quick ? [[256, 688]] : [[256, 688], [4096, 4096]];
  for (const [i, o] of shapes) {
    const w = rng.normalArray(i * o, 0, 0.02);
    for (const doubleQuant of [true, false]) {
      const q = quantizeNf4(w, [i, o], { blockSize: 64, doubleQuant });
      row(`nf4 [${i}x${o}] block 64${doubleQuant ? ' double-quant' : ''}`, 'stored size', nf4StoredBytes(q) / (i * o), 'bytes/param');
    }
  }

  // One linear: x [N, in] @ W [in, out], float32 Variable vs NF4 dequantised per call.
  const [n, inF, outF] = opts.quick ? [64, 256, 688] : [256, 1024, 2752];
  const wv = rng.normalArray(inF * outF, 0, 0.02);
  const wFloat = tf.variable(tf.tensor2d(wv, [inF, outF]));
  const nf4 = Nf4Linear.fromWeight(wv, inF, outF, { blockSize: 64, doubleQuant: true });
  const x = tf.tensor2d(rng.normalArray(n * inF), [n, inF]);
  const denseRuns = timeRuns(() => tf.matMul(x, wFloat), runs);
  const nf4Runs = timeRuns(() => nf4.apply(x), runs);
  const dequantRuns: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    nf4.dequantize();
    dequantRuns.push(performance.now() - t0);
  }
  const shape = `[${n}x${inF}]@[${inF}x${outF}]`;
  row(`linear ${shape} float32`, 'forward', median(denseRuns), 'ms', denseRuns);
  row(`linear ${shape} nf4`, 'forward', median(nf4Runs), 'ms', nf4Runs);
  row(`linear ${shape} nf4 dequantise only (JS)`, 'time', median(dequantRuns), 'ms', dequantRuns);
  row(`linear ${shape}`, 'nf4 slowdown', median(nf4Runs) / median(denseRuns), 'x');
  tf.dispose([wFloat, x]);

  // A whole model forward: float32, LoRA r=8 on q,v, NF4 (all linears but lm_head) + the same LoRA.
  const config: LlamaConfig = {
    vocabSize: 512,
    hiddenSize: opts.quick ? 128 : 256,
    intermediateSize: opts.quick ? 344 : 688,
    numHiddenLayers: opts.quick ? 2 : 4,
    numAttentionHeads: 8,
    numKeyValueHeads: 8,
    headDim: opts.quick ? 16 : 32,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    bosTokenId: 1,
    eosTokenId: 2,
  };
  const T = opts.quick ? 64 : 128;
  const ids = tf.tensor2d([Array.from({ length: T }, () => rng.int(config.vocabSize))], undefined, 'int32');
  const forward = (m: LlamaModel) => () => m.forward({ inputIds: ids as tf.Tensor2D }).logits!;
  const label = `model d=${config.hiddenSize} L=${config.numHiddenLayers} T=${T}`;
  const model = createLlama(config, { seed: 1 });
  const floatRuns = timeRuns(forward(model), runs);
  injectLora(model, { name: 'bench', r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] });
  const loraRuns = timeRuns(forward(model), runs);
  const report = quantizeModel(model, { blockSize: 64, doubleQuant: true });
  const qloraRuns = timeRuns(forward(model), runs);
  row(`${label} float32`, 'forward', median(floatRuns), 'ms', floatRuns);
  row(`${label} float32 + LoRA r8 q,v`, 'forward', median(loraRuns), 'ms', loraRuns);
  row(`${label} nf4 + LoRA r8 q,v`, 'forward', median(qloraRuns), 'ms', qloraRuns);
  row(`${label}`, 'nf4 slowdown (vs float32 + LoRA)', median(qloraRuns) / median(loraRuns), 'x');
  row(`${label} quantised linears`, 'stored size', report.bytesPerParameter, 'bytes/param');
  model.dispose();
  ids.dispose();
  return rows;
}
