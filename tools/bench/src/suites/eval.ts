// Benchmark of @hyperllama/eval: evaluation throughput (instances per second) of `hyperllama` (the task's 16
// demonstrations compressed once into a k-token prefix, shared by every instance) against `icl` (every row re-reads
// the 16 demonstrations with full attention), on the tiny default model configuration (weights do not change the
// cost), for a rank-classification task and a generation task.
import * as tf from '@tensorflow/tfjs';
import { SYNTHETIC_FAMILIES, makeSyntheticTask, type Task } from '@hyperllama/datasets';
import { evaluate, type EvalTokenizer } from '@hyperllama/eval';
import { HyperLlama } from '@hyperllama/hypernet';
import { createLlama } from '@hyperllama/llama-model';
import { median, type BenchRecord, type SuiteOptions } from '../types.js';

/** Character-level codec: 0 pad, 1 BOS, 2 EOS, printable ASCII 32..126 → 3..97. */
const chars: EvalTokenizer = {
  bosId: 1,
  eosId: 2,
  padId: 0,
  encode: (text, opts = {}) => [
    ...(opts.bos ? [1] : []),
    ...[...text].map((ch) => Math.max(3, Math.min(97, ch.charCodeAt(0) - 29))),
  ],
  decode: (ids) =>
    ids
      .filter((id) => id >= 3 && id <= 97)
      .map((id) => String.fromCharCode(id + 29))
      .join(''),
};

const SHOTS = 16;

export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const instances = opts.quick ? 8 : 32;
  const runs = opts.quick ? 1 : 3;
  // The trainer's tiny default shape: 2 layers, hidden 64, 4 heads (2 KV heads), MLP 160.
  const model = createLlama(
    {
      vocabSize: 98,
      hiddenSize: 64,
      intermediateSize: 160,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      maxPositionEmbeddings: 2048,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      tieWordEmbeddings: true,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: 0,
    },
    { seed: 0, std: 0.02 },
  );
  const hl = new HyperLlama(model, { k: 4, seed: 0 });
  const variant = SYNTHETIC_FAMILIES.find((f) => f.name === 'symbol_rule')!.variants[0];
  const tasks: Array<[string, Task]> = [
    [
      'rank classification',
      makeSyntheticTask('symbol_rule', variant, { seed: 0, numExamples: SHOTS, numInstances: instances }),
    ],
    ['generation', makeSyntheticTask('reverse', 'words', { seed: 0, numExamples: SHOTS, numInstances: instances })],
  ];
  const settings = {
    model,
    tokenizer: chars,
    hyperllama: hl,
    maxLength: 2048,
    maxHyperLength: 2048,
    maxNewTokens: 16,
    batchSize: 16,
  };
  const out: BenchRecord[] = [];
  try {
    for (const [kind, task] of tasks) {
      for (const method of ['hyperllama', 'icl'] as const) {
        const rates: number[] = [];
        await evaluate([task], settings, { methods: [method], shots: SHOTS, seed: 0, maxInstances: 2 }); // warm-up
        for (let r = 0; r < runs; r++) {
          const t0 = performance.now();
          const [result] = await evaluate([task], settings, { methods: [method], shots: SHOTS, seed: 0 });
          const n = result.scores[0].scores.length;
          rates.push(n / ((performance.now() - t0) / 1000));
        }
        out.push({
          suite: 'eval',
          name: `${method} ${kind}, ${SHOTS} shots, ${instances} instances`,
          backend: tf.getBackend(),
          metric: 'throughput',
          value: median(rates),
          unit: 'instances/s',
          runs: rates,
        });
      }
    }
  } finally {
    hl.dispose();
    model.dispose();
  }
  return out;
}
