import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { lcsLength } from '../src/metrics.js';
import {
  answerLoss,
  EvalError,
  exactMatch,
  exactMatchSni,
  normalizeAnswer,
  optionCorrect,
  rankClassify,
  rougeL,
  rougeLScore,
  rougeTokenize,
} from '../src/index.js';
import { porterStem } from '../src/porter.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Made by tools/reference/porter_reference.py with NLTK 3.8's PorterStemmer (the stemmer rouge_score uses). */
const fixture = JSON.parse(readFileSync(join(here, 'fixtures', 'porter_rouge.json'), 'utf8')) as {
  stems: Record<string, string>;
  rouge: Array<{ prediction: string; references: string[]; rougeL: number }>;
};

describe('porterStem', () => {
  it("matches the paper's examples", () => {
    const examples: Record<string, string> = {
      caresses: 'caress',
      ponies: 'poni',
      cats: 'cat',
      agreed: 'agre',
      motoring: 'motor',
      hopping: 'hop',
      filing: 'file',
      relational: 'relat',
      generalization: 'gener',
      adoption: 'adopt',
      controll: 'control',
    };
    for (const [word, stem] of Object.entries(examples)) expect(porterStem(word), word).toBe(stem);
  });

  it("applies NLTK's extensions (irregular forms, short ies/ied, y after a consonant only)", () => {
    expect(porterStem('skies')).toBe('sky');
    expect(porterStem('dying')).toBe('die');
    expect(porterStem('ties')).toBe('tie');
    expect(porterStem('died')).toBe('die');
    expect(porterStem('enjoy')).toBe('enjoy');
    expect(porterStem('happy')).toBe('happi');
    expect(porterStem('constructor')).toBe('constructor'); // not confused with Object.prototype keys
  });

  it(`equals NLTK on ${Object.keys(fixture.stems).length} words`, () => {
    const wrong = Object.entries(fixture.stems).filter(([w, s]) => porterStem(w) !== s);
    expect(wrong.map(([w, s]) => `${w}: ${porterStem(w)} != ${s}`)).toEqual([]);
  });
});

describe('rougeTokenize', () => {
  it('lowercases, splits at non-alphanumerics, stems words longer than 3 letters', () => {
    expect(rougeTokenize("The cats' running-shoes, été 42x!")).toEqual(['the', 'cat', 'run', 'shoe', 't', '42x']);
    expect(rougeTokenize('The cats running', { stem: false })).toEqual(['the', 'cats', 'running']);
    expect(rougeTokenize(' ... ')).toEqual([]);
  });
});

describe('ROUGE-L', () => {
  it('is the LCS F-measure (hand-computed)', () => {
    expect(lcsLength(['a', 'b', 'c', 'd'], ['b', 'x', 'd'])).toBe(2);
    // prediction "the cat sat" vs reference "the big cat sat down": LCS 3, P = 3/3, R = 3/5, F = 2·1·0.6/1.6 = 0.75
    const s = rougeL('the cat sat', 'the big cat sat down');
    expect(s.precision).toBeCloseTo(1, 12);
    expect(s.recall).toBeCloseTo(0.6, 12);
    expect(s.fmeasure).toBeCloseTo(0.75, 12);
    // stemming makes "cats" and "cat" equal: LCS 2 of 2 and 2 → 100
    expect(rougeLScore('Cats!', ['the cat'])).toBeCloseTo(((2 * 0.5) / 1.5) * 100, 10); // P=1/1, R=1/2 → F=2/3
    expect(rougeLScore('the cats', ['The cat.'])).toBeCloseTo(100, 12);
  });

  it('takes the best reference and is 0 for empty text', () => {
    expect(rougeLScore('yes', ['no', 'yes', 'maybe yes'])).toBeCloseTo(100, 12);
    expect(rougeLScore('', ['anything'])).toBe(0);
    expect(rougeLScore('...', ['...'])).toBe(0);
    expect(() => rougeLScore('a', [])).toThrow(EvalError);
  });

  it(`equals the reference on ${fixture.rouge.length} noisy text pairs`, () => {
    for (const { prediction, references, rougeL: expected } of fixture.rouge) {
      expect(rougeLScore(prediction, references), `${prediction} | ${references.join(' | ')}`).toBeCloseTo(expected, 9);
    }
  });
});

