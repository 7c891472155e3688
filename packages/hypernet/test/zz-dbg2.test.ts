import * as tf from '@tensorflow/tfjs';
import { it } from 'vitest';
import { initBackend } from '@hyperllama/runtime';
it('dbg', async () => {
  for (const be of ['cpu', 'wasm'] as const) {
    await initBackend({ backend: be, threads: 1 });
    const out = tf.tidy(() => {
      const x = tf.tensor2d([[1, 2, 3, 4], [0.5, -1, 2, 0]]);
      const y = tf.tensor1d([2, -100], 'int32');
      const valid = tf.cast(tf.notEqual(y, -100), 'float32');
      const target = tf.where(tf.cast(valid, 'bool'), y, tf.zerosLike(y));
      return [Array.from(tf.logSumExp(x, 1).dataSync()), Array.from(tf.oneHot(tf.tensor1d([2, 0], 'int32'), 4, 1, 0, 'float32').dataSync()), Array.from(tf.oneHot(target, 4, 1, 0, 'float32').dataSync()), Array.from(target.dataSync()), Array.from(valid.dataSync())];
    });
    console.log(be, JSON.stringify(out));
  }
});
