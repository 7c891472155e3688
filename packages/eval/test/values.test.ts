import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { collateZeroShot, makeExample, type Task } from '@hyperllama/datasets';
import { HyperLlama, plainLoss, trainStep } from '@hyperllama/hypernet';
import { LlamaModel, type HostWeights, type LlamaConfig } from '@hyperllama/llama-model';
import { AdamW } from '@hyperllama/runtime';
import { buildReport, evaluate } from '../src/index.js';
import { charTokenizer, tinyModel } from './helpers.js';

/**
 * Value tests of the evaluation protocols: scores and answer losses of a model whose next-token distribution is set
 * by hand, so every number below follows from a bigram table by arithmetic.
 *
 * The model is a bigram Llama: every attention and MLP block writes 0 into the residual stream (o_proj = down_proj =
 * 0), the embeddings are one-hot (hiddenSize = vocabSize = 98), the final RMSNorm weight undoes the norm's scale, and
 * lm_head[v, i] = L(i → v). So logits at a token = that token's row of L, whatever the context, demonstrations or
 * prefix: zero-shot, ICL and HyperLlama must all give the hand-computed scores.
 */
const V = 98;
const id = (ch: string) => charTokenizer.encode(ch)[0];
const EOS = charTokenizer.eosId;
// Bigram logits L(prev → next); every other entry is 0.
const TABLE: Array<[string | number, string | number, number]> = [
  [':', ' ', 8], // "Output:" → " "
  [' ', 'x', 4], // an answer starts with x (greedy) ...
  [' ', 'y', 3.5], // ... or y
  ['y', 'z', 8],
  ['z', 'w', 8],
  ['w', EOS, 8],
  ['x', EOS, 8],
];
const L: number[][] = Array.from({ length: V }, () => Array.from({ length: V }, () => 0));
for (const [p, n, v] of TABLE) L[typeof p === 'number' ? p : id(p)][typeof n === 'number' ? n : id(n)] = v;

/** log p(next | prev) in float64, straight from the table. */
function lp(prev: number, next: number): number {
  const row = L[prev];
  return row[next] - Math.log(row.reduce((a, x) => a + Math.exp(x), 0));
}
/** Log-probabilities of the answer tokens " answer" after "...Output:" (EOS not included). */
function answerLogProbs(answer: string): number[] {
  const ids = [id(':'), ...charTokenizer.encode(` ${answer}`)];
  return ids.slice(1).map((next, t) => lp(ids[t], next));
}
const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function bigramModel(): LlamaModel {
  const config: LlamaConfig = {
    vocabSize: V,
    hiddenSize: V,
    intermediateSize: 2,
    numHiddenLayers: 1,
    numAttentionHeads: 1,
    numKeyValueHeads: 1,
    headDim: 2,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 0,
  };
  const weights: HostWeights = new Map();
  const set = (name: string, shape: number[], fill: (i: number) => number) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = fill(i);
    weights.set(name, { shape, data });
  };
  set('model.embed_tokens.weight', [V, V], (i) => (Math.floor(i / V) === i % V ? 1 : 0)); // one-hot rows
  const p = 'model.layers.0';
  set(`${p}.input_layernorm.weight`, [V], () => 1);
  set(`${p}.post_attention_layernorm.weight`, [V], () => 1);
  for (const [n, shape] of [
    ['self_attn.q_proj', [2, V]],
    ['self_attn.k_proj', [2, V]],
    ['self_attn.v_proj', [2, V]],
    ['mlp.gate_proj', [2, V]],
    ['mlp.up_proj', [2, V]],
  ] as const) {
    set(`${p}.${n}.weight`, [...shape], (i) => 0.1 * Math.sin(i)); // anything: the blocks' outputs are zeroed below
  }
  set(`${p}.self_attn.o_proj.weight`, [V, 2], () => 0);
  set(`${p}.mlp.down_proj.weight`, [V, 2], () => 0);
  // RMSNorm of a one-hot row e_i is e_i / sqrt(1/V + eps): this weight brings it back to e_i.
  set('model.norm.weight', [V], () => Math.sqrt(1 / V + 1e-6));
  set('lm_head.weight', [V, V], (i) => L[i % V][Math.floor(i / V)]); // [out v, in i] = L(i → v)
  return new LlamaModel(config, weights);
}

