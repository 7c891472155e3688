import * as tf from '@tensorflow/tfjs';
import { it } from 'vitest';
it('mm', async () => {
  const { initBackend, disposeBackend } = await import('@hyperllama/runtime');
  await initBackend({ backend: 'wasm', threads: 1 });
  const x = tf.randomNormal([64, 256]) as tf.Tensor2D;
  const w = tf.variable(tf.randomNormal([256, 688]));
  const w2 = tf.variable(tf.randomNormal([256, 688], 0, 0.02));
  for (let i = 0; i < 4; i++) { const t0 = performance.now(); tf.tidy(() => tf.matMul(x, w).dataSync()); console.log('std1', (performance.now() - t0).toFixed(2)); }
  for (let i = 0; i < 4; i++) { const t0 = performance.now(); tf.tidy(() => tf.matMul(x, w2).dataSync()); console.log('std0.02', (performance.now() - t0).toFixed(2)); }
  await disposeBackend();
}, 600000);
