import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_TEMPLATE,
  answerRow,
  collateRankClassification,
  fewShotRow,
  makeExample,
  makeSyntheticTask,
  SYNTHETIC_FAMILIES,
  type Example,
  type Task,
} from '@hyperllama/datasets';
import type { Prefix } from '@hyperllama/gist-attention';
import { HyperLlama, PrefixTuning } from '@hyperllama/hypernet';
import { continuationText, generate } from '@hyperllama/llama-model';
import { Rng } from '@hyperllama/runtime';
import {
  buildReport,
  EvalError,
  evaluate,
  evaluateMethod,
  fitOptions,
  fitPlans,
  labelLogProbs,
  pairedBootstrap,
  parseMethods,
  planTasks,
  rankClassify,
  swapPartners,
  taskPrefix,
  type EvalSettings,
} from '../src/index.js';
import { prefixTuningSchedule, usesSniExactMatch } from '../src/protocols.js';
import { charTokenizer, tinyModel } from './helpers.js';

const family = (name: string) => SYNTHETIC_FAMILIES.find((f) => f.name === name)!;
const classify: Task = makeSyntheticTask('symbol_rule', family('symbol_rule').variants[0], {
  seed: 4,
  numExamples: 8,
  numInstances: 6,
});
const generateTask: Task = {
  ...makeSyntheticTask('constant', 'c1', { seed: 4, numExamples: 8, numInstances: 3 }),
  metric: 'rougeL',
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Text of token rows without padding and BOS (the char tokenizer decodes newlines as spaces). */
const texts = (rows: number[][]): string[] => rows.map((r) => charTokenizer.decode(r.filter((id) => id > 2)));
/** Which of `examples` a text shows as a demonstration (`Input: x Output: y`). */
const shownIn = (text: string, examples: readonly Example[]): string[] =>
  examples.filter((e) => text.includes(`Input: ${e.input} Output: ${e.output}`)).map((e) => e.input);

describe('planTasks', () => {
  it('draws the same demonstrations and instances for a seed, different ones for another, never evaluating a demonstration', () => {
    const noPool: Task = { ...classify, name: 'nopool', examples: [] };
    const a = planTasks([classify, noPool], { shots: 3, maxInstances: 4, seed: 1 });
    const b = planTasks([classify, noPool], { shots: 3, maxInstances: 4, seed: 1 });
    const c = planTasks([classify, noPool], { shots: 3, maxInstances: 4, seed: 2 });
    expect(a).toEqual(b);
    expect(a.map((p) => p.examples)).not.toEqual(c.map((p) => p.examples));
    expect(a[0].examples.every((e) => classify.examples.includes(e))).toBe(true);
    expect(a[1].examples).toHaveLength(3);
    expect(a[1].instances).toHaveLength(3); // 6 instances - 3 demonstrations
    expect(a[1].instances.some((i) => a[1].examples.includes(i))).toBe(false);
    // kept instances stay in the task's order
    const order = a[0].instances.map((i) => classify.instances.indexOf(i));
    expect(order).toEqual([...order].sort((x, y) => x - y));
    expect(() => planTasks([classify], { shots: -1, seed: 0 })).toThrow(EvalError);
  });

  it('balances the demonstrations of a task with a closed label set across its classes; other tasks keep the seeded random draw', () => {
    // Pool: 12 "a", 3 "b", 3 "c" (in that order), labels a/b/c.
    const pool = [
      ...Array.from({ length: 12 }, (_, i) => makeExample(`a${i}`, ['a'])),
      ...['b', 'c'].flatMap((l) => Array.from({ length: 3 }, (_, i) => makeExample(`${l}${i}`, [l]))),
    ];
    const task: Task = {
      name: 'labels',
      source: 'test',
      examples: pool,
      instances: [makeExample('x', ['a'])],
      options: ['a', 'b', 'c'],
      metric: 'accuracy',
    };
    const counts = (shots: number, seed: number) => {
      const [plan] = planTasks([task], { shots, seed });
      const n = { a: 0, b: 0, c: 0 } as Record<string, number>;
      for (const e of plan.examples) n[e.output]++;
      return { n, examples: plan.examples };
    };
    for (const seed of [0, 1, 2]) {
      expect(counts(6, seed).n).toEqual({ a: 2, b: 2, c: 2 });
      expect(counts(3, seed).n).toEqual({ a: 1, b: 1, c: 1 });
      expect(counts(9, seed).n).toEqual({ a: 3, b: 3, c: 3 });
      expect(counts(10, seed).n).toEqual({ a: 4, b: 3, c: 3 }); // b and c run out: the rest from a
      expect(new Set(counts(10, seed).examples).size).toBe(10);
    }
    // 2 of 3 labels: one of each of the two chosen labels.
    expect(Object.values(counts(2, 0).n).sort()).toEqual([0, 1, 1]);
    // Shuffled, not grouped by label: over seeds, the first demonstration's label varies.
    expect(new Set([0, 1, 2, 3, 4, 5, 6, 7].map((seed) => counts(6, seed).examples[0].output)).size).toBeGreaterThan(1);
    // The synthetic classification task: 1 "dark" and 7 "silver" in its pool.
    const [p] = planTasks([classify], { shots: 2, seed: 5 });
    expect(p.examples.map((e) => e.output).sort()).toEqual([...classify.options!].sort());
    // Without options: the seeded random draw, as before.
    const [g] = planTasks([generateTask], { shots: 3, seed: 7 });
    expect(g.examples).toEqual(new Rng(7).fork(`plan/${generateTask.name}`).sample([...generateTask.examples], 3));
  });

  it('gives each task a prefix-tuning pool that holds the demonstrations and never an evaluated instance', () => {
    const big = makeSyntheticTask('constant', 'c2', { seed: 1, numExamples: 40, numInstances: 10 });
    const noPool: Task = { ...classify, name: 'nopool', examples: [] };
    const [a, b, c] = planTasks([big, noPool, { ...noPool, name: 'nopool2' }], {
      shots: 3,
      maxInstances: 2,
      seed: 0,
      poolSize: 32,
    });
    expect(a.poolFrom).toBe('examples');
    expect(a.pool).toHaveLength(32);
    expect(new Set(a.pool).size).toBe(32);
    expect(a.examples.every((e) => a.pool!.includes(e))).toBe(true);
    expect(a.pool!.some((e) => a.instances.includes(e))).toBe(false);
    // No separate pool: the demonstrations plus the instances not selected for evaluation.
    expect(b.poolFrom).toBe('instances');
    expect(b.instances).toHaveLength(2);
    expect(b.pool).toHaveLength(6 - 2);
    expect(b.pool!.some((e) => b.instances.includes(e))).toBe(false);
    expect(c.pool!.length).toBe(4);
    expect(planTasks([big], { shots: 3, seed: 0, poolSize: 5 })[0].pool).toHaveLength(5);
  });
});

describe('fitting the demonstrations', () => {
  it('ICL and HyperLlama receive exactly the same demonstrations: those fitting both budgets, dropped from the end', async () => {
    const model = tinyModel(3);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, seed: 1 });
    const [drawn] = planTasks([classify], { shots: 4, seed: 0 });
    // An ICL budget that holds the longest instance row with exactly two demonstrations (one token per character).
    const t = DEFAULT_TEMPLATE;
    const demo = (e: Example) => (t.prompt(e.input) + t.answer(e.output) + t.separator).length;
    const tail = Math.max(
      ...drawn.instances.flatMap((i) => classify.options!.map((o) => (t.prompt(i.input) + t.answer(o)).length)),
    );
    const maxLength = 1 + demo(drawn.examples[0]) + demo(drawn.examples[1]) + tail + 1;
    const s: EvalSettings & { hyperllama: HyperLlama } = {
      model,
      tokenizer: charTokenizer,
      hyperllama: hl,
      maxLength,
      maxHyperLength: 1024,
      batchSize: 32,
    };
    // Unfitted, the hypernetwork would read all four while ICL rows hold only two.
    expect(
      fewShotRow(
        { encoder: charTokenizer, maxLength },
        undefined,
        drawn.examples,
        drawn.instances[0].input,
        classify.options![0],
      ).numExamples,
    ).toBeLessThan(4);
    const [plan] = fitPlans([drawn], fitOptions(s, hl.k));
    expect(plan.drawn).toBe(4);
    expect(plan.examples).toEqual(drawn.examples.slice(0, 2));

    const forward = model.forward.bind(model);
    const rows: number[][] = [];
    const spy = vi.spyOn(model, 'forward').mockImplementation((args) => {
      rows.push(...(args.inputIds!.arraySync() as number[][]));
      return forward(args);
    });
    const icl = await evaluateMethod('icl', [plan], s);
    spy.mockRestore();
    const hyperInputs: number[][] = [];
    const encode = hl.encode.bind(hl);
    const encodeSpy = vi.spyOn(hl, 'encode').mockImplementation((hyper, o) => {
      hyperInputs.push(...hyper.inputIds);
      return encode(hyper, o);
    });
    const hyper = await evaluateMethod('hyperllama', [plan], s);
    encodeSpy.mockRestore();

    const expected = plan.examples.map((e) => e.input);
    expect(rows.length).toBe(plan.instances.length * classify.options!.length);
    for (const text of texts(rows)) expect(shownIn(text, drawn.examples)).toEqual(expected);
    expect(hyperInputs).toHaveLength(1);
    expect(shownIn(texts(hyperInputs)[0], drawn.examples)).toEqual(expected);
    expect(icl[0].demonstrations).toBe(2);
    expect(hyper[0].demonstrations).toBe(2);
    // The same through evaluate, which fits the plans itself; zero-shot sees none.
    const results = await evaluate([classify], s, { methods: ['zero-shot', 'icl', 'hyperllama'], shots: 4, seed: 0 });
    expect(results.map((r) => r.scores[0].demonstrations)).toEqual([0, 2, 2]);
    expect(results[0].configuration).toMatchObject({ demonstrationsPerTask: { drawn: 4, fitted: 2 } });
    // taskPrefix fits too: the prefix of the unfitted plan is that of the fitted one.
    const p1 = taskPrefix(hl, drawn, s);
    const p2 = taskPrefix(hl, plan, s);
    expect(Array.from(p1.keys[0].dataSync())).toEqual(Array.from(p2.keys[0].dataSync()));
    tf.dispose([...p1.keys, ...p1.values, ...p2.keys, ...p2.values]);
    hl.dispose();
    model.dispose();
  });
});

