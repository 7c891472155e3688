import type { Rng } from '@hyperllama/runtime';
import { CONTENT, LETTERS, NOUNS, TOPICS, VOWELS, isHeldOutContent, type ContentPool } from './words.js';

export type Skill = 'transform' | 'classify' | 'lookup' | 'arithmetic' | 'format';

export interface Pair {
  input: string;
  output: string;
}

/** One task of a family: its variant plus the content drawn for it (label words, a lookup table, a constant...). */
export interface TaskSetup {
  /** The label set, for classification tasks. */
  options?: string[];
  /** What was drawn for this task (rule, labels, table, constant) when the family draws content; see `isHeldOutContent`. */
  content?: string[];
  /** Draws one input and its output. */
  sample(rng: Rng): Pair;
}

/**
 * A parameterised family of synthetic tasks. Each variant (a rule or format, e.g. `shift3`, `square`) is a different
 * task; `setup` draws the task's content (arbitrary label words, a key→value table, a constant answer) from the rng
 * it is given and from one content pool, so the same variant yields new content at every draw. Training episodes
 * draw fresh content every time from the `train` pool; held-out tasks draw theirs from the disjoint `heldout` pool.
 */
export interface SyntheticFamily {
  name: string;
  skill: Skill;
  variants: readonly string[];
  /** No method is expected to solve it at the miniature's scale: reported apart from the headline average. */
  control?: boolean;
  /**
   * A short instruction for a task of the variant, as real task files carry one (S-NI's definition). It says what
   * kind of task it is, never the rule's parameter or the content, so it never gives the answer away.
   */
  describe(variant: string): string;
  /** `lexicon` (default {@link TASK_LEXICON}) is where word inputs, label words, keys, values and constants come from. */
  setup(variant: string, rng: Rng, pool: ContentPool, lexicon?: Lexicon): TaskSetup;
}

/**
 * The words a task draws from: `inputs` for word inputs, `content` for label words, lookup keys and constant
 * answers, `values` for lookup tables of words. Every rule works with any lowercase ASCII words.
 */
export interface Lexicon {
  inputs: readonly string[];
  content: readonly string[];
  values: readonly string[];
}

/** The synthetic tasks' own words (single tokens of the built-in word tokenizer). */
export const TASK_LEXICON: Lexicon = { inputs: NOUNS, content: CONTENT, values: NOUNS.slice(0, 32) };

// ---- input generators ----
const word = (lex: Lexicon, rng: Rng): string => rng.pick(lex.inputs);
const words = (lex: Lexicon, rng: Rng, min: number, max: number): string[] =>
  Array.from({ length: min + rng.int(max - min + 1) }, () => word(lex, rng));
const letters = (rng: Rng, min: number, max: number): string =>
  Array.from({ length: min + rng.int(max - min + 1) }, () => rng.pick([...LETTERS])).join('');
const num = (rng: Rng, max: number): number => rng.int(max + 1);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const fn = (sample: (rng: Rng) => Pair, options?: string[]): TaskSetup => ({ sample, options });
const map = <T>(from: (rng: Rng) => T, to: (x: T) => string, show: (x: T) => string = String) =>
  fn((rng) => {
    const x = from(rng);
    return { input: show(x), output: to(x) };
  });

/** `count` distinct content words in random order (arbitrary labels, keys and answers). */
function labelWords(lex: Lexicon, rng: Rng, count: number): string[] {
  return rng.sample(lex.content, count);
}

/**
 * Draws a task's content with `make` until it belongs to the pool: training never sees held-out content (a label
 * assignment, a table, a constant), held-out tasks see nothing else. `what` names the rule the content goes with.
 */
function inPool<T>(
  pool: ContentPool,
  what: string,
  make: () => T,
  parts: (x: T) => string[],
): { value: T; content: string[] } {
  for (;;) {
    const value = make();
    const content = [what, ...parts(value)];
    if (isHeldOutContent(content) === (pool === 'heldout')) return { value, content };
  }
}

const capitalise = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1);
const shiftLetter = (c: string, s: number): string => LETTERS[(LETTERS.indexOf(c) + s) % 26];

const reverse: SyntheticFamily = {
  name: 'reverse',
  describe: (v) => (v === 'words' ? 'Reverse the order of the words.' : 'Reverse the letters.'),
  skill: 'transform',
  variants: ['chars', 'words', 'chars_upper'],
  setup: (v, _rng, _pool, lex = TASK_LEXICON) =>
    v === 'words'
      ? map(
          (r) => words(lex, r, 2, 4),
          (ws) => [...ws].reverse().join(' '),
          (ws) => ws.join(' '),
        )
      : map(
          (r) => letters(r, 3, 7),
          (s) => (v === 'chars_upper' ? [...s].reverse().join('').toUpperCase() : [...s].reverse().join('')),
        ),
};

