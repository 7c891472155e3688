import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadLlama } from '@hyperllama/llama-model';
import { loadTokenizer } from '@hyperllama/tokenizer';
import { buildJob, resolveTokenizer, TrainerError } from '@hyperllama/training';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/index.js';

const SMALL = ['threads=1', 'batchSize=2', 'evalBatches=1', 'data.seqLen=32', 'data.maxLength=64'];

/** A from-scratch pretrain-base export (word tokenizer of 2,048 ids) to grow. */
let base: string;
let words: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'trainer-words-'));
  const cfg = resolveConfig('pretrain-base', {
    set: [...SMALL, 'model.tokenizer=builtin:word', 'model.vocabSize=2048', 'model.hiddenSize=16'],
  });
  const job = buildJob('pretrain-base', cfg);
  job.exportTo(dir);
  job.model.dispose();
  base = join(dir, 'model');
  words = join(dir, 'words.txt');
  writeFileSync(words, 'quokka\n\nnumbat\nthe\nquokka\n');
});

const err = (f: () => unknown): TrainerError => {
  try {
    f();
  } catch (e) {
    return e as TrainerError;
  }
  throw new Error('expected a throw');
};

describe('model.addWords (pretrain-base)', () => {
  it("appends each new word with a leading space after the base's ids, its row the mean of the rows that spelled it", () => {
    const old = loadTokenizer(base);
    const cfg = resolveConfig('pretrain-base', { set: [...SMALL, `model.base=${base}`, `model.addWords=${words}`] });
    const tokenizer = resolveTokenizer(cfg);
    // " the" is already one token; " quokka" and " numbat" are new.
    expect(old.encode(' the')).toHaveLength(1);
    expect(tokenizer.vocabSize).toBe(old.vocabSize + 2);
    expect(tokenizer.encode(' quokka numbat the')).toEqual([old.vocabSize, old.vocabSize + 1, ...old.encode(' the')]);

    const job = buildJob('pretrain-base', cfg);
    const before = loadLlama(base).embedTokens;
    const after = job.model.embedTokens;
    expect(after.shape).toEqual([old.vocabSize + 2, 16]);
    const same = tf.max(tf.abs(tf.sub(after.slice([0, 0], [old.vocabSize, 16]), before))).dataSync()[0];
    expect(same).toBe(0);
    const spelled = old.encode(' numbat');
    expect(spelled.length).toBe(7); // the space and six letters
    const mean = tf.mean(tf.gather(before, spelled), 0);
    const row = after.slice([old.vocabSize + 1, 0], [1, 16]).squeeze([0]);
    expect(tf.max(tf.abs(tf.sub(row, mean))).dataSync()[0]).toBeLessThan(1e-7);
    job.model.dispose();
  });

  it('english adds the common English words of data.openLexicon', () => {
    const cfg = resolveConfig('pretrain-base', { set: [`model.base=${base}`, 'model.addWords=english'] });
    const tokenizer = resolveTokenizer(cfg);
    for (const w of [' window', ' garden', ' banana', ' yellow']) expect(tokenizer.encode(w)).toHaveLength(1);
    expect(tokenizer.vocabSize - 2048).toBeGreaterThan(6000);
  });

  it('is a typed config error without a base, in another stage, or with a bad word list', () => {
    const noBase = err(() => resolveTokenizer(resolveConfig('pretrain-base', { set: ['model.addWords=english'] })));
    expect(noBase).toBeInstanceOf(TrainerError);
    expect(noBase.message).toMatch(/model\.addWords: grows the vocabulary of a trained base; give model\.base/);
    const stage = err(() =>
      buildJob('multitask', resolveConfig('multitask', { set: [`model.base=${base}`, 'model.addWords=english'] })),
    );
    expect(stage.message).toMatch(/model\.addWords: only pretrain-base grows a vocabulary.*got stage multitask/);
    const file = join(mkdtempSync(join(tmpdir(), 'trainer-words-bad-')), 'words.txt');
    writeFileSync(file, 'fine\ntwo words\n');
    const bad = err(() =>
      resolveTokenizer(resolveConfig('pretrain-base', { set: [`model.base=${base}`, `model.addWords=${file}`] })),
    );
    expect(bad.message).toMatch(/words\.txt:2: expected one word of ASCII letters or of digits, got "two words"/);
    const missing = err(() =>
      resolveTokenizer(resolveConfig('pretrain-base', { set: [`model.base=${base}`, 'model.addWords=nope.txt'] })),
    );
    expect(missing.message).toMatch(/model\.addWords: expected english or a word-list file, got "nope\.txt"/);
  });
});