describe('fitting: an instance too long for any row', () => {
  it('is cut and sees no demonstration, but does not take the demonstrations away from the others', () => {
    const long = makeExample('x'.repeat(300), [classify.options![0]]);
    const task: Task = { ...classify, instances: [...classify.instances, long] };
    const [drawn] = planTasks([task], { shots: 4, seed: 0 });
    expect(drawn.instances).toContain(long);
    const [fitted] = fitPlans([drawn], { tokenizer: charTokenizer, maxLength: 200, gists: 2 });
    expect(fitted.examples).toEqual(drawn.examples);
    expect(
      fewShotRow(
        { encoder: charTokenizer, maxLength: 200 },
        undefined,
        fitted.examples,
        classify.instances[0].input,
        classify.options![0],
      ).numExamples,
    ).toBe(4);
    // A tighter budget drops from the end.
    expect(fitPlans([drawn], { tokenizer: charTokenizer, maxLength: 90 })[0].examples).toEqual(
      drawn.examples.slice(0, fitPlans([drawn], { tokenizer: charTokenizer, maxLength: 90 })[0].examples.length),
    );
    expect(fitPlans([drawn], { tokenizer: charTokenizer, maxLength: 90 })[0].examples.length).toBeLessThan(4);
  });
});

describe('labelLogProbs', () => {
  it('equals log-softmax of the full logits at the position before each label', async () => {
    const model = tinyModel(1);
    const batch = collateRankClassification(
      classify,
      classify.instances.slice(0, 2),
      classify.examples.slice(0, 2),
      'fewshot',
      { encoder: charTokenizer, eos: false },
    );
    const ids = tf.tensor2d(batch.rows.inputIds, undefined, 'int32');
    const mask = tf.tensor2d(batch.rows.attentionMask, undefined, 'int32');
    const hidden = model.forward({ inputIds: ids, attentionMask: mask, returnHidden: true }).hidden!;
    const got = await labelLogProbs(model, hidden, batch.rows.labels);
    const logits = model.forward({ inputIds: ids, attentionMask: mask }).logits!;
    const full = (logits.arraySync() as number[][][]).map((row) =>
      row.map((l) => {
        const max = Math.max(...l);
        const z = Math.log(l.reduce((s, x) => s + Math.exp(x - max), 0)) + max;
        return l.map((x) => x - z);
      }),
    );
    batch.rows.labels.forEach((row, r) => {
      const expected = row.flatMap((id, t) => (t > 0 && id !== -100 ? [full[r][t - 1][id]] : []));
      expect(got[r]).toHaveLength(expected.length);
      got[r].forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
    });
    tf.dispose([ids, mask, hidden, logits]);
    model.dispose();
  });
});