const CASES: Record<string, (s: string) => string> = {
  upper: (s) => s.toUpperCase(),
  lower: (s) => s.toLowerCase(),
  title: (s) => s.toLowerCase().split(' ').map(capitalise).join(' '),
  swap: (s) => [...s].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join(''),
  alternate: (s) => [...s.toLowerCase()].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join(''),
};
const caseChange: SyntheticFamily = {
  name: 'case',
  describe: () => 'Change the case of the letters.',
  skill: 'transform',
  variants: Object.keys(CASES),
  // Mixed-case input so that every variant changes something.
  setup: (v, _rng, _pool, lex = TASK_LEXICON) =>
    map(
      (r) =>
        words(lex, r, 1, 3)
          .map((w) => [...w].map((c) => (r.int(2) ? c.toUpperCase() : c)).join(''))
          .join(' '),
      CASES[v],
    ),
};

const caesar: SyntheticFamily = {
  name: 'caesar',
  describe: () => 'Shift every letter.',
  skill: 'transform',
  variants: range(1, 12).map((s) => `shift${s}`),
  setup: (v) => {
    const shift = Number(v.slice(5));
    return map(
      (r) => letters(r, 3, 6),
      (s) => [...s].map((c) => shiftLetter(c, shift)).join(''),
    );
  },
};

const repeat: SyntheticFamily = {
  name: 'repeat',
  describe: () => 'Repeat the input.',
  skill: 'transform',
  variants: ['word_x2', 'word_x3', 'letters_x2', 'letters_x3'],
  setup: (v, _rng, _pool, lex = TASK_LEXICON) => {
    const times = Number(v.slice(-1));
    return v.startsWith('word')
      ? map(
          (r) => word(lex, r),
          (w) => Array(times).fill(w).join(' '),
        )
      : map(
          (r) => letters(r, 2, 5),
          (s) => [...s].map((c) => c.repeat(times)).join(''),
        );
  },
};

const PICKS: Record<string, (xs: string[]) => string> = {
  first: (xs) => xs[0],
  second: (xs) => xs[1],
  last: (xs) => xs[xs.length - 1],
  second_last: (xs) => xs[xs.length - 2],
};
const pick: SyntheticFamily = {
  name: 'pick',
  describe: (v) => (v.startsWith('word') ? 'Return one of the words.' : 'Return one of the letters.'),
  skill: 'lookup',
  variants: Object.keys(PICKS).flatMap((p) => [`word_${p}`, `char_${p}`]),
  setup: (v, _rng, _pool, lex = TASK_LEXICON) => {
    const choose = PICKS[v.replace(/^(word|char)_/, '')];
    return v.startsWith('word')
      ? map(
          (r) => words(lex, r, 3, 4),
          choose,
          (ws) => ws.join(' '),
        )
      : map(
          (r) => letters(r, 3, 7),
          (s) => choose([...s]),
        );
  },
};

/** Binary rules for symbol-tuned classification; the label words come from the task's own random setup. */
const RULES: Record<string, { input: (rng: Rng) => string; test: (x: string) => boolean }> = {
  vowel_first: { input: (r) => letters(r, 3, 5), test: (w) => VOWELS.includes(w[0]) },
  long_word: { input: (r) => letters(r, 2, 7), test: (w) => w.length > 4 },
  has_e: { input: (r) => letters(r, 3, 5), test: (w) => w.includes('e') },
  even: { input: (r) => String(num(r, 99)), test: (n) => Number(n) % 2 === 0 },
  over_50: { input: (r) => String(num(r, 99)), test: (n) => Number(n) > 50 },
  two_words: { input: (r) => words(TASK_LEXICON, r, 1, 2).join(' '), test: (s) => s.includes(' ') },
};
const LABEL_SETS = 4;
const symbolRule: SyntheticFamily = {
  name: 'symbol_rule',
  describe: () => 'Label the input.',
  skill: 'classify',
  variants: Object.keys(RULES).flatMap((rule) => range(1, LABEL_SETS).map((i) => `${rule}_l${i}`)),
  setup: (v, rng, pool, lex = TASK_LEXICON) => {
    const rule = RULES[v.replace(/_l\d+$/, '')];
    const {
      value: [yes, no],
      content,
    } = inPool(
      pool,
      `symbol_rule/${v.replace(/_l\d+$/, '')}`,
      () => labelWords(lex, rng, 2),
      (l) => l,
    );
    // Balanced classes: pick the label first, then draw inputs until one has it.
    return {
      sample: (r) => {
        const positive = r.int(2) === 0;
        let input = rule.input(r);
        while (rule.test(input) !== positive) input = rule.input(r);
        return { input, output: positive ? yes : no };
      },
      options: [yes, no],
      content,
    };
  },
};

