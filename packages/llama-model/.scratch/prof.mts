import * as tf from '@tensorflow/tfjs';
import { initBackend, disposeBackend } from '@hyperllama/runtime';
import { createLlama, emptyCache, disposeCache } from '@hyperllama/llama-model';
const info = await initBackend({ backend: (process.argv[2] ?? 'wasm') as 'wasm' });
console.log(info.reason);
const model = createLlama({ vocabSize: 32000, hiddenSize: 512, intermediateSize: 1376, numHiddenLayers: 8, numAttentionHeads: 8, numKeyValueHeads: 8,
  headDim: 64, maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false, bosTokenId: 1, eosTokenId: 2 }, { trainable: false });
let cache = emptyCache();
const step = (ids: number[]) => {
  const x = tf.tensor2d([ids], undefined, 'int32');
  const out = model.forward({ inputIds: x, cache, lastLogitsOnly: true });
  x.dispose(); disposeCache(cache); cache = out.cache!;
  out.logits!.dataSync(); out.logits!.dispose();
};
step([1, 2, 3, 4, 5, 6, 7, 8]);
for (let i = 0; i < 3; i++) step([9]);
const t0 = performance.now();
for (let i = 0; i < 20; i++) step([9]);
console.log('ms/step', (performance.now() - t0) / 20);
const prof = await tf.profile(() => step([9]));
const by = new Map<string, number>();
for (const k of prof.kernels) by.set(k.name, (by.get(k.name) ?? 0) + (k.kernelTimeMs as number));
console.log([...by].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([n, t]) => `${n} ${t.toFixed(2)}`).join('\n'), '\nkernels', prof.kernels.length);
// just the matMuls of the linears
const xs = tf.randomNormal([1, 512]);
const w = tf.randomNormal([512, 1376]);
const t1 = performance.now();
for (let i = 0; i < 100; i++) tf.tidy(() => tf.matMul(xs, w).dataSync());
console.log('1x512x1376 matMul ms', (performance.now() - t1) / 100);
await disposeBackend();
