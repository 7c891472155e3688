import * as tf from '@tensorflow/tfjs';
import { HyperLlamaError } from '@hyperllama/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { GistAttentionError } from '../src/errors.js';
import { findGistPositions, padRows } from '../src/layout.js';
import {
  downstreamMask,
  downstreamVisibility,
  gistMask,
  gistVisibility,
  spanVisibility,
  toBooleanMask,
  visibilityRows,
} from '../src/masks.js';

// Hand-written expected masks: rows are query positions, columns are key positions (prefix columns first), 1 = visible.
const grid = (lines: string[]) => lines.map((l) => [...l.replace(/ /g, '')].map(Number));

const BOS = 1;
const PAD = 0;
const G = 100; // gist ids in these fixtures: 100, 101
const H = 101;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('gist masks equal hand-written fixtures', () => {
  it('Gisting (Mu et al. 2023): tokens after the gist see the gist and later tokens only', () => {
    const v = gistVisibility({ inputIds: [[BOS, 5, 6, G, 7, 8]], gistIds: [G] });
    expect(v.shape).toEqual([1, 1, 6, 6]);
    expect(visibilityRows(v)[0]).toEqual(grid(['100000', '110000', '111000', '111100', '000110', '000111']));
  });

  it('multi-gist: after a block starting at s with k gists, rows >= s+k see no column < s', () => {
    const v = gistVisibility({ inputIds: [[BOS, 5, G, H, 6, 7, G, 8]], gistIds: [G, H] });
    expect(visibilityRows(v)[0]).toEqual(
      grid(['10000000', '11000000', '11100000', '11110000', '00111000', '00111100', '00111110', '00000011']),
    );
  });

  it('hyper pass [BOS] examples… <GIST_0..k-1>, rows padded on different sides, gists at different places', () => {
    const v = gistVisibility({
      inputIds: [
        [PAD, PAD, BOS, 5, G, H],
        [BOS, 5, 6, 7, G, H],
        [BOS, G, H, PAD, PAD, PAD],
      ],
      attentionMask: [
        [0, 0, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0, 0],
      ],
      gistIds: [G, H],
    });
    const rows = visibilityRows(v);
    // padded query rows see only themselves (finite softmax); real rows never see padding
    expect(rows[0]).toEqual(grid(['100000', '010000', '001000', '001100', '001110', '001111']));
    expect(rows[1]).toEqual(grid(['100000', '110000', '111000', '111100', '111110', '111111']));
    expect(rows[2]).toEqual(grid(['100000', '110000', '111000', '000100', '000010', '000001']));
    expect(
      findGistPositions(
        [
          [PAD, PAD, BOS, 5, G, H],
          [BOS, 5, 6, 7, G, H],
          [BOS, G, H, PAD, PAD, PAD],
        ],
        [G, H],
        [
          [0, 0, 1, 1, 1, 1],
          [1, 1, 1, 1, 1, 1],
          [1, 1, 1, 0, 0, 0],
        ],
      ),
    ).toEqual([
      [4, 5],
      [4, 5],
      [1, 2],
    ]);
  });

  it('a gist id sitting on a padding position is not a gist', () => {
    // the padding token reuses id G: with the padding mask it must neither open a block nor hide anything
    const v = gistVisibility({ inputIds: [[BOS, 5, 6, G]], attentionMask: [[1, 1, 1, 0]], gistIds: [G] });
    expect(visibilityRows(v)[0]).toEqual(grid(['1000', '1100', '1110', '0001']));
  });

  it('downstream pass: P prefix columns visible, causal over its own tokens, padding hidden', () => {
    const v = downstreamVisibility({
      prefixLength: 2,
      attentionMask: [
        [1, 1, 1],
        [1, 1, 0],
        [0, 1, 1],
      ],
    });
    expect(v.shape).toEqual([3, 1, 3, 5]);
    const rows = visibilityRows(v);
    expect(rows[0]).toEqual(grid(['11 100', '11 110', '11 111']));
    expect(rows[1]).toEqual(grid(['11 100', '11 110', '00 001']));
    expect(rows[2]).toEqual(grid(['00 100', '11 010', '11 011']));
  });

  it('downstream pass with some prefix columns hidden per row', () => {
    const v = downstreamVisibility({ prefixLength: 3, prefixMask: [[1, 0, 1]], batch: 1, seqLen: 2 });
    expect(visibilityRows(v)[0]).toEqual(grid(['101 10', '101 11']));
  });

  it('compression hyperpretraining: hyper reads A, D then gists; downstream B -> C behind the k-gist prefix', () => {
    const A = [11, 12];
    const B = [13, 14];
    const C = [15];
    const D = [16];
    const hyper = padRows([[BOS, ...A, ...D, G, H]], { padId: PAD, side: 'left' });
    expect(visibilityRows(gistVisibility({ ...hyper, gistIds: [G, H] }))[0]).toEqual(
      grid(['100000', '110000', '111000', '111100', '111110', '111111']),
    );
    const down = visibilityRows(downstreamVisibility({ prefixLength: 2, batch: 1, seqLen: 3 }))[0];
    expect(down).toEqual(grid(['11 100', '11 110', '11 111']));
    // The same two passes as one sequence [BOS A D gists B C] under the gist mask: the rows of B, C see exactly the
    // gist columns and their own causal columns, which is the downstream mask above.
    const joint = visibilityRows(
      gistVisibility({ inputIds: [[BOS, ...A, ...D, G, H, ...B, ...C]], gistIds: [G, H] }),
    )[0];
    expect(joint.slice(6).map((r) => r.slice(4))).toEqual(down);
    expect(joint.slice(6).every((r) => r.slice(0, 4).every((x) => x === 0))).toBe(true);
  });

  it('spans give the same mask as ids', () => {
    const fromIds = gistVisibility({ inputIds: [[BOS, 5, G, H, 6, 7, G, 8]], gistIds: [G, H] });
    const fromSpans = spanVisibility({
      seqLen: 8,
      gistSpans: [
        [
          { start: 2, length: 2 },
          { start: 6, length: 1 },
        ],
      ],
    });
    expect(fromSpans).toEqual(fromIds);
  });

  it('additive and boolean tensors: 0 / -1e9 float32 and true / false, constants of shape [B, 1, T, P+T]', () => {
    const m = gistMask({ inputIds: [[BOS, G, 7]], gistIds: [G] });
    expect(m.dtype).toBe('float32');
    expect(m.shape).toEqual([1, 1, 3, 3]);
    expect(m.arraySync()).toEqual([
      [[[0, -1e9, -1e9].map(Math.fround), [0, 0, -1e9].map(Math.fround), [-1e9, 0, 0].map(Math.fround)]],
    ]);
    const b = toBooleanMask(gistVisibility({ inputIds: [[BOS, G, 7]], gistIds: [G] }));
    expect(b.dtype).toBe('bool');
    expect(b.arraySync()).toEqual([
      [
        [
          [1, 0, 0],
          [1, 1, 0],
          [0, 1, 1],
        ],
      ],
    ]);
    const d = downstreamMask({ prefixLength: 1, batch: 2, seqLen: 1 });
    expect(d.shape).toEqual([2, 1, 1, 2]);
    expect(Array.from(d.dataSync())).toEqual([0, 0, 0, 0]);
    tf.dispose([m, b, d]);
  });

  it('every query row, padded or not, sees at least one column', () => {
    const v = gistVisibility({
      inputIds: [
        [PAD, PAD, PAD, PAD],
        [BOS, G, 5, PAD],
      ],
      attentionMask: [
        [0, 0, 0, 0],
        [1, 1, 1, 0],
      ],
      gistIds: [G],
    });
    for (const row of visibilityRows(v).flat()) expect(row.some((x) => x === 1)).toBe(true);
  });
});

