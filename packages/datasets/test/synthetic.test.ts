import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  exportSniTasks,
  loadTasks,
  makeSyntheticTask,
  SYNTHETIC_FAMILIES,
  syntheticTasks,
  type Task,
} from '../src/index.js';
import { tempDir } from './helpers.js';

const all = (seed: number): Task[] => {
  const s = syntheticTasks({ seed });
  return [...s.train, ...s.heldOutParams, ...s.heldOutFamilies];
};
const byName = (tasks: Task[]) => new Map(tasks.map((t) => [t.name, t]));
const pairs = (t: Task) => [...t.examples, ...t.instances];

/** Outputs recomputed from inputs by small independent implementations, per family and variant. */
const REFERENCE: Record<string, (variant: string, input: string) => string> = {
  reverse: (v, x) =>
    v === 'words'
      ? x.split(' ').reverse().join(' ')
      : Array.from(x).reverse().join('')[v === 'chars_upper' ? 'toUpperCase' : 'toString'](),
  caesar: (v, x) =>
    String.fromCharCode(...Array.from(x, (c) => 97 + ((c.charCodeAt(0) - 97 + Number(v.replace('shift', ''))) % 26))),
  arith: (v, x) =>
    String(
      v.startsWith('add')
        ? Number(x) + Number(v.slice(3))
        : v.startsWith('sub')
          ? Number(x) - Number(v.slice(3))
          : Number(x) * Number(v.slice(3)),
    ),
  compare: (v, x) => {
    const [a, b] = x.split(' ').map(Number);
    return String({ max: Math.max(a, b), min: Math.min(a, b), sum: a + b, diff: Math.abs(a - b) }[v]);
  },
  count: (v, x) =>
    String(
      v === 'words'
        ? x.split(' ').length
        : v === 'letters'
          ? x.length
          : Array.from(x).filter((c) => (v === 'vowels' ? 'aeiou' : v.slice(-1)).includes(c)).length,
    ),
  date_format: (v, x) => {
    const [y, m, d] = x.split('-');
    const parts: Record<string, string> = { y, m, d };
    const sep = { slash: '/', dot: '.', dash: '-' }[v.split('_')[1]]!;
    return Array.from(v.split('_')[0], (k) => parts[k]).join(sep);
  },
  wrap: (v, x) =>
    ({ square: `[${x}]`, round: `(${x})`, angle: `<${x}>`, quote: `"${x}"`, star: `*${x}*`, curly: `{${x}}` })[v]!,
  join: (v, x) => x.split(' ').join({ dash: '-', underscore: '_', plus: '+', bar: '|', comma: ',', slash: '/' }[v]!),
  case: (v, x) =>
    ({
      upper: x.toUpperCase(),
      lower: x.toLowerCase(),
      title: x.toLowerCase().replace(/\b[a-z]/g, (c) => c.toUpperCase()),
      swap: Array.from(x, (c) => (/[a-z]/.test(c) ? c.toUpperCase() : c.toLowerCase())).join(''),
      alternate: Array.from(x.toLowerCase(), (c, i) => (i % 2 ? c : c.toUpperCase())).join(''),
    })[v]!,
  repeat: (v, x) =>
    v.startsWith('word')
      ? Array(Number(v.at(-1)))
          .fill(x)
          .join(' ')
      : Array.from(x, (c) => c.repeat(Number(v.at(-1)))).join(''),
  pick: (v, x) => {
    const items = v.startsWith('word') ? x.split(' ') : Array.from(x);
    const which = v.replace(/^(word|char)_/, '');
    return items.at({ first: 0, second: 1, last: -1, second_last: -2 }[which]!)!;
  },
  sort: (v, x) => {
    const items = v.startsWith('letters') ? Array.from(x) : x.split(' ');
    const sorted = v.startsWith('numbers') ? items.sort((a, b) => Number(a) - Number(b)) : items.sort();
    if (v.endsWith('desc')) sorted.reverse();
    return sorted.join(v.startsWith('letters') ? '' : ' ');
  },
};

