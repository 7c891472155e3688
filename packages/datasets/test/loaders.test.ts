import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMetaIclSplit, loadSniSplit, loadTasks, type Task } from '../src/index.js';
import { SHARED, tempDir } from './helpers.js';

const SNI = join(SHARED, 'data/sni');
const METAICL = join(SHARED, 'data/metaicl');

/** Non-blank lines of a file, counted without the loaders. */
const lineCount = (file: string): number =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '').length;

describe.skipIf(!existsSync(SNI))(`S-NI task files (${SNI})`, () => {
  const files = existsSync(SNI)
    ? readdirSync(SNI)
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];

  it('loads every file, one task each, with the instance and example counts of the file', () => {
    const { tasks, formats, summary } = loadTasks(SNI);
    expect(files.length).toBeGreaterThan(100);
    expect(tasks.map((t) => t.name)).toEqual(files.map((f) => f.replace(/\.json$/, '')));
    expect(new Set(formats)).toEqual(new Set(['sni']));
    let total = 0;
    for (const [i, file] of files.entries()) {
      const raw = JSON.parse(readFileSync(join(SNI, file), 'utf8'));
      const task = tasks[i];
      expect(task.instances.length).toBe(raw.Instances.length);
      expect(task.examples.length).toBe(raw['Positive Examples'].length);
      expect(task.definition).toBe(raw.Definition.join('\n'));
      expect(task.instances.map((e) => e.outputs ?? [e.output])).toEqual(
        raw.Instances.map((x: { output: unknown[] }) => x.output.map(String)),
      );
      expect(task.instances.map((e) => e.id)).toEqual(raw.Instances.map((x: { id: string }) => x.id));
      total += raw.Instances.length;
    }
    expect(summary).toBe(`${files.length} sni tasks (${total} instances) from ${SNI}`);
  });
});

describe.skipIf(!existsSync(METAICL))(`MetaICL task folders (${METAICL})`, () => {
  const dirs = existsSync(METAICL)
    ? readdirSync(METAICL)
        .filter((d) => !d.endsWith('.json'))
        .sort()
    : [];

  it('loads every task folder with the line counts of its train and test (else dev) files, options kept', () => {
    const { tasks } = loadTasks(METAICL);
    expect(dirs.length).toBeGreaterThan(100);
    expect(tasks.map((t) => t.name)).toEqual(dirs);
    for (const [i, dir] of dirs.entries()) {
      const task = tasks[i];
      const file = (split: string) => join(METAICL, dir, `${dir}_16_100_${split}.jsonl`);
      const evalFile = existsSync(file('test')) ? file('test') : file('dev');
      expect(task.examples.length).toBe(lineCount(file('train')));
      expect(task.instances.length).toBe(lineCount(evalFile));
      const raw = readFileSync(evalFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l));
      expect(task.instances.map((e) => e.output)).toEqual(raw.map((r) => r.output));
      // Options: the shared label set or each line's own list, exactly as in the file.
      expect(task.instances.map((e) => e.options ?? task.options ?? [])).toEqual(raw.map((r) => r.options));
    }
  });

  it('loads one folder and its dev split on request', () => {
    const dir = join(METAICL, 'superglue-cb');
    const [task] = loadTasks(dir).tasks;
    expect(task.name).toBe('superglue-cb');
    expect(task.instances.length).toBe(lineCount(join(dir, 'superglue-cb_16_100_dev.jsonl')));
    expect(task.options?.length).toBeGreaterThan(1);
    expect(task.metric).toBe('accuracy');
    const dev = loadTasks(join(METAICL, 'ag_news'), { evalSplit: 'dev' }).tasks[0];
    expect(dev.instances.length).toBe(lineCount(join(METAICL, 'ag_news/ag_news_16_100_dev.jsonl')));
  });

  it('reads the split files', () => {
    for (const f of readdirSync(METAICL).filter((d) => d.endsWith('.json'))) {
      const raw = JSON.parse(readFileSync(join(METAICL, f), 'utf8'));
      const split = loadMetaIclSplit(join(METAICL, f));
      expect(split.train).toEqual(raw.train);
      expect(split.test).toEqual(raw.test);
    }
  });
});

describe('small files in every format', () => {
  it('reads an older S-NI file: string Definition, no ids, several references', () => {
    const dir = tempDir('old-sni');
    const file = join(dir, 'task001_old.json');
    writeFileSync(
      file,
      JSON.stringify({
        Definition: 'Say hi.',
        'Positive Examples': [{ input: 'a', output: 'hi', explanation: 'because' }],
        'Negative Examples': [],
        Instances: [
          { input: 'b', output: ['hi', 'hello'] },
          { input: 'c', output: ['hey'] },
        ],
      }),
    );
    const [task] = loadTasks(file).tasks;
    const expected: Task = {
      name: 'task001_old',
      source: 'sni',
      definition: 'Say hi.',
      examples: [{ input: 'a', output: 'hi' }],
      instances: [
        { input: 'b', output: 'hi', outputs: ['hi', 'hello'] },
        { input: 'c', output: 'hey' },
      ],
      metric: 'rougeL',
    };
    expect(task).toEqual(expected);
  });

  it('reads P3-style and plain JSONL, detecting each', () => {
    const dir = tempDir('lines');
    writeFileSync(
      join(dir, 'p3task.jsonl'),
      '{"inputs": "Is it big?", "targets": "yes", "answer_choices": ["yes", "no"]}\n\n{"inputs": "Is it red?", "targets": ["no"], "answer_choices": ["yes", "no"]}\n',
    );
    writeFileSync(
      join(dir, 'plain.jsonl'),
      '{"input": "1+1", "output": "2"}\n{"input": "2+2", "output": ["4", "four"], "options": ["3", "4"]}\n',
    );
    const { tasks, formats, summary } = loadTasks(dir);
    expect(formats).toEqual(['p3', 'jsonl']);
    expect(summary).toBe(`1 p3 + 1 jsonl tasks (4 instances) from ${dir}`);
    expect(tasks[0]).toEqual({
      name: 'p3task',
      source: 'p3',
      examples: [],
      instances: [
        { input: 'Is it big?', output: 'yes' },
        { input: 'Is it red?', output: 'no' },
      ],
      options: ['yes', 'no'],
      metric: 'accuracy',
    });
    expect(tasks[1]).toEqual({
      name: 'plain',
      source: 'jsonl',
      examples: [],
      instances: [
        { input: '1+1', output: '2' },
        { input: '2+2', output: '4', outputs: ['4', 'four'], options: ['3', '4'] },
      ],
      metric: 'rougeL',
    });
  });

  it('reads S-NI split folders', () => {
    const dir = tempDir('split');
    writeFileSync(join(dir, 'train_tasks.txt'), 'task001_a\ntask002_b\n\n');
    writeFileSync(join(dir, 'test_tasks.txt'), 'task003_c\r\n');
    expect(loadSniSplit(dir)).toEqual({ train: ['task001_a', 'task002_b'], test: ['task003_c'] });
  });
});