/** Log-probabilities of one unpadded row's labels (batch 1, no prefix). */
async function rowLogProbs(
  model: ReturnType<typeof tinyModel>,
  row: { ids: number[]; labels: number[] },
): Promise<number[]> {
  const ids = tf.tensor2d([row.ids], undefined, 'int32');
  const hidden = model.forward({ inputIds: ids, returnHidden: true }).hidden!;
  const out = (await labelLogProbs(model, hidden, [row.labels]))[0];
  tf.dispose([ids, hidden]);
  return out;
}

const nll = (xs: number[]) => -xs.reduce((a, b) => a + b, 0) / xs.length;

describe('evaluate', () => {
  it('scores rank classification batched exactly as one instance at a time; hyperllama compresses once per task', async () => {
    const model = tinyModel(2);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, seed: 1 });
    const settings = { model, tokenizer: charTokenizer, hyperllama: hl, maxNewTokens: 4, batchSize: 5 };
    const encode = vi.spyOn(hl, 'encode');
    const before = tf.memory().numTensors;
    const results = await evaluate([classify, generateTask], settings, {
      methods: ['zero-shot', 'icl', 'hyperllama'],
      shots: 2,
      seed: 3,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(encode).toHaveBeenCalledTimes(2); // one hyper pass per task, shared by all its instances and the swap control
    expect(results.map((r) => r.method)).toEqual(['zero-shot', 'icl', 'hyperllama', 'hyperllama-swap']);
    for (const r of results) {
      expect(
        r.scores.map((s) => [s.task, s.metric, s.scores.length, s.answerLoss!.length, s.answerLossWithEos!.length]),
      ).toEqual([
        [classify.name, 'accuracy', 6, 6, 6],
        [generateTask.name, 'rougeL', 3, 3, 3],
      ]);
      for (const s of r.scores)
        for (const v of s.scores) expect(v >= 0 && v <= (s.metric === 'rougeL' ? 100 : 1)).toBe(true);
    }
    expect(results[0].configuration).toMatchObject({ scoring: 'mean' });

    // Reference for ICL: each instance alone (batch 1 per option row), scored by rankClassify (mean by default).
    const plan = planTasks([classify], { shots: 2, seed: 3 })[0];
    const expected: number[] = [];
    for (const inst of plan.instances) {
      const options = classify.options!;
      const lls: number[][] = [];
      for (let j = 0; j < options.length; j++) {
        const b = collateRankClassification(classify, [inst], plan.examples, 'fewshot', {
          encoder: charTokenizer,
          eos: false,
          maxLength: 1024,
        });
        lls.push(
          await rowLogProbs(model, {
            ids: b.rows.inputIds[j].slice(0, b.rows.lengths[j]),
            labels: b.rows.labels[j].slice(0, b.rows.lengths[j]),
          }),
        );
      }
      expected.push(options[rankClassify(lls)] === inst.output ? 1 : 0);
    }
    expect(results[1].scores[0].scores).toEqual(expected);
    hl.dispose();
    model.dispose();
  });

  it('measures the answer loss per instance, teacher-forced on the first reference, without and with EOS', async () => {
    const model = tinyModel(4);
    const s = { model, tokenizer: charTokenizer, maxNewTokens: 3, batchSize: 4 };
    const [zs, icl] = await evaluate([classify, generateTask], s, { methods: ['zero-shot', 'icl'], shots: 2, seed: 1 });
    const plans = planTasks([classify, generateTask], { shots: 2, seed: 1 });
    const o = { encoder: charTokenizer, maxLength: 1024, eos: true };
    for (const [t, plan] of plans.entries()) {
      for (const [i, inst] of plan.instances.entries()) {
        const zsRow = answerRow(o, inst.input, inst.output, plan.task.definition);
        const iclRow = fewShotRow(o, plan.task.definition, plan.examples, inst.input, inst.output);
        for (const [scores, row] of [
          [zs.scores[t], zsRow],
          [icl.scores[t], iclRow],
        ] as const) {
          const lp = await rowLogProbs(model, row);
          expect(row.labels[row.labels.length - 1]).toBe(charTokenizer.eosId);
          expect(scores.answerLoss![i]).toBeCloseTo(nll(lp.slice(0, -1)), 4); // answer tokens only
          expect(scores.answerLossWithEos![i]).toBeCloseTo(nll(lp), 4); // and EOS
          expect(lp.length - 1).toBe(charTokenizer.encode(` ${inst.output}`).length);
        }
      }
    }
    expect(zs.scores[0].answerLoss![0]).not.toBeCloseTo(zs.scores[0].answerLossWithEos![0], 6);
    const report = buildReport([zs, icl]);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(report.methods.icl.answerLoss).toBeCloseTo(mean(icl.scores.map((t) => mean(t.answerLoss!))), 12);
    expect(report.methods['zero-shot'].answerLossWithEos).toBeCloseTo(
      mean(zs.scores.map((t) => mean(t.answerLossWithEos!))),
      12,
    );
    expect(report.methods['zero-shot'].demonstrations).toBe(0);
    expect(report.methods.icl.demonstrations).toBe(2);
    model.dispose();
  });

  it('scores exact match strictly, except for S-NI tasks', async () => {
    expect(usesSniExactMatch({ name: 'task001_quoref_question_generation', source: 'quoref' })).toBe(true);
    expect(usesSniExactMatch({ name: 'x', source: 'sni' })).toBe(true);
    expect(usesSniExactMatch({ name: 'synth_constant_c1', source: 'synthetic' })).toBe(false);
    // The reference is the model's own greedy answer upper-cased with a "!": strict 0, S-NI-normalised 1.
    const model = tinyModel(1);
    const inst = generateTask.instances[0];
    const prompt = [charTokenizer.bosId, ...charTokenizer.encode(DEFAULT_TEMPLATE.prompt(inst.input))];
    const out = await generate(model, [prompt], {
      maxNewTokens: 6,
      stopIds: [charTokenizer.eosId],
      padId: charTokenizer.padId,
    });
    const prediction = continuationText(charTokenizer, prompt, out.tokens[0]).trim();
    const fake: Task = {
      ...generateTask,
      name: 'fake',
      definition: undefined,
      instances: [makeExample(inst.input, [`${prediction.toUpperCase()}!`])],
      metric: 'exact',
    };
    const s = { model, tokenizer: charTokenizer, maxNewTokens: 6 };
    const run = async (task: Task, extra: Partial<EvalSettings> = {}) =>
      (await evaluate([task], { ...s, ...extra }, { methods: ['zero-shot'], shots: 0, seed: 0 }))[0].scores[0].scores;
    expect(await run(fake)).toEqual([0]);
    expect(await run({ ...fake, name: 'task123_fake' })).toEqual([1]);
    expect(await run(fake, { exactMatch: 'sni' })).toEqual([1]);
    expect(await run({ ...fake, instances: [makeExample(inst.input, [` ${prediction}  `])] })).toEqual([1]); // surrounding whitespace only
    model.dispose();
  });

  it('parses method lists', () => {
    expect(parseMethods('zero-shot, icl,prefix-tuning', { shared: false, hyper: true })).toEqual([
      'zero-shot',
      'icl',
      'prefix-tuning-random',
      'prefix-tuning-hyper',
      'prefix-tuning-hyper-other',
    ]);
    expect(parseMethods('prefix-tuning', { shared: true, hyper: false })).toEqual([
      'prefix-tuning-random',
      'prefix-tuning-shared',
    ]);
    expect(() => parseMethods('icl,fewshot', { shared: true, hyper: true })).toThrow(/unknown method "fewshot"/);
  });
});