// Demonstration pools hold both labels; the bigram model ignores them (and the definition) anyway.
const pool = [makeExample('a', ['x']), makeExample('b', ['yzw']), makeExample('c', ['x']), makeExample('d', ['yzw'])];
const classify: Task = {
  name: 'hand_classify',
  source: 'test',
  definition: 'Pick x or yzw.',
  metric: 'accuracy',
  options: ['x', 'yzw'],
  examples: pool,
  instances: [makeExample('e', ['yzw']), makeExample('f', ['x']), makeExample('g', ['yzw']), makeExample('h', ['yzw'])],
};
const exact: Task = {
  name: 'hand_exact',
  source: 'test',
  definition: 'Answer.',
  metric: 'exact',
  examples: pool,
  instances: [makeExample('i', ['x']), makeExample('j', ['x.']), makeExample('k', ['y'])],
};
const rouge: Task = {
  name: 'hand_rouge',
  source: 'test',
  definition: 'Answer.',
  metric: 'rougeL',
  examples: pool,
  instances: [makeExample('l', ['x']), makeExample('m', ['x w']), makeExample('n', ['q'])],
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('evaluation scores of a hand-built bigram model', () => {
  it('the table gives the expected option likelihoods (the premises of the scores below)', () => {
    const x = answerLogProbs('x'); // " x": lp(" "|":") + lp(x|" ")
    const yzw = answerLogProbs('yzw'); // " yzw": four tokens, the last three likely
    expect(meanOf(yzw)).toBeGreaterThan(meanOf(x) + 0.1); // length-normalised: yzw wins (-0.452 vs -0.623)
    expect(x.reduce((a, b) => a + b)).toBeGreaterThan(yzw.reduce((a, b) => a + b) + 0.5); // summed: x wins (-1.245 vs -1.809)
    expect(meanOf(x)).toBeCloseTo(-0.6227, 3);
    expect(meanOf(yzw)).toBeCloseTo(-0.4523, 3);
  });

  it('zero-shot, ICL and HyperLlama all score exactly what the table implies: accuracy, strict exact match, ROUGE-L, answer loss', async () => {
    const model = bigramModel();
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, seed: 1 });
    const results = await evaluate(
      [classify, exact, rouge],
      { model, tokenizer: charTokenizer, hyperllama: hl, maxNewTokens: 8, batchSize: 4 },
      { methods: ['zero-shot', 'icl', 'hyperllama'], shots: 2, seed: 0 },
    );
    expect(results.map((r) => r.method)).toEqual(['zero-shot', 'icl', 'hyperllama', 'hyperllama-swap']);

    // Rank classification by mean log-likelihood picks "yzw" for every instance: right on e, g, h, wrong on f.
    // Greedy generation: ":" → " " → "x" (4 > 3.5) → EOS, so every prediction is "x".
    //   exact (strict): "x" = "x" → 1; "x." → 0 (punctuation counts); "y" → 0.
    //   ROUGE-L F: "x" vs "x" → 100; vs "x w" → P 1, R 1/2, F 2/3 → 66.67; vs "q" → 0.
    const expectedScores = [
      [1, 0, 1, 1],
      [1, 0, 0],
      [100, 200 / 3, 0],
    ];
    // Answer loss: mean NLL of " " + the first reference's characters, EOS left out (and with it: one more token).
    const refs = [classify, exact, rouge].map((t) => t.instances.map((i) => i.output));
    const expectedLoss = refs.map((rs) => rs.map((r) => -meanOf(answerLogProbs(r))));
    const expectedLossWithEos = refs.map((rs) =>
      rs.map((r) => {
        const lps = answerLogProbs(r);
        return -meanOf([...lps, lp(id(r[r.length - 1]), EOS)]);
      }),
    );
    for (const r of results) {
      expect(r.scores.map((s) => s.metric)).toEqual(['accuracy', 'exact', 'rougeL']);
      r.scores.forEach((s, t) => {
        expect(s.scores.length, `${r.method} ${s.task}`).toBe(expectedScores[t].length);
        s.scores.forEach((v, i) => expect(v, `${r.method} ${s.task} #${i}`).toBeCloseTo(expectedScores[t][i], 9));
        s.answerLoss!.forEach((v, i) =>
          expect(v, `${r.method} ${s.task} loss #${i}`).toBeCloseTo(expectedLoss[t][i], 4),
        );
        s.answerLossWithEos!.forEach((v, i) =>
          expect(v, `${r.method} ${s.task} loss+EOS #${i}`).toBeCloseTo(expectedLossWithEos[t][i], 4),
        );
      });
    }
    // The report's macro average: accuracy 3/4, exact 1/3, ROUGE-L 55.56/100 → mixed (0.75 + 0.3333 + 0.5556) / 3.
    const report = buildReport(results);
    for (const m of ['zero-shot', 'icl', 'hyperllama'])
      expect(report.methods[m].average).toBeCloseTo((0.75 + 1 / 3 + (100 + 200 / 3) / 300) / 3, 9);

    // Summed log-likelihoods pick "x" instead: the accuracy pattern flips.
    const [sum] = await evaluate(
      [classify],
      { model, tokenizer: charTokenizer, scoring: 'sum' },
      { methods: ['zero-shot'], shots: 0, seed: 0 },
    );
    expect(sum.scores[0].scores).toEqual([0, 1, 0, 0]);
    hl.dispose();
    model.dispose();
  });
});

