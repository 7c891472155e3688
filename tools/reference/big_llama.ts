/**
 * Acceptance run for big Llamas (weights in native memory): writes a random Llama of TinyLlama-1.1B's shapes (22 layers,
 * hidden 2048, intermediate 5632, 32 heads, 4 KV heads, vocab 32000) as a SHARDED bf16 Hugging Face directory (about
 * 2.2 GB, never committed) with a byte-fallback BPE tokenizer.json, then for each weight format, in a fresh process:
 *   1. `hyperllama-eval generate` on the directory (HYPERLLAMA_WEIGHTS=<format>), timed, with its peak RSS;
 *   2. in-process: load, HyperLlama encode + downstream loss + one training step of the hyper LoRA and the gist rows,
 *      one prefix-tuning step, with times and the peak RSS.
 * It also prints the memory an 8B-shaped model (Llama-3.1-8B: 32 layers, hidden 4096, intermediate 14336, 32 heads,
 * 8 KV heads, vocab 128256) needs per format, against what this machine has.
 *
 * Run from the repository root after a build (it imports the packages' dist) and with the native addon built:
 *   npm run build && npm run build:native -w @hyperllama/runtime
 *   npx tsx tools/reference/big_llama.ts [--out runs/big-llama-1b] [--formats bf16,nf4]
 * Prints one JSON line per format and a summary table; exits 1 when a step fails or a process exceeds --max-rss-gib (24).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { EpisodeSampler, collateHyperLlama, collateZeroShot, makeSyntheticTask } from '@hyperllama/datasets';
import { HyperLlama, PrefixTuning, trainStep } from '@hyperllama/hypernet';
import {
  loadLlama,
  memoryBudget,
  planLlamaMemory,
  writeRandomLlamaDir,
  type WeightFormat,
} from '@hyperllama/llama-model';
import { AdamW, initBackend } from '@hyperllama/runtime';
import { LLAMA_8B, TINYLLAMA } from '../bench/src/suites/big.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const OUT = resolve(root, option('out', 'runs/big-llama-1b'));
const FORMATS = option('formats', 'bf16,nf4').split(',') as WeightFormat[];
const MAX_RSS_GIB = Number(option('max-rss-gib', '24'));
const gib = (b: number) => (b / 1024 ** 3).toFixed(2);

/**
 * A Llama-style tokenizer.json: SentencePiece-like BPE with byte fallback over 32000 ids (<unk>, <s>, </s>, the 256
 * byte pieces, printable ASCII with and without `▁`, then unused filler pieces) and no merges, so every character is
 * one token. Enough to drive the CLIs on a random model.
 */
function writeTokenizer(dir: string, vocabSize: number): void {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let id = 3;
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = id++;
  vocab['▁'] = id++;
  for (let c = 33; c < 127; c++) {
    vocab[String.fromCharCode(c)] = id++;
    vocab[`▁${String.fromCharCode(c)}`] = id++;
  }
  while (id < vocabSize) vocab[`<unused${id}>`] = id++;
  const special = (i: number, content: string) => ({
    id: i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ tokenizer_class: 'LlamaTokenizerFast', add_bos_token: true, bos_token: '<s>', eos_token: '</s>' }),
  );
}