describe('the prefix-swap control', () => {
  it('pairs every task with another one, of another category when it can', () => {
    const t = (name: string, category?: string) => ({ name, category });
    const four = [t('a1', 'A'), t('a2', 'A'), t('b1', 'B'), t('c1', 'C')];
    const p = swapPartners(four);
    expect(new Set(p.values()).size).toBe(4); // a permutation
    for (const x of four) {
      expect(p.get(x.name)).not.toBe(x.name);
      expect(four.find((y) => y.name === p.get(x.name))!.category).not.toBe(x.category);
    }
    expect(swapPartners([...four].reverse())).toEqual(p); // independent of the order given
    const same = swapPartners([t('x', 'A'), t('y', 'A'), t('z', 'A')]);
    expect([...same].every(([a, b]) => a !== b)).toBe(true);
    expect(new Set(same.values()).size).toBe(3);
    expect(swapPartners([t('x'), t('y')])).toEqual(
      new Map([
        ['x', 'y'],
        ['y', 'x'],
      ]),
    );
    expect(() => swapPartners([t('x')])).toThrow(EvalError);
  });

  it('is exactly 0 for a method without a prefix, and for a HyperLlama whose prefixes are the same for every task', async () => {
    const model = tinyModel(6);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, seed: 3 });
    const tasks = [classify, generateTask];
    const s = { model, tokenizer: charTokenizer, maxNewTokens: 3 };
    const plans = fitPlans(planTasks(tasks, { shots: 2, seed: 0 }), fitOptions(s, hl.k));
    const partners = swapPartners(tasks);
    const zs = await evaluateMethod('zero-shot', plans, s);
    const zsSwap = await evaluateMethod('zero-shot', plans, s, undefined, { swap: partners });
    expect(zsSwap).toEqual(zs);
    expect(pairedBootstrap(zs, zsSwap, { resamples: 200 })).toEqual({ difference: 0, low: 0, high: 0, resamples: 200 });
    expect(pairedBootstrap(zs, zsSwap, { resamples: 200, value: 'answerLoss' })).toEqual({
      difference: 0,
      low: 0,
      high: 0,
      resamples: 200,
    });

    // One prefix for every task: swapping changes nothing.
    const one = taskPrefix(hl, plans[0], s);
    const prefixes = new Map<string, Prefix>(tasks.map((t) => [t.name, one]));
    const own = await evaluateMethod('hyperllama', plans, { ...s, hyperllama: hl, prefixes });
    const swapped = await evaluateMethod('hyperllama', plans, { ...s, hyperllama: hl, prefixes }, undefined, {
      swap: partners,
    });
    expect(swapped).toEqual(own);
    const report = buildReport(
      [
        { method: 'hyperllama', configuration: {}, scores: own },
        { method: 'hyperllama-swap', configuration: {}, scores: swapped },
      ],
      {},
      { resamples: 200 },
    );
    const gap = report.claims.find((c) => c.id === 'swap gap')!;
    expect(gap.comparisons[0].score).toEqual({
      difference: 0,
      low: 0,
      high: 0,
      resamples: 200,
      verdict: 'inconclusive',
    });
    expect(gap.comparisons[0].answerLoss).toEqual({
      difference: 0,
      low: 0,
      high: 0,
      resamples: 200,
      verdict: 'inconclusive',
    });

    // Each task's own prefix: the swap scores the same instances behind the partner's prefix.
    const results = await evaluate(tasks, { ...s, hyperllama: hl }, { methods: ['hyperllama'], shots: 2, seed: 0 });
    expect(results.map((r) => r.method)).toEqual(['hyperllama', 'hyperllama-swap']);
    expect(results[1].configuration).toMatchObject({ partners: Object.fromEntries(partners) });
    const [a, b] = results;
    a.scores.forEach((t, i) => expect(b.scores[i].scores).toHaveLength(t.scores.length));
    expect(b.scores.map((t) => t.answerLoss)).not.toEqual(a.scores.map((t) => t.answerLoss));
    const alone = await evaluateMethod(
      'hyperllama',
      plans,
      { ...s, hyperllama: hl, prefixes: new Map([[tasks[1].name, taskPrefix(hl, plans[1], s)]]) },
      undefined,
      { swap: new Map([[tasks[0].name, tasks[1].name]]) },
    ).catch((e) => e);
    expect(alone).toBeInstanceOf(EvalError); // every task needs a partner among the plans
    expect(
      (
        await evaluate(tasks, { ...s, hyperllama: hl }, { methods: ['hyperllama'], shots: 2, seed: 0, swap: false })
      ).map((r) => r.method),
    ).toEqual(['hyperllama']);
    tf.dispose([...one.keys, ...one.values]);
    hl.dispose();
    model.dispose();
  });
});