describe('exact match', () => {
  it('is strict by default: only surrounding whitespace is trimmed; punctuation, brackets and case count', () => {
    expect(exactMatch('[a b]', ['a b'])).toBe(0);
    expect(exactMatch('Dog', ['dog'])).toBe(0);
    expect(exactMatch('dog.', ['dog'])).toBe(0);
    expect(exactMatch('a  b', ['a b'])).toBe(0); // inner whitespace counts too
    expect(exactMatch('  [a b]\n', ['[a b]'])).toBe(1);
    expect(exactMatch('dog', [' cat', 'dog '])).toBe(1);
    expect(() => exactMatch('a', [])).toThrow(EvalError);
    expect(() => exactMatch('a', ['a'], { normalize: 'loose' as never })).toThrow(EvalError);
  });

  it('normalises as S-NI does when asked (lowercase, no ASCII punctuation, single spaces; articles kept)', () => {
    expect(normalizeAnswer('  The  Answer: "B." ')).toBe('the answer b');
    expect(exactMatchSni('the answer b', ['The Answer: "B."'])).toBe(1);
    expect(exactMatch('the answer b', ['The Answer: "B."'], { normalize: 'sni' })).toBe(1);
    expect(exactMatch('the answer b', ['The Answer: "B."'])).toBe(0);
    expect(exactMatchSni('[a b]', ['a b'])).toBe(1);
    expect(exactMatchSni('Dog', ['dog'])).toBe(1);
    expect(exactMatchSni('answer b', ['The answer B'])).toBe(0); // articles are not removed
    expect(exactMatchSni('no', ['yes', 'No!'])).toBe(1);
    expect(exactMatchSni('n-o', ['no'])).toBe(1);
    expect(exactMatchSni('nó', ['no'])).toBe(0); // only ASCII punctuation is removed
  });
});

describe('answer loss', () => {
  it('is the mean negative log-likelihood per answer token, without and with the EOS token', () => {
    const l = answerLoss([-1, -2, -3, -0.5], true); // answer tokens -1, -2, -3; EOS -0.5
    expect(l.withoutEos).toBeCloseTo(2, 12);
    expect(l.withEos).toBeCloseTo(6.5 / 4, 12);
    expect(answerLoss([-1, -3], false)).toEqual({ withoutEos: 2, withEos: 2 }); // a cut answer has no EOS
    const empty = answerLoss([-0.25], true); // empty answer: EOS only
    expect(Number.isNaN(empty.withoutEos)).toBe(true);
    expect(empty.withEos).toBe(0.25);
  });
});

describe('rank classification', () => {
  it('picks the highest mean (length-normalised, the default), or the highest sum', () => {
    // option 0: sum -3 (mean -1.5); option 1: sum -4 (mean -1); option 2: sum -3.5 (mean -3.5)
    const lls = [[-1, -2], [-1, -1, -1, -1], [-3.5]];
    expect(rankClassify(lls, 'sum')).toBe(0);
    expect(rankClassify(lls, 'mean')).toBe(1);
    expect(rankClassify(lls)).toBe(1);
    expect(rankClassify([[-1], [-1]])).toBe(0); // first on ties
    expect(optionCorrect(['yes', 'no'], 1, ['no'])).toBe(1);
    expect(optionCorrect(['yes', 'no'], 0, ['no'])).toBe(0);
    expect(() => rankClassify([])).toThrow(EvalError);
    expect(() => rankClassify([[-1], []])).toThrow(/option 1 has no tokens/);
  });
});
