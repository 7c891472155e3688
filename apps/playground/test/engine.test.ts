import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { defaultHyperLlamaDir } from '@hyperllama/default-model';
import { planTasks, taskPrefix } from '@hyperllama/eval';
import { Prefix } from '@hyperllama/gist-attention';
import { fromPretrained } from '@hyperllama/hypernet';
import { MemoryFileSystem, disposeBackend, initBackend } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerWithPrefix, compress, examplesTaskFile, loadFromFiles, parseTask, tunePrefix } from '../src/engine.js';

/**
 * The page's engine under Node, from files held in memory (as the page holds fetched or dropped files): the same
 * prefix, bit for bit, as the Node loaders reading the checkpoint from disk, and its bytes load back to the same
 * tensors and answer.
 */
const here = dirname(fileURLToPath(import.meta.url));
const TASK = 'synth_constant_c3_heldout';
const taskFile = join(here, '..', 'tasks', `${TASK}.json`);
const root = dirname(defaultHyperLlamaDir());

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]));
}

describe('playground engine', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });
  afterAll(async () => {
    await disposeBackend();
  });

  it('compresses from memory files exactly as the Node loaders do from disk', async () => {
    // Only the checkpoint and base folders, under another root: nothing is read from disk by the engine.
    const mem = new MemoryFileSystem(
      ['hyperllama', 'base'].flatMap((d) =>
        walk(join(root, d)).map((f): [string, Uint8Array] => [`/site/${relative(root, f)}`, readFileSync(f)]),
      ),
    );
    const loaded = loadFromFiles(mem, 'memory');
    const task = parseTask(readFileSync(taskFile, 'utf8'), `${TASK}.json`);
    const c = await compress(loaded, task, { shots: 16, seed: 0 });

    const disk = fromPretrained(defaultHyperLlamaDir());
    const [plan] = planTasks([task], { shots: 16, seed: 0, maxInstances: 100 });
    const reference = taskPrefix(disk.hyperllama, plan, { model: disk.model, tokenizer: disk.tokenizer });
    try {
      expect(c.k).toBe(4);
      expect(c.demonstrations).toBeGreaterThan(0);
      expect(c.contextTokens).toBeGreaterThan(c.k);
      for (let l = 0; l < reference.keys.length; l++) {
        expect(Array.from(c.prefix.keys[l].dataSync())).toEqual(Array.from(reference.keys[l].dataSync()));
        expect(Array.from(c.prefix.values[l].dataSync())).toEqual(Array.from(reference.values[l].dataSync()));
      }
      // The downloaded bytes load back to the same tensors and the same greedy answer.
      const back = Prefix.fromBytes(c.bytes, loaded.model.config, 'download');
      expect(back.meta).toEqual({ task: TASK, shots: '16', seed: '0', checkpoint: 'memory' });
      expect(tf.max(tf.abs(tf.sub(back.keys[0], c.prefix.keys[0]))).dataSync()[0]).toBe(0);
      // Prefix tuning from it lowers the loss on the demonstrations and moves the prefix.
      const losses: number[] = [];
      const tuned = await tunePrefix(loaded, c, { steps: 6, batchSize: 16 }, (_, loss) => losses.push(loss));
      expect(losses).toHaveLength(6);
      expect(losses[5]).toBeLessThan(losses[0]);
      expect(tf.max(tf.abs(tf.sub(tuned.keys[0], c.prefix.keys[0]))).dataSync()[0]).toBeGreaterThan(0);
      tuned.dispose();
      const input = task.instances[0].input;
      const a = await answerWithPrefix(loaded, c.prefix, input, 8);
      const b = await answerWithPrefix(loaded, back, input, 8);
      expect(b.text).toBe(a.text);
      back.dispose();
    } finally {
      reference.dispose();
      c.prefix.dispose();
      disk.dispose();
      loaded.dispose();
    }
  });

  it('typed examples become a task file that parses and compresses; bad lines are named', () => {
    const lines = ['map => garden', 'zip hat => garden', '', 'owl => garden'].join('\n');
    const file = examplesTaskFile('Answer garden.', lines);
    const task = parseTask(file.text, file.name);
    expect(task.name).toBe('task');
    expect(task.definition).toBe('Answer garden.');
    expect(task.examples.map((e) => [e.input, e.output])).toEqual([
      ['map', 'garden'],
      ['zip hat', 'garden'],
      ['owl', 'garden'],
    ]);
    expect(() => examplesTaskFile('', 'map => garden\nno arrow here')).toThrow(
      /examples line 2: expected "input => output", got "no arrow here"/,
    );
    expect(() => examplesTaskFile('', 'map => garden')).toThrow(/at least 2, got 1/);
  });

  it('names what is missing from dropped files', () => {
    const mem = new MemoryFileSystem([['/drop/notes.txt', 'hello']]);
    expect(() => loadFromFiles(mem, 'drop')).toThrow(/drop: no hypernet_config.json among 1 files/);
    const onlyCheckpoint = new MemoryFileSystem(
      walk(defaultHyperLlamaDir()).map((f): [string, Uint8Array] => [`/d/${relative(root, f)}`, readFileSync(f)]),
    );
    expect(() => loadFromFiles(onlyCheckpoint, 'drop')).toThrow(/base \(.*\) is not among the files/);
  });
});