const TOPIC_PAIRS = Object.keys(TOPICS).flatMap((a, i) =>
  Object.keys(TOPICS)
    .slice(i + 1)
    .map((b) => [a, b]),
);
const symbolTopic: SyntheticFamily = {
  name: 'symbol_topic',
  describe: () => 'Label the word.',
  skill: 'classify',
  control: true,
  variants: TOPIC_PAIRS.flatMap(([a, b]) => range(1, 2).map((i) => `${a}_${b}_l${i}`)),
  setup: (v, rng, pool, lex = TASK_LEXICON) => {
    const topics = TOPIC_PAIRS.find(([a, b]) => v.startsWith(`${a}_${b}_`))!;
    const { value: labels, content } = inPool(
      pool,
      `symbol_topic/${topics.join('_')}`,
      () => labelWords(lex, rng, 2),
      (l) => l,
    );
    return {
      sample: (r) => {
        const t = r.int(2);
        return { input: r.pick(TOPICS[topics[t]]), output: labels[t] };
      },
      options: labels,
      content,
    };
  },
};

/** A small random key→value table: the answer for a key can only be copied from examples that show it. */
const VALUE_KINDS: Record<string, (rng: Rng, n: number, lex: Lexicon) => string[]> = {
  word: (rng, n, lex) => rng.sample(lex.values, n),
  number: (rng, n) => rng.sample(range(10, 99), n).map(String),
  color: (rng, n) => rng.sample(TOPICS.color, n),
};
const lookup: SyntheticFamily = {
  name: 'lookup',
  describe: () => 'Look up the answer for the word.',
  skill: 'lookup',
  variants: Object.keys(VALUE_KINDS).flatMap((kind) => range(1, 6).map((i) => `${kind}_t${i}`)),
  setup: (v, rng, pool, lex = TASK_LEXICON) => {
    const kind = v.replace(/_t\d+$/, '');
    const {
      value: { keys, values },
      content,
    } = inPool(
      pool,
      `lookup/${kind}`,
      () => {
        const k = labelWords(lex, rng, 4);
        return { keys: k, values: VALUE_KINDS[kind](rng, k.length, lex) };
      },
      (t) => [...t.keys, ...t.values],
    );
    return {
      sample: (r) => {
        const i = r.int(keys.length);
        return { input: keys[i], output: values[i] };
      },
      content,
    };
  },
};

const constant: SyntheticFamily = {
  name: 'constant',
  describe: () => 'Give the answer.',
  skill: 'lookup',
  variants: range(1, 8).map((i) => `c${i}`),
  setup: (_v, rng, pool, lex = TASK_LEXICON) => {
    const { value: answer, content } = inPool(
      pool,
      'constant',
      () => rng.pick(lex.content),
      (a) => [a],
    );
    return {
      ...map(
        (r) => words(lex, r, 1, 3).join(' '),
        () => answer,
      ),
      content,
    };
  },
};

const arith: SyntheticFamily = {
  name: 'arith',
  describe: () => 'Compute the number.',
  skill: 'arithmetic',
  variants: [
    ...range(1, 9).map((c) => `add${c}`),
    ...range(1, 9).map((c) => `sub${c}`),
    ...range(2, 5).map((c) => `mul${c}`),
  ],
  setup: (v) => {
    const c = Number(v.slice(3));
    if (v.startsWith('add'))
      return map(
        (r) => num(r, 90),
        (n) => String(n + c),
      );
    if (v.startsWith('sub'))
      return map(
        (r) => c + num(r, 90),
        (n) => String(n - c),
      );
    return map(
      (r) => num(r, 24),
      (n) => String(n * c),
    );
  },
};

const COMPARE: Record<string, (a: number, b: number) => number> = {
  max: Math.max,
  min: Math.min,
  sum: (a, b) => a + b,
  diff: (a, b) => Math.abs(a - b),
};
const compare: SyntheticFamily = {
  name: 'compare',
  describe: () => 'Compute a number from the two numbers.',
  skill: 'arithmetic',
  control: true,
  variants: Object.keys(COMPARE),
  setup: (v) =>
    map(
      (r) => [num(r, 49), num(r, 49)],
      ([a, b]) => String(COMPARE[v](a, b)),
      ([a, b]) => `${a} ${b}`,
    ),
};

