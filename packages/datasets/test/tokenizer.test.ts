import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '@hyperllama/tokenizer';
import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '@hyperllama/runtime';
import { collateHyperLlama, collateRankClassification, EpisodeSampler, syntheticTasks } from '../src/index.js';
import { SHARED } from './helpers.js';

const MODEL = join(SHARED, 'models/stories260K/tok512.model');

describe.skipIf(!existsSync(MODEL))(`collation with the real stories260K tokenizer (${MODEL})`, () => {
  const tokenizer = loadTokenizer(MODEL).withGistTokens(4);
  const tasks = syntheticTasks({ seed: 9, numExamples: 16, numInstances: 4 }).train;
  const episodes = Array.from({ length: 16 }, (_, i) => new EpisodeSampler(tasks, { seed: i, k: 6 }).next());

  it('labels exactly the tokens of the answer and EOS; the prompt decodes back to the prompt', () => {
    const o = { encoder: tokenizer, gistIds: tokenizer.gistIds, maxHyperLength: 160 };
    const { hyper, downstream } = collateHyperLlama(episodes, o);
    for (const [b, ep] of episodes.entries()) {
      const ids = downstream.inputIds[b].slice(0, downstream.lengths[b]);
      const labels = downstream.labels[b].slice(0, downstream.lengths[b]);
      const first = labels.findIndex((l) => l !== IGNORE_INDEX);
      expect(ids[0]).toBe(tokenizer.bosId);
      expect(labels.slice(first).every((l, i) => l === ids[first + i])).toBe(true);
      expect(ids.at(-1)).toBe(tokenizer.eosId);
      // The same ids as encoding the whole text in one go; the split point is where the prompt ends.
      expect(ids.slice(1, -1)).toEqual(tokenizer.encode(`Input: ${ep.target.input}\nOutput: ${ep.target.output}`));
      expect(tokenizer.decode(ids.slice(1, first))).toBe(`Input: ${ep.target.input}\nOutput:`);
      expect(tokenizer.decode(labels.slice(first, -1)).trim()).toBe(ep.target.output);
      // Hyper rows end with the gist ids, which the text itself never produces.
      expect(hyper.gistPositions[b].map((p) => hyper.inputIds[b][p])).toEqual([...tokenizer.gistIds]);
      expect(hyper.lengths[b]).toBeLessThanOrEqual(160);
      expect(hyper.inputIds[b].filter((id) => tokenizer.gistIds.includes(id)).length).toBe(4);
    }
  });

  it('rank-classification rows differ only in the option tokens', () => {
    const task = tasks.find((t) => t.options)!;
    const batch = collateRankClassification(task, task.instances.slice(0, 1), task.examples.slice(0, 4), 'fewshot', {
      encoder: tokenizer,
    });
    const [a, b] = batch.rows.labels.map((row) => row.filter((l) => l !== IGNORE_INDEX));
    expect(tokenizer.decode(a.slice(0, -1)).trim()).toBe(task.options![0]);
    expect(tokenizer.decode(b.slice(0, -1)).trim()).toBe(task.options![1]);
    expect(batch.gold[0]).toBe(task.options!.indexOf(task.instances[0].output));
  });
});
