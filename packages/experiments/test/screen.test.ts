import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TEMPLATE, fewShotRow, makeSyntheticTask, syntheticKinds } from '@hyperllama/datasets';
import { defaultBaseDir } from '@hyperllama/default-model';
import { loadPretrained } from '@hyperllama/hypernet';
import { IGNORE_INDEX, disposeBackend, initBackend } from '@hyperllama/runtime';
import { BUDGETS, DEV_SEED_OFFSET, SCREEN_MIN_ICL, miniatureTasks, screenFamilies } from '../src/index.js';
import { charTokenizer, tinyModel } from './helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});
afterAll(() => disposeBackend());

describe('screenFamilies', () => {
  it('scores each row as unpadded, one-row forward passes do (padding changes nothing)', () => {
    const model = tinyModel(3);
    const [screen] = screenFamilies(model, charTokenizer, [{ family: 'pick', variant: 'char_first' }], {
      seed: 0,
      instances: 16,
      shots: 2,
      maxLength: 200,
    });
    // Reference: the same development draw, each row alone, exact when every answer token is the argmax.
    const dev = makeSyntheticTask('pick', 'char_first', { seed: DEV_SEED_OFFSET, pool: 'heldout' });
    const task = { examples: dev.examples.slice(0, 2), instances: dev.instances.slice(0, 16) };
    const collate = { encoder: charTokenizer, template: DEFAULT_TEMPLATE, maxLength: 200, eos: false };
    const exactAt = (k: number) =>
      task.instances.filter((x) => {
        const row = fewShotRow(collate, undefined, task.examples.slice(0, k), x.input, x.output);
        const argmax = tf.tidy(
          () =>
            model
              .forward({ inputIds: tf.tensor2d([row.ids], undefined, 'int32') })
              .logits!.argMax(-1)
              .arraySync() as number[][],
        )[0];
        return row.labels.every((l, t) => l === IGNORE_INDEX || argmax[t - 1] === l);
      }).length / task.instances.length;
    expect(screen.family).toBe('pick');
    expect(screen.kinds).toBe(1);
    expect(screen.zeroShot).toBeCloseTo(exactAt(0), 10);
    expect(screen.icl).toBeCloseTo(exactAt(2), 10);
    expect(screen.headline).toBe(screen.icl >= SCREEN_MIN_ICL);
    model.dispose();
  });

  it('on the embedded base: a held-out constant is unknowable without demonstrations and copied with them', () => {
    const { model, tokenizer, dispose } = loadPretrained(defaultBaseDir());
    try {
      const [constant] = screenFamilies(model, tokenizer, [{ family: 'constant', variant: 'c3' }], {
        seed: 0,
        shots: 16,
        maxLength: 400,
      });
      expect(constant).toMatchObject({ family: 'constant', zeroShot: 0, icl: 1, headline: true });
    } finally {
      dispose();
    }
  });

  it('scores a development draw: other constants than the evaluated ones, and few shared instances', () => {
    const split = syntheticKinds({ seed: 0 });
    const { headline, control } = miniatureTasks(0, BUDGETS.full, ['constant', 'pick', 'symbol_rule']);
    const evaluated = new Set(
      [...headline, ...control].flatMap((t) => t.instances.map((x) => `${x.input}→${x.output}`)),
    );
    for (const k of split.heldOutParams.filter((x) => ['constant', 'pick', 'symbol_rule'].includes(x.family))) {
      const dev = makeSyntheticTask(k.family, k.variant, { seed: DEV_SEED_OFFSET, pool: 'heldout' });
      const shared = dev.instances.filter((x) => evaluated.has(`${x.input}→${x.output}`));
      expect(shared.length / dev.instances.length).toBeLessThan(0.25);
      if (k.family === 'constant')
        for (const t of headline.filter((t) => t.name.startsWith(`synth_constant_${k.variant}_`)))
          expect(t.instances[0].output).not.toBe(dev.instances[0].output);
    }
  });
});

describe('miniatureTasks with screened headline families', () => {
  it('takes the headline from the given families in turn, with further draws of their variants, and every other held-out family as a control', () => {
    const families = ['constant', 'pick', 'symbol_rule', 'symbol_topic'];
    const { headline, control } = miniatureTasks(0, BUDGETS.full, families);
    expect(headline).toHaveLength(BUDGETS.full.headlineTasks);
    const familyOf = (name: string) => families.find((f) => name.startsWith(`synth_${f}_`));
    // 24 tasks over 4 families: 6 each, the first 4 one of each family.
    expect(new Set(headline.slice(0, 4).map((t) => familyOf(t.name))).size).toBe(4);
    for (const f of families) expect(headline.filter((t) => familyOf(t.name) === f)).toHaveLength(6);
    expect(new Set(headline.map((t) => t.name)).size).toBe(headline.length);
    // constant has 2 held-out variants: draws 2 and 3 carry other constants under _seed<s> names.
    const constants = headline.filter((t) => familyOf(t.name) === 'constant');
    expect(constants.map((t) => t.name.replace(/^synth_constant_c\d+_heldout/, ''))).toEqual([
      '',
      '',
      '_seed1',
      '_seed1',
      '_seed2',
      '_seed2',
    ]);
    expect(new Set(constants.map((t) => t.instances[0].output)).size).toBe(6);
    const heldOutFamilies = new Set(
      [...syntheticKinds({ seed: 0 }).heldOutParams, ...syntheticKinds({ seed: 0 }).heldOutFamilies].map(
        (k) => k.family,
      ),
    );
    expect(control).toHaveLength(heldOutFamilies.size - families.length);
    for (const t of control) expect(familyOf(t.name)).toBeUndefined();
  });
});