describe('bad input is a typed error', () => {
  const expectError = (fn: () => unknown, code: string) => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(GistAttentionError);
      expect(e).toBeInstanceOf(HyperLlamaError);
      expect((e as GistAttentionError).code).toBe(code);
      return;
    }
    throw new Error(`expected ${code}`);
  };

  it('ragged rows, wrong mask shapes and values, empty gist ids', () => {
    expectError(() => gistVisibility({ inputIds: [[1, 2], [1]], gistIds: [G] }), 'GIST_BAD_SHAPE');
    expectError(() => gistVisibility({ inputIds: [[1, 2]], attentionMask: [[1]], gistIds: [G] }), 'GIST_BAD_SHAPE');
    expectError(() => gistVisibility({ inputIds: [[1, 2]], attentionMask: [[1, 2]], gistIds: [G] }), 'GIST_BAD_MASK');
    expectError(() => gistVisibility({ inputIds: [[1, 2]], gistIds: [] }), 'GIST_BAD_ID');
    expectError(() => gistVisibility({ inputIds: [[1, 2.5]], gistIds: [G] }), 'GIST_BAD_ID');
    expectError(() => downstreamVisibility({ prefixLength: -1, batch: 1, seqLen: 2 }), 'GIST_BAD_SHAPE');
    expectError(
      () => downstreamVisibility({ prefixLength: 2, prefixMask: [[1]], batch: 1, seqLen: 2 }),
      'GIST_BAD_SHAPE',
    );
    expectError(() => downstreamVisibility({ prefixLength: 2 }), 'GIST_BAD_SHAPE');
    expectError(() => spanVisibility({ seqLen: 4, gistSpans: [[{ start: 3, length: 2 }]] }), 'GIST_BAD_LAYOUT');
    expectError(
      () =>
        spanVisibility({
          seqLen: 4,
          gistSpans: [
            [
              { start: 0, length: 2 },
              { start: 1, length: 1 },
            ],
          ],
        }),
      'GIST_BAD_LAYOUT',
    );
  });

  it('gist positions need exactly one block of the same size in every row', () => {
    expectError(() => findGistPositions([[1, G, 5, G]], [G]), 'GIST_BAD_LAYOUT');
    expectError(() => findGistPositions([[1, 5, 6, 7]], [G]), 'GIST_BAD_LAYOUT');
    expectError(
      () =>
        findGistPositions(
          [
            [1, G, G, 5],
            [1, 5, 6, G],
          ],
          [G],
        ),
      'GIST_BAD_LAYOUT',
    );
  });

  it('the message names the field, the expected and the actual value', () => {
    expect(() => gistVisibility({ inputIds: [[1, 2]], attentionMask: [[1, 2]], gistIds: [G] })).toThrow(
      'attentionMask[0][1]: expected 0 or 1, got 2',
    );
  });
});
