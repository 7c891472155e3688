import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '@hyperllama/runtime';
import {
  collateCompression,
  collateFewShot,
  collateHyperLlama,
  collateRankClassification,
  collateZeroShot,
  EpisodeSampler,
  syntheticTasks,
  type EpisodeLike,
  type PromptTemplate,
  type Task,
} from '../src/index.js';
import { CharEncoder } from './helpers.js';

const _ = IGNORE_INDEX;
// Hand-assigned ids: pad 0, BOS 1, EOS 2; '=a' is one merged token (a merge across the prompt/answer boundary).
const VOCAB = { a: 10, b: 11, c: 12, x: 13, '=': 14, ';': 15, '|': 16, D: 17, '=a': 20 };
const TINY: PromptTemplate = { definition: (d) => `${d}|`, prompt: (i) => `${i}=`, answer: (o) => o, separator: ';' };
const GISTS = [40, 41];

const episodes: EpisodeLike[] = [
  {
    task: { definition: 'D' },
    examples: [
      { input: 'ab', output: 'c' },
      { input: 'ba', output: 'x' },
    ],
    target: { input: 'c', output: 'ab' },
  },
  { task: {}, examples: [{ input: 'x', output: 'b' }], target: { input: 'b', output: 'x' } },
];

describe('collation against hand-written fixtures', () => {
  const encoder = new CharEncoder(VOCAB);
  const o = { encoder, template: TINY, gistIds: GISTS };

  it('HyperLlama batch: hyper rows left-padded with gist positions, downstream rows right-padded with answer labels', () => {
    expect(collateHyperLlama(episodes, o)).toEqual({
      hyper: {
        // [BOS] "D|ab=c;ba=x;" <g1><g2>   and   [BOS] "x=b;" <g1><g2>
        inputIds: [
          [1, 17, 16, 10, 11, 14, 12, 15, 11, 10, 14, 13, 15, 40, 41],
          [0, 0, 0, 0, 0, 0, 0, 0, 1, 13, 14, 11, 15, 40, 41],
        ],
        attentionMask: [
          [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
          [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
        ],
        gistPositions: [
          [13, 14],
          [13, 14],
        ],
        lengths: [15, 7],
        numExamples: [2, 1],
      },
      downstream: {
        // [BOS] "c=" "ab" [EOS]   and   [BOS] "b=" "x" [EOS] [pad]
        inputIds: [
          [1, 12, 14, 10, 11, 2],
          [1, 11, 14, 13, 2, 0],
        ],
        attentionMask: [
          [1, 1, 1, 1, 1, 1],
          [1, 1, 1, 1, 1, 0],
        ],
        labels: [
          [_, _, _, 10, 11, 2],
          [_, _, _, 13, 2, _],
        ],
        lengths: [6, 5],
      },
    });
  });

  it('right-padded hyper rows and greedy packing under maxHyperLength', () => {
    const right = collateHyperLlama(episodes, { ...o, hyperPadSide: 'right' }).hyper;
    expect(right.gistPositions).toEqual([
      [13, 14],
      [5, 6],
    ]);
    expect(right.inputIds[1]).toEqual([1, 13, 14, 11, 15, 40, 41, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Room for 10 - BOS - 2 gists = 7 tokens: "D|ab=c;" fits, "ba=x;" does not.
    const packed = collateHyperLlama([episodes[0]], { ...o, maxHyperLength: 10 }).hyper;
    expect(packed.inputIds).toEqual([[1, 17, 16, 10, 11, 14, 12, 15, 40, 41]]);
    expect(packed.numExamples).toEqual([1]);
    expect(collateHyperLlama([episodes[0]], { ...o, maxHyperLength: 9 }).hyper.inputIds).toEqual([[1, 17, 16, 40, 41]]);
  });

  it('few-shot ICL rows: demonstrations and target in one sequence, packed to maxLength', () => {
    expect(collateFewShot([episodes[0]], o)).toEqual({
      // [BOS] "D|ab=c;ba=x;c=" "ab" [EOS]
      inputIds: [[1, 17, 16, 10, 11, 14, 12, 15, 11, 10, 14, 13, 15, 12, 14, 10, 11, 2]],
      attentionMask: [Array(18).fill(1)],
      labels: [[_, _, _, _, _, _, _, _, _, _, _, _, _, _, _, 10, 11, 2]],
      lengths: [18],
      numExamples: [2],
    });
    // 13 tokens hold [BOS] "D|ab=c;c=ab" [EOS]: one demonstration.
    const packed = collateFewShot([episodes[0]], { ...o, maxLength: 13 });
    expect(packed.inputIds).toEqual([[1, 17, 16, 10, 11, 14, 12, 15, 12, 14, 10, 11, 2]]);
    expect(packed.numExamples).toEqual([1]);
  });

  it('zero-shot rows, truncation from the left of the prompt, and left padding', () => {
    expect(collateZeroShot([episodes[0]], o)).toEqual({
      inputIds: [[1, 17, 16, 12, 14, 10, 11, 2]],
      attentionMask: [[1, 1, 1, 1, 1, 1, 1, 1]],
      labels: [[_, _, _, _, _, 10, 11, 2]],
      lengths: [8],
    });
    // Room for 6 - BOS = 5 tokens: the answer and EOS (3) plus the last 2 prompt tokens "c=".
    expect(collateZeroShot([episodes[0]], { ...o, maxLength: 6 }).inputIds).toEqual([[1, 12, 14, 10, 11, 2]]);
    expect(collateZeroShot([episodes[0]], { ...o, maxLength: 5 }).inputIds).toEqual([[1, 14, 10, 11, 2]]);
    expect(collateZeroShot([episodes[0]], { ...o, maxLength: 3 })).toMatchObject({
      inputIds: [[1, 10, 11]],
      labels: [[_, 10, 11]],
    });
    const left = collateZeroShot(episodes, { ...o, useDefinition: false, padSide: 'left', eos: false });
    expect(left.inputIds).toEqual([
      [1, 12, 14, 10, 11],
      [0, 1, 11, 14, 13],
    ]);
    expect(left.labels).toEqual([
      [_, _, _, 10, 11],
      [_, _, _, _, 13],
    ]);
  });

  it('a token merged across the prompt/answer boundary is labelled with the answer, never split', () => {
    const merging = new CharEncoder(VOCAB, ['=a']);
    // "c=" encodes as [c, =]; "c=ab" as [c, =a, b]: the common prefix is [c].
    expect(
      collateZeroShot([{ task: {}, target: { input: 'c', output: 'ab' } }], { encoder: merging, template: TINY }),
    ).toEqual({
      inputIds: [[1, 12, 20, 11, 2]],
      attentionMask: [[1, 1, 1, 1, 1]],
      labels: [[_, _, 20, 11, 2]],
      lengths: [5],
    });
  });

  it('compression batch: [BOS] A D gists for the hypernetwork, [BOS] B C with loss on C downstream', () => {
    const batch = collateCompression([{ a: [5, 6], b: [7], c: [8, 9], d: [10] }], { encoder, gistIds: [40] });
    expect(batch).toEqual({
      hyper: {
        inputIds: [[1, 5, 6, 10, 40]],
        attentionMask: [[1, 1, 1, 1, 1]],
        gistPositions: [[4]],
        lengths: [5],
        numExamples: [0],
      },
      downstream: { inputIds: [[1, 7, 8, 9]], attentionMask: [[1, 1, 1, 1]], labels: [[_, _, 8, 9]], lengths: [4] },
    });
  });

  it('compression batch of uneven rows: hyper rows left-padded (gists in the same columns), downstream right-padded', () => {
    const segments = [
      { a: [10, 11], b: [12, 13], c: [14, 15], d: [16] },
      { a: [20], b: [21], c: [22], d: [23] },
    ];
    expect(collateCompression(segments, { encoder, gistIds: GISTS })).toEqual({
      hyper: {
        inputIds: [
          [1, 10, 11, 16, 40, 41],
          [0, 1, 20, 23, 40, 41],
        ],
        attentionMask: [
          [1, 1, 1, 1, 1, 1],
          [0, 1, 1, 1, 1, 1],
        ],
        gistPositions: [
          [4, 5],
          [4, 5],
        ],
        lengths: [6, 5],
        numExamples: [0, 0],
      },
      downstream: {
        inputIds: [
          [1, 12, 13, 14, 15],
          [1, 21, 22, 0, 0],
        ],
        attentionMask: [
          [1, 1, 1, 1, 1],
          [1, 1, 1, 0, 0],
        ],
        labels: [
          [_, _, _, 14, 15],
          [_, _, 22, _, _],
        ],
        lengths: [5, 3],
      },
    });
  });

  it('rank classification: one row per option, the gold index, and the shared hyper row', () => {
    const task: Task = {
      name: 't',
      source: 'test',
      examples: [],
      instances: [],
      options: ['a', 'x'],
      metric: 'accuracy',
    };
    const instances = [
      { input: 'c', output: 'x' },
      { input: 'b', output: 'a', options: ['b', 'a', 'c'] },
    ];
    const batch = collateRankClassification(task, instances, [{ input: 'ab', output: 'c' }], 'hyper', o);
    expect(batch.rows.inputIds).toEqual([
      [1, 12, 14, 10, 2],
      [1, 12, 14, 13, 2],
      [1, 11, 14, 11, 2],
      [1, 11, 14, 10, 2],
      [1, 11, 14, 12, 2],
    ]);
    expect(batch.rows.labels).toEqual([
      [_, _, _, 10, 2],
      [_, _, _, 13, 2],
      [_, _, _, 11, 2],
      [_, _, _, 10, 2],
      [_, _, _, 12, 2],
    ]);
    expect(batch.rowInstance).toEqual([0, 0, 1, 1, 1]);
    expect(batch.rowOption).toEqual([0, 1, 0, 1, 2]);
    expect(batch.gold).toEqual([1, 1]);
    expect(batch.hyper?.inputIds).toEqual([[1, 10, 11, 14, 12, 15, 40, 41]]);
    const fewshot = collateRankClassification(
      task,
      instances.slice(0, 1),
      [{ input: 'ab', output: 'c' }],
      'fewshot',
      o,
    );
    expect(fewshot.rows.inputIds).toEqual([
      [1, 10, 11, 14, 12, 15, 12, 14, 10, 2],
      [1, 10, 11, 14, 12, 15, 12, 14, 13, 2],
    ]);
    expect(fewshot.hyper).toBeUndefined();
  });

  it('the default template is "Input: …\\nOutput: …\\n\\n" with the definition first', () => {
    const enc = new CharEncoder();
    const batch = collateHyperLlama([{ ...episodes[0], task: { definition: 'Copy.' } }], {
      encoder: enc,
      gistIds: [500],
    });
    const hyper = batch.hyper.inputIds[0];
    expect(enc.decode(hyper.slice(1, -1))).toBe('Copy.\n\nInput: ab\nOutput: c\n\nInput: ba\nOutput: x\n\n');
    const down = batch.downstream;
    expect(enc.decode(down.inputIds[0])).toBe('Input: c\nOutput: ab');
    expect(enc.decode(down.labels[0].filter((l) => l !== _))).toBe(' ab');
  });
});

describe('collation properties on sampled synthetic episodes', () => {
  const tasks = syntheticTasks({ seed: 5, numExamples: 16, numInstances: 8 }).train;
  const encoder = new CharEncoder();
  const sampler = new EpisodeSampler(tasks, { seed: 1, k: 8 });
  const batch = Array.from({ length: 24 }, () => sampler.next());
  const o = { encoder, gistIds: [900, 901, 902], maxHyperLength: 120, maxLength: 48 };

  it('labels only the answer and EOS, never a prompt token; lengths within the limits', () => {
    const { hyper, downstream } = collateHyperLlama(batch, o);
    for (const [b, ep] of batch.entries()) {
      const ids = downstream.inputIds[b];
      const labels = downstream.labels[b];
      const first = labels.findIndex((l) => l !== _);
      // Everything before the first label decodes to the prompt; the labelled tokens to the answer then EOS.
      expect(encoder.decode(ids.slice(0, first))).toBe(`Input: ${ep.target.input}\nOutput:`);
      const labelled = labels.filter((l) => l !== _);
      expect(labelled.at(-1)).toBe(encoder.eosId);
      expect(encoder.decode(labelled)).toBe(` ${ep.target.output}`);
      for (const [t, l] of labels.entries()) if (l !== _) expect(l).toBe(ids[t]);
      expect(downstream.lengths[b]).toBeLessThanOrEqual(48);
      expect(hyper.lengths[b]).toBeLessThanOrEqual(120);
      expect(hyper.gistPositions[b].map((p) => hyper.inputIds[b][p])).toEqual([900, 901, 902]);
      expect(hyper.attentionMask[b].reduce((s, m) => s + m, 0)).toBe(hyper.lengths[b]);
      // Greedy: one more demonstration would not have fitted.
      if (hyper.numExamples[b] < ep.examples.length) {
        const longer = collateHyperLlama([{ ...ep, examples: ep.examples.slice(0, hyper.numExamples[b] + 1) }], {
          ...o,
          maxHyperLength: undefined,
        });
        expect(longer.hyper.lengths[0]).toBeGreaterThan(120);
      }
    }
  });

  it('few-shot rows respect maxLength and keep the whole answer', () => {
    const rows = collateFewShot(batch, o);
    for (const [b, ep] of batch.entries()) {
      expect(rows.lengths[b]).toBeLessThanOrEqual(48);
      expect(encoder.decode(rows.labels[b].filter((l) => l !== _))).toBe(` ${ep.target.output}`);
    }
  });
});
