import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticTask, syntheticKinds } from '@hyperllama/datasets';
import { evaluate, type MethodResult } from '@hyperllama/eval';
import { defaultBaseDir } from '@hyperllama/default-model';
import { loadPretrained } from '@hyperllama/hypernet';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { BUDGETS, DEV_SEED_OFFSET, SCREEN_MIN_GAIN, miniatureTasks, screenFamilies } from '../src/index.js';
import { charTokenizer, tinyModel } from './helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});
afterAll(() => disposeBackend());

describe('screenFamilies', () => {
  it('scores the development draw as the evaluation scores it, with chance for classification', async () => {
    const model = tinyModel(3);
    const kinds = [
      { family: 'pick', variant: 'char_first' },
      { family: 'symbol_rule', variant: 'vowel_first_l1' },
      { family: 'symbol_rule', variant: 'even_l1' },
    ];
    const screen = await screenFamilies(model, charTokenizer, kinds, {
      seed: 0,
      instances: 8,
      shots: 2,
      maxLength: 200,
    });
    // Reference: the evaluation itself on the development draw (content seed + DEV_SEED_OFFSET), averaged per family.
    const dev = kinds.map((k) => makeSyntheticTask(k.family, k.variant, { seed: DEV_SEED_OFFSET, pool: 'heldout' }));
    const s = { model, tokenizer: charTokenizer, maxLength: 200, maxNewTokens: 16 };
    const [zs, icl] = await evaluate(dev, s, { methods: ['zero-shot', 'icl'], shots: 2, maxInstances: 8, seed: 0 });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const score = (r: MethodResult, i: number) => mean(r.scores.find((t) => t.task === dev[i].name)!.scores);
    const [pick, rule] = screen;
    expect(pick).toMatchObject({ family: 'pick', kinds: 1, chance: 0 });
    expect(pick.zeroShot).toBeCloseTo(score(zs, 0), 10);
    expect(pick.icl).toBeCloseTo(score(icl, 0), 10);
    expect(rule).toMatchObject({ family: 'symbol_rule', kinds: 2, chance: 0.5 });
    expect(rule.zeroShot).toBeCloseTo((score(zs, 1) + score(zs, 2)) / 2, 10);
    expect(rule.icl).toBeCloseTo((score(icl, 1) + score(icl, 2)) / 2, 10);
    for (const f of screen) expect(f.headline).toBe(f.icl - Math.max(f.zeroShot, f.chance) >= SCREEN_MIN_GAIN);
    model.dispose();
  });

  it('on the embedded base: a held-out constant is unknowable without demonstrations and copied with them', async () => {
    const { model, tokenizer, dispose } = loadPretrained(defaultBaseDir());
    try {
      const [constant] = await screenFamilies(model, tokenizer, [{ family: 'constant', variant: 'c3' }], {
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