/** Parses GNU time's `-v` report: maximum resident set size in bytes. */
function maxRssOf(stderr: string): number | undefined {
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** One format in this process: load, HyperLlama encode + loss + training step, prefix-tuning step. */
async function phase(format: WeightFormat): Promise<void> {
  const result: Record<string, unknown> = { format };
  await initBackend({ backend: 'wasm' });
  let t = performance.now();
  const model = loadLlama(OUT, { weights: format, trainable: false });
  result.loadSeconds = (performance.now() - t) / 1000;
  result.rssAfterLoadGiB = Number(gib(process.memoryUsage().rss));
  result.backendBytes = tf.memory().numBytes;

  const tasks = ['c1', 'c2'].map((v) => makeSyntheticTask('constant', v, { seed: 1, numExamples: 8, numInstances: 8 }));
  const encoder = {
    bosId: 1,
    eosId: 2,
    padId: 0,
    // The tokenizer above: printable ASCII at 3 + 256 + 1 + 2·(c − 33), spaces ▁ (259), others byte pieces.
    encode: (text: string) =>
      [...text].map((ch) => {
        const c = ch.charCodeAt(0);
        return c > 32 && c < 127 ? 260 + 2 * (c - 33) : c === 32 ? 259 : 3 + (c & 255);
      }),
  };
  const hl = new HyperLlama(model, { k: 4, hyper: { r: 8, alpha: 16 }, seed: 0 });
  const sampler = new EpisodeSampler(tasks, { seed: 0, k: 2 });
  const batch = collateHyperLlama([sampler.next()], { encoder, gistIds: hl.gistIds });
  const hyperTokens = batch.hyper.inputIds.flat().length;
  const downTokens = batch.downstream.inputIds.flat().length;
  t = performance.now();
  const keys = tf.tidy(() => {
    const prefix = hl.encode(batch.hyper);
    const k0 = prefix.keys[0].shape;
    prefix.dispose();
    return k0;
  });
  result.encodeSeconds = (performance.now() - t) / 1000;
  result.prefixShape = keys;
  t = performance.now();
  const loss = tf.tidy(() => hl.loss(batch).dataSync()[0]);
  result.downstreamLoss = loss;
  result.lossSeconds = (performance.now() - t) / 1000;
  const params = hl.trainableVariables();
  const opt = new AdamW(params, { lr: 1e-3 });
  t = performance.now();
  const step = await trainStep(params, opt, () => hl.loss(batch, { training: true }));
  result.hyperStepSeconds = (performance.now() - t) / 1000;
  result.hyperStepTokensPerSecond = (hyperTokens + downTokens) / (result.hyperStepSeconds as number);
  result.hyperStepLoss = step.loss;
  result.hyperStepGradNorm = step.gradNorm;
  opt.dispose();
  hl.dispose(); // the gist rows (the hyper adapter stays in the model, inactive outside the hyper pass)

  const pt = PrefixTuning.random(model, 4, { sampleIds: [encoder.encode('Input: apple\nOutput: zorp')], seed: 1 });
  const lm = collateZeroShot([sampler.next(), sampler.next()], { encoder });
  const ptParams = pt.trainableVariables();
  const ptOpt = new AdamW(ptParams, { lr: 1e-2 });
  t = performance.now();
  const ptStep = await trainStep(ptParams, ptOpt, () => pt.loss(model, lm, { training: true }));
  result.prefixStepSeconds = (performance.now() - t) / 1000;
  result.prefixStepTokensPerSecond = lm.inputIds.flat().length / (result.prefixStepSeconds as number);
  result.prefixStepLoss = ptStep.loss;
  ptOpt.dispose();
  pt.dispose();
  model.dispose();
  result.peakRssGiB = Number(gib(process.resourceUsage().maxRSS * 1024));
  console.log(JSON.stringify(result));
}

async function main(): Promise<void> {
  const i = args.indexOf('--phase');
  if (i >= 0) return phase(args[i + 1] as WeightFormat);

  const budget = memoryBudget();
  console.log(`host memory available: ${gib(budget.hostBytes)} GiB`);
  for (const [name, c] of [
    ['TinyLlama-1.1B shape', TINYLLAMA],
    ['Llama-3.1-8B shape', LLAMA_8B],
  ] as const) {
    for (const f of ['heap', 'fp32', 'bf16', 'nf4'] as const) {
      const p = planLlamaMemory(c, f);
      console.log(
        `${name} ${f}: native ${gib(p.nativeBytes)} GiB + backend ${gib(p.heapBytes)} GiB (activations ${gib(p.activationBytes)}) = ${gib(p.totalBytes)} GiB` +
          (f === 'heap' && p.heapBytes > 4 * 1024 ** 3 ? ' (over the 4 GiB wasm heap)' : ''),
      );
    }
  }

  if (!existsSync(join(OUT, 'config.json'))) {
    console.log(`writing ${OUT} (bf16, sharded) …`);
    const t = performance.now();
    const { files, bytes } = writeRandomLlamaDir(OUT, TINYLLAMA, {
      seed: 0,
      dtype: 'BF16',
      shardBytes: 1e9,
      onTensor: (name, done, total) => {
        if (done % 40 === 0 || done === total) console.log(`  ${done}/${total} ${name}`);
      },
    });
    writeTokenizer(OUT, TINYLLAMA.vocabSize);
    console.log(`wrote ${files.length} shards, ${gib(bytes)} GiB in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }

  let failed = false;
  const cli = join(root, 'apps', 'evaluator', 'bin', 'hyperllama-eval.js');
  for (const format of FORMATS) {
    let t = performance.now();
    const gen = spawnSync(
      '/usr/bin/time',
      [
        '-v',
        process.execPath,
        cli,
        'generate',
        '--model',
        OUT,
        '--prompt',
        'Once upon a time',
        '--max-new-tokens',
        '16',
      ],
      { env: { ...process.env, HYPERLLAMA_WEIGHTS: format }, encoding: 'utf8' },
    );
    const genSeconds = (performance.now() - t) / 1000;
    const genRss = maxRssOf(gen.stderr);
    const text = gen.stdout.trim().split('\n').slice(-3).join(' | ');
    console.log(
      `generate (${format}): exit ${gen.status}, ${genSeconds.toFixed(1)} s, peak RSS ${genRss ? gib(genRss) : '?'} GiB: ${text.slice(0, 200)}`,
    );
    if (gen.status !== 0) {
      failed = true;
      console.log(gen.stderr.split('\n').slice(0, 20).join('\n'));
    }
    if (genRss !== undefined && genRss > MAX_RSS_GIB * 1024 ** 3) failed = true;
    t = performance.now();
    const run = spawnSync(
      '/usr/bin/time',
      ['-v', process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url), '--out', OUT, '--phase', format],
      { encoding: 'utf8', cwd: root },
    );
    const rss = maxRssOf(run.stderr);
    const line = run.stdout.trim().split('\n').pop() ?? '';
    console.log(
      `train (${format}): exit ${run.status}, ${((performance.now() - t) / 1000).toFixed(1)} s, peak RSS ${rss ? gib(rss) : '?'} GiB`,
    );
    console.log(line);
    if (run.status !== 0) {
      failed = true;
      console.log(run.stderr.split('\n').slice(0, 30).join('\n'));
    }
    if (rss !== undefined && rss > MAX_RSS_GIB * 1024 ** 3) failed = true;
  }
  process.exitCode = failed ? 1 : 0;
}

await main();
