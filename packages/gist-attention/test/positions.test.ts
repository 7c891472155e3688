import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { GistAttentionError } from '../src/errors.js';
import { downstreamOffsets, downstreamPositionIds, hyperPositionIds, positionIdsFromMask } from '../src/positions.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('position ids for the two schemes', () => {
  // Hyper batch: row 0 left-padded by two ([pad pad BOS x G G]), row 1 full ([BOS x y z G G]); gists at indices 4, 5.
  const hyperMask = [
    [0, 0, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
  ];
  const gistPositions = [
    [4, 5],
    [4, 5],
  ];

  it('hyper pass: real tokens numbered from 0 whatever the left padding', () => {
    const p = hyperPositionIds(hyperMask);
    expect(p.dtype).toBe('int32');
    // padding positions are in range and not used by any real row
    expect(p.arraySync()).toEqual([
      [0, 0, 0, 1, 2, 3],
      [0, 1, 2, 3, 4, 5],
    ]);
    p.dispose();
  });

  it('restart: downstream starts at k in every row', () => {
    expect(downstreamOffsets('restart', gistPositions)).toEqual([2, 2]);
    const p = downstreamPositionIds([2, 2], { seqLen: 3 });
    expect(p.arraySync()).toEqual([
      [2, 3, 4],
      [2, 3, 4],
    ]);
    p.dispose();
  });

  it('continue: downstream continues one past each row’s last gist position (left padding accounted for)', () => {
    expect(downstreamOffsets('continue', gistPositions, positionIdsFromMask(hyperMask))).toEqual([4, 6]);
    // without the hyper positions, indices are taken as positions (right for unpadded or right-padded hyper inputs)
    expect(
      downstreamOffsets('continue', [
        [1, 2],
        [4, 5],
      ]),
    ).toEqual([3, 6]);
    const p = downstreamPositionIds([4, 6], {
      attentionMask: [
        [1, 1, 0],
        [1, 1, 1],
      ],
    });
    expect(p.arraySync()).toEqual([
      [4, 5, 5],
      [6, 7, 8],
    ]);
    p.dispose();
  });

  it('left-padded downstream rows also start at their offset', () => {
    expect(positionIdsFromMask([[0, 1, 1]], [3])).toEqual([[3, 3, 4]]);
  });

  it('bad scheme or offsets are typed errors', () => {
    expect(() => downstreamOffsets('middle' as 'restart', gistPositions)).toThrow(GistAttentionError);
    expect(() => positionIdsFromMask(hyperMask, [1])).toThrow(GistAttentionError);
    expect(() => positionIdsFromMask(hyperMask, [1, -1])).toThrow(GistAttentionError);
    expect(() => downstreamPositionIds([2], {})).toThrow(GistAttentionError);
  });
});
