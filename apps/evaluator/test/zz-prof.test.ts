import * as tf from '@tensorflow/tfjs';
import { it } from 'vitest';
import { initBackend, disposeBackend } from '@hyperllama/runtime';
import { loadSetup } from '../src/index.js';
it('prof', async () => {
  for (const b of ['wasm', 'cpu'] as const) {
  await initBackend({ backend: b });
  let t = performance.now();
  const lap = (what: string) => { console.log(b, what, ((performance.now() - t) / 1000).toFixed(2)); t = performance.now(); };
  const setup = loadSetup({ model: '/tmp/rd/m' }); lap('loadSetup');
  for (const T of [100, 300]) {
  const ids8 = tf.tensor2d(Array.from({length: 8}, () => Array(T).fill(5)), undefined, 'int32');
  setup.model.forward({ inputIds: ids8, returnHidden: true }).hidden!.dispose(); lap('forward 8x' + T);
  const mask = tf.tensor2d(Array.from({length: 8}, () => Array(T).fill(1)), undefined, 'int32');
  setup.model.forward({ inputIds: ids8, attentionMask: mask, returnHidden: true }).hidden!.dispose(); lap('forward+mask 8x' + T);
  }
  setup.dispose();
  }
  await disposeBackend();
}, 600000);