describe('prefix tuning', () => {
  it("trains on the tuning pool in seeded minibatches; from the HyperLlama prefix it starts exactly at hyperllama, from another task's at the swap control", async () => {
    const model = tinyModel(5);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, downstream: { r: 2, alpha: 4 }, seed: 2 });
    // A downstream adapter that changes the outputs (lora_B starts at 0): prefix tuning must run with it on too.
    const downB = Object.entries(hl.trainableVariables()).filter(
      ([name]) => name.startsWith('downstream.') && name.endsWith('lora_B'),
    );
    expect(downB.length).toBeGreaterThan(0);
    for (const [, v] of downB) v.assign(tf.randomNormal(v.shape, 0, 3, 'float32', 7));
    const settings = { model, tokenizer: charTokenizer, hyperllama: hl, maxNewTokens: 3 };
    const tasks = [
      makeSyntheticTask('symbol_rule', family('symbol_rule').variants[1], {
        seed: 5,
        numExamples: 12,
        numInstances: 8,
      }),
      makeSyntheticTask('constant', 'c3', { seed: 5, numExamples: 12, numInstances: 4 }),
    ];
    const encode = vi.spyOn(hl, 'encode');
    const loss = vi.spyOn(PrefixTuning.prototype, 'loss');
    const before = tf.memory().numTensors;
    const results = await evaluate(tasks, settings, {
      methods: ['hyperllama', 'prefix-tuning-random', 'prefix-tuning-hyper', 'prefix-tuning-hyper-other'],
      shots: 3,
      seed: 0,
      poolSize: 10,
      prefixTuning: { evalSteps: [0, 1, 2], lr: 0.05, batchSize: 4 },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(encode).toHaveBeenCalledTimes(2); // one hyper pass per task for hyperllama, the swap and both hyper starts
    const by = Object.fromEntries(results.map((r) => [r.method, r]));
    expect(Object.keys(by)).toEqual([
      'hyperllama',
      'hyperllama-swap',
      'prefix-tuning-random',
      'prefix-tuning-hyper',
      'prefix-tuning-hyper-other',
    ]);
    const tuned = by['prefix-tuning-hyper'];
    expect(tuned.curve!.map((p) => p.step)).toEqual([0, 1, 2]);
    expect(tuned.curve![0].scores).toEqual(by.hyperllama.scores); // scores, answer losses and demonstrations
    expect(by['prefix-tuning-hyper-other'].curve![0].scores).toEqual(by['hyperllama-swap'].scores);
    expect(by['prefix-tuning-random'].curve![0].scores.map((t) => t.demonstrations)).toEqual([0, 0]);
    expect(tuned.scores).toEqual(tuned.curve![2].scores);
    expect(tuned.curve![2].scores[0].answerLoss).not.toEqual(tuned.curve![0].scores[0].answerLoss); // it trained
    expect(tuned.configuration).toMatchObject({
      init: 'hyper',
      lr: 0.05,
      steps: 2,
      evalSteps: [0, 1, 2],
      batchSize: 4,
      poolSize: { min: 10, max: 10, mean: 10 },
      poolSplitFromInstances: [],
      shots: 3,
    });
    // 3 inits × 2 tasks × 2 steps, each on a minibatch of 4 pool examples.
    expect(loss).toHaveBeenCalledTimes(12);
    for (const [, batch] of loss.mock.calls) expect(batch.inputIds).toHaveLength(4);
    // The pool never holds an evaluated instance.
    for (const plan of planTasks(tasks, { shots: 3, seed: 0, poolSize: 10 })) {
      expect(plan.pool!.some((e) => plan.instances.includes(e))).toBe(false);
      const trained = new Set(loss.mock.calls.flatMap(([, b]) => texts(b.inputIds)));
      for (const inst of plan.instances)
        expect([...trained].some((t) => t.includes(`Input: ${inst.input} Output:`))).toBe(false);
    }
    const report = buildReport(results, {}, { resamples: 200 });
    expect(report.prefixTuning!.inits).toEqual(['random', 'hyper', 'hyper-other']);
    expect(report.prefixTuning!.points.map((p) => Object.keys(p.differences))).toEqual(
      [0, 1, 2].map(() => ['hyper − random', 'hyper − hyper-other']),
    );
    expect(report.claims.map((c) => c.id)).toEqual(['swap gap']); // claim 3 needs the shared start too
    loss.mockRestore();
    hl.dispose();
    model.dispose();
  });

  it('reads the schedule from evalSteps, from steps and evalEvery, or defaults to 0, 10, 25, 50', () => {
    expect(prefixTuningSchedule({})).toEqual([0, 10, 25, 50]);
    expect(prefixTuningSchedule({ steps: 4, evalEvery: 2 })).toEqual([0, 2, 4]);
    expect(prefixTuningSchedule({ steps: 5, evalEvery: 2 })).toEqual([0, 2, 4, 5]);
    expect(prefixTuningSchedule({ evalSteps: [5, 0, 5] })).toEqual([0, 5]);
    expect(() => prefixTuningSchedule({ evalSteps: [-1] })).toThrow(EvalError);
  });
});