describe('synthetic task families', () => {
  const tasks = all(7);

  it('has at least 12 families covering every skill, each with several parameter settings', () => {
    expect(SYNTHETIC_FAMILIES.length).toBeGreaterThanOrEqual(12);
    expect(new Set(SYNTHETIC_FAMILIES.map((f) => f.skill))).toEqual(
      new Set(['transform', 'classify', 'lookup', 'arithmetic', 'format']),
    );
    for (const f of SYNTHETIC_FAMILIES) expect(f.variants.length).toBeGreaterThanOrEqual(3);
    expect(tasks.length).toBe(SYNTHETIC_FAMILIES.reduce((n, f) => n + f.variants.length, 0));
    expect(new Set(tasks.map((t) => t.name)).size).toBe(tasks.length);
  });

  it('computes the right outputs (checked against independent implementations)', () => {
    let checked = 0;
    for (const f of SYNTHETIC_FAMILIES.filter((fam) => REFERENCE[fam.name])) {
      for (const v of f.variants) {
        const task = makeSyntheticTask(f.name, v, { seed: 7 });
        for (const e of pairs(task)) expect(e.output, `${task.name}: ${e.input}`).toBe(REFERENCE[f.name](v, e.input));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(60);
  });

  it('classification tasks use arbitrary label words, both of them, by a consistent rule', () => {
    const vowel = makeSyntheticTask('symbol_rule', 'vowel_first_l1', { seed: 7 });
    const [yes, no] = vowel.options!;
    for (const e of pairs(vowel)) expect(e.output).toBe('aeiou'.includes(e.input[0]) ? yes : no);
    for (const t of tasks.filter((x) => x.category === 'classify')) {
      expect(t.metric).toBe('accuracy');
      expect(new Set(pairs(t).map((e) => e.output))).toEqual(new Set(t.options));
      // Balanced: each label at least a quarter of the time.
      for (const label of t.options!)
        expect(pairs(t).filter((e) => e.output === label).length).toBeGreaterThan(pairs(t).length / 4);
    }
    // Label words differ between tasks of the same rule (they come from each task's own setup).
    const labelSets = new Set(
      ['l1', 'l2', 'l3', 'l4'].map((l) =>
        makeSyntheticTask('symbol_rule', `even_${l}`, { seed: 7 }).options!.join('/'),
      ),
    );
    expect(labelSets.size).toBeGreaterThan(1);
  });

  it('classification instances are class-balanced, so a constant answer scores chance', () => {
    const classify = tasks.filter((x) => x.options);
    expect(classify.length).toBeGreaterThan(10);
    for (const t of classify) {
      const counts = t.options!.map((label) => t.instances.filter((e) => e.output === label).length);
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(32);
      // Interleaved: any prefix of the instances (an evaluation's maxInstances) is balanced too.
      const first8 = t.options!.map((label) => t.instances.slice(0, 8).filter((e) => e.output === label).length);
      expect(Math.max(...first8) - Math.min(...first8)).toBeLessThanOrEqual(1);
    }
    // Where the input space allows, no instance repeats another or an example.
    const a = makeSyntheticTask('symbol_rule', 'vowel_first_l1', { seed: 3 });
    expect(new Set(pairs(a).map((e) => e.input)).size).toBe(64);
  });

  it('lookup tasks can only be answered from the examples: a fixed random table, every queried key shown in the pool', () => {
    for (const t of tasks.filter((x) => x.name.startsWith('synth_lookup_'))) {
      const table = new Map<string, string>();
      for (const e of pairs(t)) {
        expect(table.get(e.input) ?? e.output).toBe(e.output);
        table.set(e.input, e.output);
      }
      const shown = new Set(t.examples.map((e) => e.input));
      for (const e of t.instances) expect(shown.has(e.input)).toBe(true);
    }
    for (const t of tasks.filter((x) => x.name.startsWith('synth_constant_')))
      expect(new Set(pairs(t).map((e) => e.output)).size).toBe(1);
  });

  it('stays within short printable ASCII', () => {
    for (const t of tasks) {
      expect(t.examples.length).toBe(32);
      expect(t.instances.length).toBe(32);
      for (const e of pairs(t)) {
        expect(e.input + e.output).toMatch(/^[\x20-\x7e]+$/);
        expect(e.input.length).toBeLessThanOrEqual(32);
        expect(e.output.length).toBeLessThanOrEqual(32);
      }
    }
  });

  it('splits train and held-out by family and by parameter, sharing no task', () => {
    const s = syntheticTasks({ seed: 7 });
    const family = (t: Task) => SYNTHETIC_FAMILIES.find((f) => t.name.startsWith(`synth_${f.name}_`))!.name;
    const names = [s.train, s.heldOutParams, s.heldOutFamilies].map((list) => new Set(list.map((t) => t.name)));
    for (const [i, a] of names.entries())
      for (const b of names.slice(i + 1)) expect([...a].filter((n) => b.has(n))).toEqual([]);
    const heldFamilies = new Set(s.heldOutFamilies.map(family));
    expect(heldFamilies).toEqual(new Set(['sort', 'symbol_topic', 'compare', 'wrap']));
    expect(s.train.filter((t) => heldFamilies.has(family(t)))).toEqual([]);
    // Every trained family keeps at least one variant for training and holds out at least one.
    const trained = new Set(s.train.map(family));
    expect(new Set(s.heldOutParams.map(family))).toEqual(trained);
    expect(trained.size).toBe(SYNTHETIC_FAMILIES.length - heldFamilies.size);
    // The held-out variants depend on the seed.
    const other = syntheticTasks({ seed: 8 });
    expect(other.heldOutParams.map((t) => t.name)).not.toEqual(s.heldOutParams.map((t) => t.name));
  });

  it('is deterministic: the same seed exports byte-identical files, another seed different ones', () => {
    const [a, b, c] = [tempDir('syn-a'), tempDir('syn-b'), tempDir('syn-c')];
    exportSniTasks(all(3), a);
    exportSniTasks(all(3), b);
    exportSniTasks(all(4), c);
    const files = readdirSync(a).sort();
    expect(readdirSync(b).sort()).toEqual(files);
    // Another seed holds out other variants, so only the files of both seeds are compared.
    const shared = new Set(readdirSync(c));
    let differing = 0;
    let compared = 0;
    for (const f of files) {
      expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
      if (!shared.has(f)) continue;
      compared++;
      if (!readFileSync(join(c, f)).equals(readFileSync(join(a, f)))) differing++;
    }
    expect(compared).toBeGreaterThan(files.length / 2);
    expect(differing).toBe(compared);
  });

  it('a task depends only on the seed and its name, not on the other tasks generated', () => {
    const alone = makeSyntheticTask('caesar', 'shift3', { seed: 7 });
    expect(byName(tasks).get('synth_caesar_shift3')).toEqual(alone);
  });

  it('exports to S-NI files that loadTasks reads back identically', () => {
    const dir = tempDir('syn-roundtrip');
    exportSniTasks(tasks, dir);
    const loaded = loadTasks(dir).tasks;
    expect(loaded.length).toBe(tasks.length);
    const original = byName(tasks);
    for (const t of loaded) expect(t).toEqual(original.get(t.name));
  });
});
