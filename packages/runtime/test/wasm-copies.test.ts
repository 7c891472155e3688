import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeBackend, initBackend } from '../src/index.js';

// The wasm GatherV2 (row copies along axis 0) and Slice (from a heap view) overrides must give the cpu backend's results.
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1, matMul: 'xnnpack' });
});
afterAll(async () => {
  await disposeBackend();
});

describe('wasm gather of rows', () => {
  const on = <T>(backend: string, f: () => T): T => {
    void tf.setBackend(backend);
    try {
      return f();
    } finally {
      void tf.setBackend('wasm');
    }
  };

  it.each([
    [
      'float32',
      [5, 4, 2],
      [
        [4, 0, 4],
        [1, 3, 2],
      ],
      0,
    ],
    ['int32', [6, 3], [5, 5, 0, 2], 0],
    ['float32', [3, 4], [3, 1], 1], // other axes keep the original kernel
  ] as const)('gathers %s rows of %j at %j along axis %d as the cpu backend does', (dtype, shape, indices, axis) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => ((i * 7) % 11) - 3);
    const run = () =>
      tf.tidy(() => {
        const y = tf.gather(
          tf.tensor(values, [...shape], dtype),
          tf.tensor(indices as unknown as number[], undefined, 'int32'),
          axis,
        );
        return { shape: y.shape, data: Array.from(y.dataSync()) };
      });
    expect(run()).toEqual(on('cpu', run));
  });

  it('rejects an index outside the table', () => {
    expect(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([0, 3], 'int32')))).toThrow(
      /index value 3 is not in \[0, 2\]/,
    );
  });
});

describe('wasm slice from a heap view', () => {
  it.each([
    [
      [4, 5, 6],
      [1, 2, 0],
      [2, 3, 6],
    ], // contiguous rows
    [
      [4, 5, 6],
      [1, 2, 3],
      [3, 2, 2],
    ], // strided
    [
      [3, 4],
      [0, 1],
      [3, 2],
    ],
    [
      [2, 3, 4, 5],
      [1, 0, 2, 1],
      [1, 3, 2, 4],
    ],
    [[7], [2], [4]],
    [
      [4, 5],
      [0, 0],
      [0, 5],
    ], // empty
  ])('slices %j at %j, size %j as the cpu backend does', (shape, begin, sizes) => {
    const values = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i * 0.5 - 3);
    const run = () =>
      tf.tidy(() => {
        const y = tf.slice(tf.tensor(values, shape), begin, sizes);
        return { shape: y.shape, data: Array.from(y.dataSync()) };
      });
    void tf.setBackend('cpu');
    const expected = run();
    void tf.setBackend('wasm');
    expect(run()).toEqual(expected);
  });
});
