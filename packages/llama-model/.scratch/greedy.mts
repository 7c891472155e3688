import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { loadLlama, generate } from '../src/index.ts';
await tf.setBackend('cpu');
// minimal llama2.c vocab decode for a smoke check
const buf = readFileSync('/work/shared/models/stories260K/tok512.bin');
const dv = new DataView(buf.buffer, buf.byteOffset);
let off = 4; const vocab: string[] = [];
for (let i = 0; i < 512; i++) { off += 4; const len = dv.getInt32(off, true); off += 4; vocab.push(buf.subarray(off, off + len).toString('utf8')); off += len; }
const model = loadLlama('/work/shared/models/stories260K/stories260K.bin');
const t0 = performance.now();
const r = generate(model, [[1]], { maxNewTokens: 260, stopIds: [1] });
console.log((performance.now()-t0)/1000, 's', r.tokens[0].length, r.finishReasons);
let text = r.tokens[0].map((id) => vocab[id]).join('');
text = text.replace(/<0x0A>/g, '\n').replace(/^ /, '');
const expected = readFileSync('/work/shared/models/stories260K/expected_greedy.txt', 'utf8');
console.log(JSON.stringify(r.tokens[0].slice(250).map((id) => vocab[id])));
console.log('MATCH', text === expected, text.trimEnd() === expected.trimEnd());
console.log(tf.memory().numTensors);
