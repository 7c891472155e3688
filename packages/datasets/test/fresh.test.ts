import { describe, expect, it } from 'vitest';
import * as runtime from '@hyperllama/runtime';
import {
  FreshEpisodeSampler,
  isHeldOutContent,
  isControlTask,
  lexiconOf,
  makeSyntheticTask,
  SYNTHETIC_FAMILIES,
  syntheticKinds,
  syntheticTasks,
  syntheticVocabulary,
  type Episode,
} from '../src/index.js';

const kinds = syntheticKinds({ seed: 0 });
const draw = (sampler: FreshEpisodeSampler, n: number): Episode[] => Array.from({ length: n }, () => sampler.next());
const familyOf = (name: string) => SYNTHETIC_FAMILIES.find((f) => name.startsWith(`synth_${f.name}_`))!.name;
/** What an episode's content is: its label set, or its demonstrations' outputs. */
const contentOf = (e: Episode) =>
  e.task.options ? e.task.options.join('/') : [...e.examples, e.target].map((x) => `${x.input}>${x.output}`).join('|');

describe('fresh-content synthetic episodes', () => {
  it('draws new content for every episode of the same kind (labels, tables, constants)', () => {
    for (const [family, variant] of [
      ['lookup', 'word_t1'],
      ['symbol_rule', 'even_l1'],
      ['constant', 'c1'],
    ]) {
      const sampler = new FreshEpisodeSampler([{ family, variant }], { seed: 1, k: 8 });
      const episodes = draw(sampler, 40);
      // Label pairs and constant answers come from a pool of ~60 words, tables from many more combinations.
      expect(new Set(episodes.map(contentOf)).size, family).toBeGreaterThanOrEqual(25);
      if (family === 'constant') expect(new Set(episodes.map((e) => e.target.output)).size).toBeGreaterThanOrEqual(20);
      if (family === 'lookup') {
        // Within one episode the table is consistent: a key shown twice has one value.
        for (const e of episodes) {
          const table = new Map<string, string>();
          for (const x of [...e.examples, e.target]) {
            expect(table.get(x.input) ?? x.output).toBe(x.output);
            table.set(x.input, x.output);
          }
        }
      }
    }
  });

  it('never shows held-out content (label assignments, tables, constants) or held-out kinds in training', () => {
    const { Rng } = runtime;
    // Setups of every content family: training draws never give held-out content, held-out draws only give it.
    let drawn = 0;
    for (const family of SYNTHETIC_FAMILIES.filter((f) =>
      ['symbol_rule', 'symbol_topic', 'lookup', 'constant'].includes(f.name),
    )) {
      const seen = { train: new Set<string>(), heldout: new Set<string>() };
      for (const variant of family.variants) {
        for (let i = 0; i < 40; i++) {
          for (const pool of ['train', 'heldout'] as const) {
            const content = family.setup(variant, new Rng(i).fork(variant), pool).content!;
            expect(isHeldOutContent(content), `${family.name} ${pool}`).toBe(pool === 'heldout');
            seen[pool].add(content.join('/'));
            drawn++;
          }
        }
      }
      expect(
        [...seen.heldout].filter((c) => seen.train.has(c)),
        family.name,
      ).toEqual([]);
      expect(seen.heldout.size).toBeGreaterThan(family.variants.length * 10); // content really varies
    }
    expect(drawn).toBeGreaterThan(2000);
    // Every word stays available to training: a word is held out only inside some contents.
    const trainingAnswers = new Set<string>();
    const sampler = new FreshEpisodeSampler(kinds.train, { seed: 2, k: [2, 16] });
    const trainedNames = new Set(kinds.train.map((k) => `synth_${k.family}_${k.variant}`));
    for (const e of draw(sampler, 3000)) {
      expect(trainedNames.has(e.task.name), e.task.name).toBe(true);
      const family = familyOf(e.task.name);
      // Episodes show enough to recompute the content of label and constant tasks.
      if (family === 'symbol_rule')
        expect(
          isHeldOutContent([
            `symbol_rule/${e.task.name.replace(/^synth_symbol_rule_/, '').replace(/_l\d+$/, '')}`,
            ...e.task.options!,
          ]),
        ).toBe(false);
      if (family === 'constant') {
        expect(isHeldOutContent(['constant', e.target.output])).toBe(false);
        trainingAnswers.add(e.target.output);
      }
    }
    expect(trainingAnswers.size).toBeGreaterThan(120);
    // Held-out tasks are named apart and hold held-out content only.
    const split = syntheticTasks({ seed: 0, numExamples: 4, numInstances: 4 });
    for (const t of split.heldOutParams.filter((x) => familyOf(x.name) === 'constant'))
      expect(isHeldOutContent(['constant', t.instances[0].output])).toBe(true);
  });

  it('picks families equally often whatever their number of variants, and shots within the range', () => {
    const sampler = new FreshEpisodeSampler(kinds.train, { seed: 3, k: [2, 5] });
    const counts = new Map<string, number>();
    const shots = new Set<number>();
    for (const e of draw(sampler, 4000)) {
      counts.set(familyOf(e.task.name), (counts.get(familyOf(e.task.name)) ?? 0) + 1);
      shots.add(e.examples.length);
      expect(e.task.instances).toEqual([e.target]);
    }
    const families = new Set(kinds.train.map((k) => k.family));
    expect(counts.size).toBe(families.size);
    const expected = 4000 / families.size;
    for (const [family, n] of counts) expect(Math.abs(n - expected), family).toBeLessThan(5 * Math.sqrt(expected));
    expect([...shots].sort()).toEqual([2, 3, 4, 5]);
  });

  it('continues the same stream from a saved state', () => {
    const a = new FreshEpisodeSampler(kinds.train, { seed: 4, k: [1, 4] });
    draw(a, 17);
    const b = new FreshEpisodeSampler(kinds.train, { seed: 4, k: [1, 4] }, JSON.parse(JSON.stringify(a.getState())));
    expect(draw(b, 20)).toEqual(draw(a, 20));
  });

  it('draws an open-lexicon share of episodes from that lexicon only, and leaves a stream without one unchanged', () => {
    const english = lexiconOf([
      'harbour',
      'velvet',
      'quilt',
      'meadow',
      'lantern',
      'pepper',
      'thimble',
      'walrus',
      'ember',
    ]);
    const plain = draw(new FreshEpisodeSampler(kinds.train, { seed: 5, k: [2, 4] }), 200);
    const none = draw(
      new FreshEpisodeSampler(kinds.train, { seed: 5, k: [2, 4], open: { lexicon: english, fraction: 0 } }),
      200,
    );
    // Fraction 0 draws one extra number per episode, so the streams differ in content but never in lexicon.
    const taskWords = new Set(syntheticVocabulary());
    const wordsOf = (e: Episode) =>
      [...e.examples, e.target].flatMap((x) => `${x.input} ${x.output}`.split(/[^a-z]+/)).filter((w) => w.length > 2);
    for (const e of [...plain, ...none]) for (const w of wordsOf(e)) expect(english.inputs).not.toContain(w);
    const all = draw(
      new FreshEpisodeSampler(kinds.train, { seed: 5, k: [2, 4], open: { lexicon: english, fraction: 1 } }),
      300,
    );
    // Every kind that draws words shows only lexicon words.
    const wordKinds = all.filter((e) =>
      /^synth_(constant|join|pick_word|repeat_word|lookup_word|reverse_words)_/.test(e.task.name),
    );
    expect(wordKinds.length).toBeGreaterThan(60);
    for (const e of wordKinds) for (const w of wordsOf(e)) expect(english.inputs, `${e.task.name}: ${w}`).toContain(w);
    const usesEnglish = (e: Episode) => wordsOf(e).some((w) => english.inputs.includes(w));
    // Constant episodes always draw a word: about half of them from the lexicon at fraction 0.5 (binomial, sd 10).
    const constants = new FreshEpisodeSampler([{ family: 'constant', variant: 'c1' }], {
      seed: 5,
      k: 2,
      open: { lexicon: english, fraction: 0.5 },
    });
    const half = draw(constants, 400).filter(usesEnglish).length;
    expect(half).toBeGreaterThan(160);
    expect(half).toBeLessThan(240);
    expect(taskWords.has('harbour')).toBe(false);
  });

  it("gives a share of episodes their family's instruction as a definition, which names no content", () => {
    const episodes = draw(new FreshEpisodeSampler(kinds.train, { seed: 6, k: [2, 4], definitions: 0.5 }), 400);
    const defined = episodes.filter((e) => e.task.definition !== undefined);
    expect(defined.length).toBeGreaterThan(160);
    expect(defined.length).toBeLessThan(240);
    for (const e of defined) {
      const family = SYNTHETIC_FAMILIES.find((f) => f.name === familyOf(e.task.name))!;
      expect(e.task.definition).toBe(family.describe(e.task.name.replace(`synth_${family.name}_`, '')));
      // Never an answer, a label or a parameter: the instruction is the same for every variant's content.
      for (const x of [...e.examples, e.target]) expect(e.task.definition!.split(/\W+/)).not.toContain(x.output);
      expect(e.task.definition).not.toMatch(/\d/);
    }
    expect(draw(new FreshEpisodeSampler(kinds.train, { seed: 6, k: [2, 4] }), 50).some((e) => e.task.definition)).toBe(
      false,
    );
    expect(() => new FreshEpisodeSampler(kinds.train, { seed: 0, k: 2, definitions: -1 })).toThrow(
      /definitions.*between 0 and 1, got -1/,
    );
  });

  it('rejects bad lexicons and open fractions with a typed error', () => {
    expect(() => lexiconOf(['Harbour', 'velvet'])).toThrow(/lowercase ASCII words, got "Harbour"/);
    expect(() => lexiconOf(['a', 'b', 'a'])).toThrow(/at least 8 distinct words, got 2/);
    const english = lexiconOf(['harbour', 'velvet', 'quilt', 'meadow', 'lantern', 'pepper', 'thimble', 'walrus']);
    expect(
      () => new FreshEpisodeSampler(kinds.train, { seed: 0, k: 2, open: { lexicon: english, fraction: 1.5 } }),
    ).toThrow(/0 <= fraction <= 1, got fraction 1.5/);
  });

  it('rejects bad options with a typed error', () => {
    expect(() => new FreshEpisodeSampler([], { seed: 0, k: 2 })).toThrow(/at least one kind/);
    expect(() => new FreshEpisodeSampler(kinds.train, { seed: 0, k: [4, 2] })).toThrow(/min <= max/);
    expect(() => new FreshEpisodeSampler([{ family: 'nope', variant: 'x' }], { seed: 0, k: 2 })).toThrow(
      /unknown family/,
    );
  });

  it('marks the control families and names held-out content', () => {
    expect(isControlTask('synth_sort_letters_asc_heldout')).toBe(true);
    expect(isControlTask('synth_lookup_word_t1_heldout')).toBe(false);
    expect(makeSyntheticTask('lookup', 'word_t1', { seed: 0, pool: 'heldout' }).name).toBe(
      'synth_lookup_word_t1_heldout',
    );
  });
});
