import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HyperLlamaError } from '@hyperllama/runtime';
import { describe, expect, it } from 'vitest';
import { DatasetError, loadTasks, type LoadTasksOptions } from '../src/index.js';
import { tempDir } from './helpers.js';

const goodSni = {
  Definition: ['d'],
  'Positive Examples': [],
  'Negative Examples': [],
  Instances: [{ id: 'x', input: 'a', output: ['b'] }],
};

/** The DatasetError thrown by loading `path`, checked to name the file (and the field, when given). */
function errorOf(path: string, opts?: LoadTasksOptions): DatasetError {
  try {
    loadTasks(path, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetError);
    expect(err).toBeInstanceOf(HyperLlamaError);
    return err as DatasetError;
  }
  throw new Error(`loading ${path} did not fail`);
}

function expectError(path: string, code: string, file: string, field?: string, opts?: LoadTasksOptions): DatasetError {
  const err = errorOf(path, opts);
  expect(err.code).toBe(code);
  expect(err.details.file).toBe(file);
  expect(err.message).toContain(file);
  if (field !== undefined) {
    expect(err.details.field).toBe(field);
    expect(err.message).toContain(`"${field}"`);
  }
  return err;
}

describe('malformed inputs give typed errors naming file and field', () => {
  it('truncated JSON', () => {
    const dir = tempDir('trunc');
    const file = join(dir, 'task1_t.json');
    writeFileSync(file, JSON.stringify(goodSni).slice(0, 40));
    expectError(file, 'BAD_JSON', file);
  });

  it('truncated JSONL line, with its line number', () => {
    const dir = tempDir('trunc-l');
    const file = join(dir, 'x.jsonl');
    writeFileSync(file, '{"input": "a", "output": "b"}\n{"input": "c", "outp\n');
    const err = expectError(file, 'BAD_JSON', file);
    expect(err.details.line).toBe(2);
    expect(err.message).toContain(`${file}:2`);
  });

  it('missing and mistyped fields', () => {
    const dir = tempDir('fields');
    const missing = join(dir, 'a.json');
    writeFileSync(missing, JSON.stringify({ ...goodSni, Instances: [{ id: 'x', input: 'a' }] }));
    expectError(missing, 'MISSING_FIELD', missing, 'Instances[0].output');

    const mistyped = join(dir, 'b.json');
    writeFileSync(mistyped, JSON.stringify({ ...goodSni, Instances: [{ id: 'x', input: 7, output: ['b'] }] }));
    const err = expectError(mistyped, 'BAD_FIELD', mistyped, 'Instances[0].input');
    expect(err.details).toMatchObject({ expected: 'a string', actual: 'number' });

    const noInstances = join(dir, 'c.json');
    writeFileSync(noInstances, JSON.stringify({ Definition: ['d'] }));
    expectError(noInstances, 'MISSING_FIELD', noInstances, 'Instances');

    const badOptions = join(dir, 'd.jsonl');
    writeFileSync(
      badOptions,
      '{"input": "a", "output": "b", "options": "b"}\n{"input": "a", "output": "b", "options": [1, null]}\n',
    );
    expectError(badOptions, 'BAD_FIELD', badOptions, 'options');

    const dir2 = tempDir('metaicl-field');
    const metaicl = join(dir2, 'tk_4_1_test.jsonl');
    writeFileSync(metaicl, '{"task": "tk", "input": "a", "output": 3, "options": []}\n');
    const e2 = expectError(dir2, 'BAD_FIELD', metaicl, 'output');
    expect(e2.details.line).toBe(1);
  });

  it('a task with no instances', () => {
    const dir = tempDir('empty');
    const file = join(dir, 'e.json');
    writeFileSync(file, JSON.stringify({ ...goodSni, Instances: [] }));
    expectError(file, 'NO_INSTANCES', file);
    const empty = join(dir, 'e.jsonl');
    writeFileSync(empty, '\n');
    expectError(empty, 'NO_INSTANCES', empty);
  });

  it('an unknown format, named or detected', () => {
    const dir = tempDir('unknown');
    const good = join(dir, 'ok.json');
    writeFileSync(good, JSON.stringify(goodSni));
    expectError(good, 'UNKNOWN_FORMAT', good, 'format', { format: 'csv' as never });
    const csv = join(dir, 'x.csv');
    writeFileSync(csv, 'a,b\n');
    expectError(csv, 'UNKNOWN_FORMAT', csv);
    const odd = join(dir, 'odd.jsonl');
    writeFileSync(odd, '{"question": "a", "answer": "b"}\n');
    expectError(odd, 'UNKNOWN_FORMAT', odd);
  });

  it('a directory with no tasks, and a missing path', () => {
    const dir = tempDir('none');
    writeFileSync(join(dir, 'notes.txt'), 'nothing here');
    mkdirSync(join(dir, 'sub'));
    expectError(dir, 'NO_TASKS', dir);
    expectError(join(dir, 'absent'), 'MISSING_FILE', join(dir, 'absent'));
    expectError(dir, 'NO_TASKS', dir, undefined, { format: 'metaicl' });
  });

  it('one bad file aborts the whole folder (no partial success)', () => {
    const dir = tempDir('partial');
    writeFileSync(join(dir, 'a.json'), JSON.stringify(goodSni));
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ ...goodSni, Instances: [{ input: 'a', output: [] }] }));
    expectError(dir, 'BAD_FIELD', join(dir, 'b.json'), 'Instances[0].output');
  });

  it('a MetaICL folder without its evaluation file', () => {
    const dir = tempDir('metaicl-missing');
    writeFileSync(join(dir, 'tk_4_1_train.jsonl'), '{"task": "tk", "input": "a", "output": "b", "options": []}\n');
    const err = errorOf(dir);
    expect(err.code).toBe('MISSING_FILE');
    expect(err.message).toContain('dev');
  });
});
