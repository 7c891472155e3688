import { HyperLlama, saveHyperLlama } from '@hyperllama/hypernet';
import { createLlama, saveLlama, type LlamaModel } from '@hyperllama/llama-model';
import { saveTokenizer, type Tokenizer } from '@hyperllama/tokenizer';
import { runCli, type Io } from '../src/index.js';

/** Runs `hyperllama-eval <argv>` in this process and returns its exit code and everything it printed. */
export async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}

/** A seeded random 2-layer Llama (GQA, tied head) saved with `tokenizer` into `dir`; the caller disposes it. */
export function writeTinyBase(
  dir: string,
  tokenizer: Tokenizer,
  ids: { vocabSize: number; padTokenId?: number },
): LlamaModel {
  const model = createLlama(
    {
      hiddenSize: 32,
      intermediateSize: 64,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 8,
      maxPositionEmbeddings: 1024,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      tieWordEmbeddings: true,
      bosTokenId: 1,
      eosTokenId: 2,
      ...ids,
    },
    { seed: 1, std: 0.1 },
  );
  saveLlama(model, dir);
  saveTokenizer(tokenizer, dir);
  return model;
}

/** An untrained HyperLlama checkpoint (fresh hyper LoRA and gist rows) on `model`, whose files and tokenizer are in `baseDir`. */
export function writeUntrainedCheckpoint(
  model: LlamaModel,
  baseDir: string,
  out: string,
  o: { k: number; r: number; alpha: number; seed: number },
): void {
  const hl = new HyperLlama(model, { k: o.k, hyper: { r: o.r, alpha: o.alpha }, seed: o.seed });
  saveHyperLlama(hl, out, { basePath: baseDir, tokenizer: baseDir });
  hl.dispose();
}