const count: SyntheticFamily = {
  name: 'count',
  describe: () => 'Count.',
  skill: 'arithmetic',
  variants: ['letters', 'words', 'vowels', 'letter_a', 'letter_e', 'letter_o'],
  setup: (v, _rng, _pool, lex = TASK_LEXICON) => {
    if (v === 'words')
      return map(
        (r) => words(lex, r, 1, 5).join(' '),
        (s) => String(s.split(' ').length),
      );
    const counted = v === 'letters' ? LETTERS : v === 'vowels' ? VOWELS : v.slice(-1);
    return map(
      (r) => letters(r, 2, 9),
      (s) => String([...s].filter((c) => counted.includes(c)).length),
    );
  },
};

/** Output order of the date parts and separator; the input is always `YYYY-MM-DD`. */
const DATE_FORMATS: Record<string, [string, string]> = {
  dmy_slash: ['dmy', '/'],
  mdy_slash: ['mdy', '/'],
  ymd_dot: ['ymd', '.'],
  dmy_dash: ['dmy', '-'],
  dmy_dot: ['dmy', '.'],
  ydm_slash: ['ydm', '/'],
};
const dateFormat: SyntheticFamily = {
  name: 'date_format',
  describe: () => 'Rewrite the date.',
  skill: 'format',
  variants: Object.keys(DATE_FORMATS),
  setup: (v) => {
    const [order, sep] = DATE_FORMATS[v];
    const pad = (n: number): string => String(n).padStart(2, '0');
    return map(
      (r) => ({ y: String(1950 + num(r, 79)), m: pad(1 + num(r, 11)), d: pad(1 + num(r, 27)) }),
      (date) => [...order].map((k) => date[k as 'y' | 'm' | 'd']).join(sep),
      (date) => `${date.y}-${date.m}-${date.d}`,
    );
  },
};

const WRAPS: Record<string, [string, string]> = {
  square: ['[', ']'],
  round: ['(', ')'],
  angle: ['<', '>'],
  quote: ['"', '"'],
  star: ['*', '*'],
  curly: ['{', '}'],
};
const wrap: SyntheticFamily = {
  name: 'wrap',
  describe: () => 'Mark the words.',
  skill: 'format',
  variants: Object.keys(WRAPS),
  setup: (v, _rng, _pool, lex = TASK_LEXICON) =>
    map(
      (r) => words(lex, r, 1, 2).join(' '),
      (s) => `${WRAPS[v][0]}${s}${WRAPS[v][1]}`,
    ),
};

const SEPARATORS: Record<string, string> = { dash: '-', underscore: '_', plus: '+', bar: '|', comma: ',', slash: '/' };
const join: SyntheticFamily = {
  name: 'join',
  describe: () => 'Join the words.',
  skill: 'format',
  variants: Object.keys(SEPARATORS),
  setup: (v, _rng, _pool, lex = TASK_LEXICON) =>
    map(
      (r) => words(lex, r, 2, 4),
      (ws) => ws.join(SEPARATORS[v]),
      (ws) => ws.join(' '),
    ),
};

const sort: SyntheticFamily = {
  name: 'sort',
  describe: () => 'Sort the input.',
  skill: 'transform',
  control: true,
  variants: ['letters_asc', 'letters_desc', 'words_asc', 'words_desc', 'numbers_asc', 'numbers_desc'],
  setup: (v, _rng, _pool, lex = TASK_LEXICON) => {
    const order = <T>(xs: T[], cmp: (a: T, b: T) => number): T[] =>
      v.endsWith('asc') ? [...xs].sort(cmp) : [...xs].sort(cmp).reverse();
    const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    if (v.startsWith('letters'))
      return map(
        (r) => [...letters(r, 3, 6)],
        (cs) => order(cs, byText).join(''),
        (cs) => cs.join(''),
      );
    if (v.startsWith('words'))
      return map(
        (r) => words(lex, r, 2, 4),
        (ws) => order(ws, byText).join(' '),
        (ws) => ws.join(' '),
      );
    return map(
      (r) => Array.from({ length: 3 + r.int(2) }, () => num(r, 99)),
      (ns) => order(ns, (a, b) => a - b).join(' '),
      (ns) => ns.join(' '),
    );
  },
};

/** Every synthetic family, in a fixed order. */
export const SYNTHETIC_FAMILIES: readonly SyntheticFamily[] = [
  reverse,
  caseChange,
  caesar,
  repeat,
  pick,
  symbolRule,
  symbolTopic,
  lookup,
  constant,
  arith,
  compare,
  count,
  dateFormat,
  wrap,
  join,
  sort,
];
