import * as tf from '@tensorflow/tfjs';
import { it } from 'vitest';
import { run } from '../../../tools/bench/src/suites/lora.js';
it('bench', async () => {
  const { initBackend, disposeBackend } = await import('@hyperllama/runtime');
  await initBackend({ backend: (process.env.BK ?? 'cpu') as 'cpu', threads: 1 });
  const rows = await run({ quick: process.env.QUICK === '1' });
  for (const r of rows) console.log(`${r.name.padEnd(60)} ${r.metric.padEnd(34)} ${r.value.toFixed(4)} ${r.unit} [${r.backend}]`);
  await disposeBackend();
}, 600000);
