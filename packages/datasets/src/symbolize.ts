import { Rng } from '@hyperllama/runtime';
import { fail } from './errors.js';
import { NONSENSE, NOUNS } from './synthetic/words.js';
import type { Example, Task } from './task.js';

export interface SymbolizeOptions {
  /** Candidate replacement labels (default: made-up words, then unrelated nouns, then random 4-letter strings). */
  symbols?: readonly string[];
}

/**
 * The symbol-tuning variant of a classification task (Wei et al. 2023): every label in `task.options` is replaced,
 * consistently across the task's examples and instances, by a distinct arbitrary symbol that is none of the original
 * labels, so that the input→label mapping can only be learnt from the examples. The definition is dropped (it may
 * name the original labels); inputs are left as they are. The result is named `<name>_symbolized`.
 */
export function symbolize(task: Task, seed: number, opts: SymbolizeOptions = {}): Task {
  const options = task.options;
  if (!options || options.length < 2) {
    fail(
      'NOT_CLASSIFICATION',
      { file: task.name, field: 'options' },
      'symbolize needs a classification task with a shared label set of at least 2 options',
    );
  }
  const rng = new Rng(seed).fork(`symbolize/${task.name}`);
  const labels = [...new Set(options)];
  const taken = new Set(labels.map((l) => l.toLowerCase()));
  const candidates = [...(opts.symbols ?? [...NONSENSE, ...NOUNS])].filter((s) => !taken.has(s.toLowerCase()));
  const symbols = rng.sample([...new Set(candidates)], Math.min(labels.length, new Set(candidates).size));
  for (const s of symbols) taken.add(s.toLowerCase());
  while (symbols.length < labels.length) {
    const s = Array.from({ length: 4 }, () => 'abcdefghijklmnopqrstuvwxyz'[rng.int(26)]).join('');
    if (!taken.has(s)) {
      taken.add(s);
      symbols.push(s);
    }
  }
  const symbolOf = new Map(labels.map((l, i) => [l, symbols[i]]));

  const replace = (list: Example[], field: 'examples' | 'instances'): Example[] =>
    list.map((e, i) => {
      const swap = (label: string): string => {
        const s = symbolOf.get(label);
        if (s === undefined)
          fail(
            'BAD_FIELD',
            { file: task.name, field: `${field}[${i}].output` },
            `output "${label}" is not one of the task's options`,
          );
        return s;
      };
      const out: Example = { ...e, output: swap(e.output) };
      if (e.outputs) out.outputs = e.outputs.map(swap);
      return out;
    });

  const { definition: _dropped, ...rest } = task;
  return {
    ...rest,
    name: `${task.name}_symbolized`,
    examples: replace(task.examples, 'examples'),
    instances: replace(task.instances, 'instances'),
    options: options.map((o) => symbolOf.get(o)!),
  };
}
