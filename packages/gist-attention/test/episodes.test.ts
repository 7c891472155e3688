import { describe, expect, it } from 'vitest';
import { GistAttentionError } from '../src/errors.js';
import { compressionInputs, downstreamInput, hyperInput } from '../src/episodes.js';

const PAD = 0;
const BOS = 1;
const G = [40, 41];
const X = -100;

describe('episode layouts (hand-written expected batches)', () => {
  it('hyper input: gists appended, left-padded, positions from 0, gist indices', () => {
    const h = hyperInput([[BOS, 5, 6, 7], [BOS, 8]], G, { padId: PAD });
    expect(h.inputIds).toEqual([[BOS, 5, 6, 7, 40, 41], [PAD, PAD, BOS, 8, 40, 41]]);
    expect(h.attentionMask).toEqual([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]);
    expect(h.positionIds).toEqual([[0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 2, 3]]);
    expect(h.gistPositions).toEqual([[4, 5], [4, 5]]);
  });

  it('downstream input: right-padded, labels on the target only', () => {
    const d = downstreamInput([[5, 6], [7]], [[8], [9, 10]], { padId: PAD });
    expect(d.inputIds).toEqual([[5, 6, 8], [7, 9, 10]]);
    expect(d.attentionMask).toEqual([[1, 1, 1], [1, 1, 1]]);
    expect(d.labels).toEqual([[X, X, 8], [X, 9, 10]]);
    const e = downstreamInput([[5], [7, 7, 7]], [[8], [9]], { padId: PAD });
    expect(e.labels).toEqual([[X, 8, X, X], [X, X, X, 9]]);
  });

  it('compression hyperpretraining: hyper [BOS] A D gists, downstream B → C, offsets per scheme', () => {
    const segments = [
      { a: [10, 11], b: [12, 13], c: [14, 15], d: [16] },
      { a: [20], b: [21], c: [22], d: [23] },
    ];
    const restart = compressionInputs(segments, G, { bosId: BOS, padId: PAD, scheme: 'restart' });
    expect(restart.hyper.inputIds).toEqual([[BOS, 10, 11, 16, 40, 41], [PAD, BOS, 20, 23, 40, 41]]);
    expect(restart.downstream.inputIds).toEqual([[12, 13, 14, 15], [21, 22, PAD, PAD]]);
    expect(restart.downstream.labels).toEqual([[X, X, 14, 15], [X, 22, X, X]]);
    expect(restart.downstream.attentionMask).toEqual([[1, 1, 1, 1], [1, 1, 0, 0]]);
    expect(restart.downstreamOffsets).toEqual([2, 2]);
    const cont = compressionInputs(segments, G, { bosId: BOS, padId: PAD, scheme: 'continue' });
    expect(cont.downstreamOffsets).toEqual([6, 5]); // one past each row's last gist position
  });

  it('bad episodes are typed errors', () => {
    expect(() => hyperInput([[BOS]], [], { padId: PAD })).toThrow(GistAttentionError);
    expect(() => downstreamInput([[1]], [], { padId: PAD })).toThrow(GistAttentionError);
    expect(() => compressionInputs([{ a: [1], b: [2], c: [], d: [3] }], G, { bosId: BOS, padId: PAD, scheme: 'restart' })).toThrow(
      GistAttentionError,
    );
    // a gist id inside the examples makes a second gist block
    expect(() => hyperInput([[BOS, 40, 5]], G, { padId: PAD })).toThrow(GistAttentionError);
  });
});
