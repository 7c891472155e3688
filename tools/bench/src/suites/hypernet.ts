// Training throughput of every hyperllama-train stage on the tiny default configuration (a random-init 2-layer,
// 64-wide Llama, the built-in character tokenizer, synthetic tasks, the default corpus): real tokens per second of
// optimizer steps (forward + backward + AdamW), hyper-pass and downstream tokens both counted for HyperLlama.
import * as tf from '@tensorflow/tfjs';
import { fit } from '@hyperllama/hypernet';
import { AdamW } from '@hyperllama/runtime';
import { buildJob, defaultConfig, type Stage, type TrainConfig } from '@hyperllama/training';
import { median, type BenchRecord, type SuiteOptions } from '../types.js';

const CASES: Array<{ name: string; stage: Stage; patch?: Partial<TrainConfig> }> = [
  { name: 'pretrain-base', stage: 'pretrain-base' },
  { name: 'hyperpretrain', stage: 'hyperpretrain' },
  { name: 'multitask hyperllama', stage: 'multitask', patch: { method: 'hyperllama' } },
  { name: 'multitask icl', stage: 'multitask', patch: { method: 'icl' } },
  { name: 'multitask zero-shot', stage: 'multitask', patch: { method: 'zero-shot' } },
  { name: 'multitask shared-prefix', stage: 'multitask', patch: { method: 'shared-prefix' } },
  {
    name: 'prefix-tune (random)',
    stage: 'prefix-tune',
    patch: { prefix: { ...defaultConfig('prefix-tune').prefix, init: 'random' } },
  },
];

export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const backend = tf.getBackend();
  const chunks = opts.quick ? 3 : 5;
  const stepsPerChunk = opts.quick ? 2 : 4;
  const rows: BenchRecord[] = [];
  for (const c of CASES) {
    const cfg = { ...defaultConfig(c.stage), ...c.patch } as TrainConfig;
    const job = buildJob(c.stage, cfg);
    const optimizer = new AdamW(job.params, { lr: 1e-3, weightDecay: 0 });
    let tokens = 0;
    const train = (steps: number) =>
      fit({
        params: job.params,
        optimizer,
        steps,
        maxGradNorm: 1,
        objective: () => {
          const batch = job.next();
          tokens += batch.tokens;
          return batch.loss;
        },
      });
    await train(1); // warm-up (kernel compilation, first allocations)
    const runs: number[] = [];
    for (let i = 0; i < chunks; i++) {
      const t0 = performance.now();
      tokens = 0;
      await train(stepsPerChunk);
      runs.push(tokens / ((performance.now() - t0) / 1000));
    }
    rows.push({
      suite: 'hypernet',
      name: `train ${c.name} (tiny default, batch ${cfg.batchSize})`,
      backend,
      metric: 'train throughput',
      value: median(runs),
      unit: 'tokens/s',
      runs,
    });
    optimizer.dispose();
    job.dispose();
  }
  return rows;
}
