// Benchmarks of @hyperllama/lora: NF4 storage (bytes per quantised parameter) and the cost of dequantising NF4 weights
// in every forward pass, for one linear and for a whole model, against float32 weights on the active backend.
import * as tf from '@tensorflow/tfjs';
import { createLlama, type LlamaConfig, type LlamaModel } from '@hyperllama/llama-model';
import { Nf4Linear, injectLora, quantizeNf4, nf4StoredBytes, quantizeModel } from '@hyperllama/lora';
import { Rng } from '@hyperllama/runtime';
import { median, type BenchRecord, type SuiteOptions } from '../types.js';

/** Milliseconds of one call of `fn`, its result read back so the work is done. */
function timeOnce(fn: () => tf.Tensor): number {
  const t0 = performance.now();
  tf.tidy(() => fn().dataSync());
  return performance.now() - t0;
}

/**
 * Times `a` and `b` alternately (after a warm-up call of each), so load from other processes hits both alike.
 * Returns both series and the per-pair ratios b / a.
 */
function timePaired(
  a: () => tf.Tensor,
  b: () => tf.Tensor,
  runs: number,
): { a: number[]; b: number[]; ratio: number[] } {
  timeOnce(a);
  timeOnce(b);
  const out = { a: [] as number[], b: [] as number[], ratio: [] as number[] };
  for (let i = 0; i < runs; i++) {
    out.a.push(timeOnce(a));
    out.b.push(timeOnce(b));
    out.ratio.push(out.b[i] / out.a[i]);
  }
  return out;
}

export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const backend = tf.getBackend();
  const rows: BenchRecord[] = [];
  const row = (name: string, metric: string, value: number, unit: string, runs?: number[]) =>
    rows.push({ suite: 'lora', name, backend, metric, value, unit, ...(runs ? { runs } : {}) });
  const rng = new Rng(0);
  const runs = opts.quick ? 3 : 7;

  // Storage: bytes per quantised parameter (independent of the backend).
  const shapes: Array<[number, number]> = opts.quick
    ? [[256, 688]]
    : [
        [256, 688],
        [4096, 4096],
      ];
  for (const [i, o] of shapes) {
    const w = rng.normalArray(i * o, 0, 0.02);
    for (const doubleQuant of [true, false]) {
      const q = quantizeNf4(w, [i, o], { blockSize: 64, doubleQuant });
      row(
        `nf4 [${i}x${o}] block 64${doubleQuant ? ' double-quant' : ''}`,
        'stored size',
        nf4StoredBytes(q) / (i * o),
        'bytes/param',
      );
    }
  }

  // One linear: x [N, in] @ W [in, out], float32 Variable vs NF4 dequantised per call; N = 1 is a decoding step.
  const [inF, outF] = opts.quick ? [256, 688] : [1024, 2752];
  const wv = rng.normalArray(inF * outF, 0, 0.02);
  const wFloat = tf.variable(tf.tensor2d(wv, [inF, outF]));
  const nf4 = Nf4Linear.fromWeight(wv, inF, outF, { blockSize: 64, doubleQuant: true });
  const dequantRuns: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    nf4.dequantize();
    dequantRuns.push(performance.now() - t0);
  }
  row(`nf4 dequantise [${inF}x${outF}] (JS, per forward)`, 'time', median(dequantRuns), 'ms', dequantRuns);
  for (const n of opts.quick ? [1, 64] : [1, 256]) {
    const x = tf.tensor2d(rng.normalArray(n * inF), [n, inF]);
    const t = timePaired(
      () => tf.matMul(x, wFloat),
      () => nf4.apply(x),
      runs,
    );
    const shape = `linear [${n}x${inF}]@[${inF}x${outF}]`;
    row(`${shape} float32`, 'forward', median(t.a), 'ms', t.a);
    row(`${shape} nf4`, 'forward', median(t.b), 'ms', t.b);
    row(shape, 'nf4 slowdown (median of paired ratios)', median(t.ratio), 'x', t.ratio);
    x.dispose();
  }
  wFloat.dispose();

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
  // Two copies of the same model with the same LoRA, one with NF4 base weights, timed alternately.
  const float = createLlama(config, { seed: 1 });
  const quant = createLlama(config, { seed: 1 });
  const plain = timeOnce(forward(float));
  for (const m of [float, quant])
    injectLora(m, { name: 'bench', r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] });
  const report = quantizeModel(quant, { blockSize: 64, doubleQuant: true });
  const t = timePaired(forward(float), forward(quant), runs);
  row(`${label} float32 (no LoRA, one run)`, 'forward', plain, 'ms');
  row(`${label} float32 + LoRA r8 q,v`, 'forward', median(t.a), 'ms', t.a);
  row(`${label} nf4 + LoRA r8 q,v`, 'forward', median(t.b), 'ms', t.b);
  row(label, 'nf4 slowdown (median of paired ratios)', median(t.ratio), 'x', t.ratio);
  row(`${label} quantised linears`, 'stored size', report.bytesPerParameter, 'bytes/param');
  float.dispose();
  quant.dispose();
  ids.dispose();
  return rows;
}