describe('end to end: a model that has learned a lookup answers it', () => {
  it('after 40 steps on a 4-entry table, greedy generation scores > 0 (here ≥ 3 of 4) on exact match and ROUGE-L; 0 before training', async () => {
    // Input letter → word; the answer depends on the input, 9 characters back from "Output:".
    const table = [
      ['a', 'cat'],
      ['b', 'dog'],
      ['c', 'sun'],
      ['d', 'map'],
    ];
    const examples = table.map(([i, o]) => makeExample(i, [o]));
    const lookup: Task = { name: 'lookup', source: 'test', metric: 'exact', examples, instances: examples };
    const model = tinyModel(0);
    const scores = async () => {
      const out: number[][] = [];
      for (const metric of ['exact', 'rougeL'] as const) {
        const [zs] = await evaluate(
          [{ ...lookup, metric }],
          { model, tokenizer: charTokenizer, maxNewTokens: 6 },
          { methods: ['zero-shot'], shots: 0, seed: 0 },
        );
        out.push(zs.scores[0].scores);
      }
      return out;
    };
    const before = await scores();
    expect(before).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ]);

    // Every weight trained on the four zero-shot rows "[BOS] Input: a\nOutput: cat[EOS]" (loss on " cat" + EOS).
    const params = Object.fromEntries(model.namedWeights());
    const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0 });
    const batch = collateZeroShot(
      examples.map((e) => ({ task: lookup, target: e })),
      { encoder: charTokenizer },
    );
    let loss = Infinity;
    for (let step = 0; step < 40; step++)
      loss = (await trainStep(params, opt, () => plainLoss(model, batch, { training: true }))).loss;
    expect(loss).toBeLessThan(0.1);

    const [exactScores, rougeScores] = await scores();
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(exactScores)).toBeGreaterThan(0); // measured: all four right (loss 0.021), [1, 1, 1, 1] and ROUGE-L 100
    expect(mean(rougeScores)).toBeGreaterThan(0);
    expect(mean(exactScores)).toBeGreaterThanOrEqual(0.75);
    // Where the strict exact match is 1, the prediction equals the reference, so ROUGE-L is 100 there.
    exactScores.forEach((e, i) => e === 1 && expect(rougeScores[i]).toBe(100));
    opt.dispose();
    model.dispose();
  });
});
