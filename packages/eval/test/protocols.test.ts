import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { collateRankClassification, makeSyntheticTask, SYNTHETIC_FAMILIES, type Task } from '@hyperllama/datasets';
import { HyperLlama } from '@hyperllama/hypernet';
import { EvalError, evaluate, labelLogProbs, parseMethods, planTasks, rankClassify } from '../src/index.js';
import { charTokenizer, tinyModel } from './helpers.js';


const family = (name: string) => SYNTHETIC_FAMILIES.find((f) => f.name === name)!;
const classify: Task = makeSyntheticTask('symbol_rule', family('symbol_rule').variants[0], { seed: 4, numExamples: 8, numInstances: 6 });
const generateTask: Task = { ...makeSyntheticTask('constant', 'c1', { seed: 4, numExamples: 8, numInstances: 3 }), metric: 'rougeL' };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

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
});

describe('labelLogProbs', () => {
  it('equals log-softmax of the full logits at the position before each label', async () => {
    const model = tinyModel(1);
    const batch = collateRankClassification(classify, classify.instances.slice(0, 2), classify.examples.slice(0, 2), 'fewshot', { encoder: charTokenizer, eos: false });
    const ids = tf.tensor2d(batch.rows.inputIds, undefined, 'int32');
    const mask = tf.tensor2d(batch.rows.attentionMask, undefined, 'int32');
    const hidden = model.forward({ inputIds: ids, attentionMask: mask, returnHidden: true }).hidden!;
    const got = await labelLogProbs(model, hidden, batch.rows.labels);
    const logits = model.forward({ inputIds: ids, attentionMask: mask }).logits!;
    const full = (logits.arraySync() as number[][][]).map((row) => row.map((l) => {
      const max = Math.max(...l);
      const z = Math.log(l.reduce((s, x) => s + Math.exp(x - max), 0)) + max;
      return l.map((x) => x - z);
    }));
    batch.rows.labels.forEach((row, r) => {
      const expected = row.flatMap((id, t) => (t > 0 && id !== -100 ? [full[r][t - 1][id]] : []));
      expect(got[r]).toHaveLength(expected.length);
      got[r].forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
    });
    tf.dispose([ids, mask, hidden, logits]);
    model.dispose();
  });
});

describe('evaluate', () => {
  it('scores rank classification batched exactly as one instance at a time; hyperllama compresses once per task', async () => {
    const model = tinyModel(2);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, seed: 1 });
    const settings = { model, tokenizer: charTokenizer, hyperllama: hl, maxNewTokens: 4, batchSize: 5 };
    const encode = vi.spyOn(hl, 'encode');
    const before = tf.memory().numTensors;
    const results = await evaluate([classify, generateTask], settings, { methods: ['zero-shot', 'icl', 'hyperllama'], shots: 2, seed: 3 });
    expect(tf.memory().numTensors).toBe(before);
    expect(encode).toHaveBeenCalledTimes(2); // one hyper pass per task, shared by all its instances
    expect(results.map((r) => r.method)).toEqual(['zero-shot', 'icl', 'hyperllama']);
    for (const r of results) {
      expect(r.scores.map((s) => [s.task, s.metric, s.scores.length])).toEqual([
        [classify.name, 'accuracy', 6],
        [generateTask.name, 'rougeL', 3],
      ]);
      for (const s of r.scores) for (const v of s.scores) expect(v >= 0 && v <= (s.metric === 'rougeL' ? 100 : 1)).toBe(true);
    }

    // Reference for ICL: each instance alone (batch 1 per option row), scored by rankClassify.
    const plan = planTasks([classify], { shots: 2, seed: 3 })[0];
    const expected: number[] = [];
    for (const inst of plan.instances) {
      const options = classify.options!;
      const lls: number[][] = [];
      for (let j = 0; j < options.length; j++) {
        const b = collateRankClassification(classify, [inst], plan.examples, 'fewshot', { encoder: charTokenizer, eos: false, maxLength: 1024 });
        const ids = tf.tensor2d([b.rows.inputIds[j].slice(0, b.rows.lengths[j])], undefined, 'int32');
        const hidden = model.forward({ inputIds: ids, returnHidden: true }).hidden!;
        lls.push((await labelLogProbs(model, hidden, [b.rows.labels[j].slice(0, b.rows.lengths[j])]))[0]);
        tf.dispose([ids, hidden]);
      }
      expected.push(options[rankClassify(lls)] === inst.output ? 1 : 0);
    }
    expect(results[1].scores[0].scores).toEqual(expected);
    hl.dispose();
    model.dispose();
  });

  it('prefix tuning from the HyperLlama prefix starts (step 0) exactly where hyperllama is (downstream adapter on), and gives a curve', async () => {
    const model = tinyModel(5);
    const hl = new HyperLlama(model, { k: 2, hyper: { r: 2, alpha: 4 }, downstream: { r: 2, alpha: 4 }, seed: 2 });
    // A downstream adapter that changes the outputs (lora_B starts at 0): prefix tuning must run with it on too.
    const downB = Object.entries(hl.trainableVariables()).filter(([name]) => name.startsWith('downstream.') && name.endsWith('lora_B'));
    expect(downB.length).toBeGreaterThan(0);
    for (const [, v] of downB) v.assign(tf.randomNormal(v.shape, 0, 3, 'float32', 7));
    const settings = { model, tokenizer: charTokenizer, hyperllama: hl, maxNewTokens: 3 };
    const tasks = [makeSyntheticTask('symbol_rule', family('symbol_rule').variants[1], { seed: 5, numExamples: 8, numInstances: 24 })];
    const [hyper, tuned] = await evaluate(tasks, settings, { methods: ['hyperllama', 'prefix-tuning-hyper'], shots: 3, seed: 0, prefixTuning: { steps: 2, evalEvery: 1, lr: 0.05 } });
    expect(tuned.curve!.map((p) => p.step)).toEqual([0, 1, 2]);
    expect(tuned.curve![0].scores).toEqual(hyper.scores);
    expect(tuned.scores).toEqual(tuned.curve![2].scores);
    expect(tuned.configuration).toMatchObject({ init: 'hyper', steps: 2, evalEvery: 1, lr: 0.05, shots: 3 });
    hl.dispose();
    model.dispose();
  });

  it('parses method lists', () => {
    expect(parseMethods('zero-shot, icl,prefix-tuning', { shared: false, hyper: true })).toEqual(['zero-shot', 'icl', 'prefix-tuning-random', 'prefix-tuning-hyper']);
    expect(() => parseMethods('icl,fewshot', { shared: true, hyper: true })).toThrow(/unknown method "fewshot"/);
  });
});
