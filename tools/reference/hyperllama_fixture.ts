/**
 * Writes the checkpoints that tools/reference/hyperllama_reference.py checks HyperLlama against
 * (packages/hypernet/test/fixtures/hyperllama-oracle), with the project's own writers: `saveLlama` for the base and
 * `saveHyperLlama` for the checkpoints, exactly as the trainer writes them.
 *
 * A tiny random Llama with grouped-query attention (4 query heads, 2 KV heads, head_dim 8 ≠ hidden/heads, untied
 * head, non-unit RMSNorm weights) and two HyperLlama checkpoints on it whose LoRA A and B are seeded random values
 * (B ≠ 0, as after training; a fresh adapter has B = 0 and would change nothing):
 *   restart/   scheme `restart`, hyper LoRA r 4 / alpha 8, downstream LoRA r 2 / alpha 4 on q/v/o/down
 *   continue/  scheme `continue`, hyper LoRA r 4 / alpha 4 with use_rslora (scale alpha/√r), no downstream adapter
 * plus batch.json: the token ids of a fixed batch (hyper rows `[BOS] examples…` without gists, downstream contexts and
 * targets), which the oracle pads and scores.
 *
 * Run from the repository root after a build (it imports the packages' dist):
 *   npx tsx tools/reference/hyperllama_fixture.ts && python3 tools/reference/hyperllama_reference.py
 * Seeded: it rewrites the same bytes every time.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { HyperLlama, saveHyperLlama, type HyperLlamaOptions } from '@hyperllama/hypernet';
import { createLlama, saveLlama, type LlamaConfig, type LlamaModel } from '@hyperllama/llama-model';
import { namedLoraParameters } from '@hyperllama/lora';
import { Rng } from '@hyperllama/runtime';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = join(root, 'packages', 'hypernet', 'test', 'fixtures', 'hyperllama-oracle');

const CONFIG: LlamaConfig = {
  vocabSize: 40,
  hiddenSize: 16,
  intermediateSize: 32,
  numHiddenLayers: 3,
  numAttentionHeads: 4,
  numKeyValueHeads: 2, // GQA: each KV head serves 2 query heads
  headDim: 8, // ≠ hiddenSize / numAttentionHeads
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 100, // a small theta rotates fast, so a wrong position shows
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
  padTokenId: 0,
};

/** A fresh copy of the base: linears and embeddings N(0, 0.2²), RMSNorm weights 1 + N(0, 0.1²) (seeded). */
function base(): LlamaModel {
  const model = createLlama(CONFIG, { seed: 17, std: 0.2 });
  const rng = new Rng(18);
  for (const [name, v] of model.namedWeights()) {
    if (v.shape.length === 1) v.assign(tf.add(1, tf.tensor1d(rng.fork(name).normalArray(v.shape[0], 0, 0.1))));
  }
  return model;
}

/** Every LoRA A ~ N(0, 0.2²) and B ~ N(0, 0.2²) of `adapter`: a "trained" adapter (B ≠ 0). */
function randomizeAdapter(model: LlamaModel, adapter: string, seed: number): void {
  const rng = new Rng(seed);
  for (const [name, v] of namedLoraParameters(model, adapter)) {
    v.assign(tf.tensor(rng.fork(name).normalArray(v.size, 0, 0.2), v.shape));
  }
}

function checkpoint(dir: string, opts: HyperLlamaOptions, seed: number): void {
  const model = base();
  const D = CONFIG.hiddenSize;
  // Gist rows [k, D] of the size of the embeddings (trained rows need not stay near the vocabulary mean).
  const gistEmbeddings = new Rng(seed).normalArray(opts.k * D, 0, 0.3);
  const hl = new HyperLlama(model, { ...opts, gistEmbeddings, seed });
  randomizeAdapter(model, 'hyper', seed + 1);
  if (opts.downstream) randomizeAdapter(model, 'downstream', seed + 2);
  saveHyperLlama(hl, join(OUT, dir), { basePath: '../base' });
  hl.dispose();
  model.dispose();
}

async function main(): Promise<void> {
  await tf.setBackend('cpu');
  mkdirSync(OUT, { recursive: true });
  const model = base();
  saveLlama(model, join(OUT, 'base'));
  model.dispose();
  checkpoint(
    'restart',
    {
      k: 3,
      scheme: 'restart',
      hyper: { r: 4, alpha: 8 }, // every linear that can change the prefix (HyperLlama's default)
      downstream: { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] },
    },
    100,
  );
  checkpoint('continue', { k: 3, scheme: 'continue', hyper: { r: 4, alpha: 4, useRslora: true } }, 200);

  // Token ids 3..39 (0 pad, 1 BOS, 2 EOS). Rows of different lengths, so padding and per-row positions matter.
  const rng = new Rng(300);
  const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(CONFIG.vocabSize - 3));
  const batch = {
    pad_id: 0,
    hyper: [
      [1, ...ids(10)],
      [1, ...ids(5)],
      [1, ...ids(13)],
    ], // [BOS] examples…; the gists are appended by the oracle
    contexts: [ids(3), ids(6), ids(1)],
    targets: [ids(4), ids(2), [...ids(3), 2]],
  };
  writeFileSync(join(OUT, 'batch.json'), JSON.stringify(batch) + '\n');
  console.log(`wrote ${OUT}`);
}

await main();
