import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Prefix } from '@hyperllama/gist-attention';
import { getActiveAdapters, injectLora, loraParameters, setActiveAdapters } from '@hyperllama/lora';
import { Rng, disposeBackend, initBackend } from '@hyperllama/runtime';
import { HypernetError, PrefixTuning, initPrefixTuning } from '../src/index.js';
import { charEncoder, tinyModel, varData } from './helpers.js';

// initPrefixTuning is the one start of prefix tuning (trainer and eval): each initialisation must equal the
// PrefixTuning constructor it stands for, under the adapters it names.

let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  dir = mkdtempSync(join(tmpdir(), 'prefix-init-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await disposeBackend();
});

const sampleIds = [charEncoder.encode('Input: apple\nOutput: zorp')];
const dataOf = (pt: PrefixTuning) => [...pt.keys, ...pt.values].map(varData);

/** A prefix of [batch, 2 kv heads, 3, 8] per layer (the tiny model's head layout), distinct values per row. */
function somePrefix(layers: number, batch: number, scheme: 'restart' | 'continue' = 'restart'): Prefix {
  const rng = new Rng(7);
  const t = () => tf.tensor4d(rng.normalArray(batch * 2 * 3 * 8, 0, 1), [batch, 2, 3, 8]);
  const keys = Array.from({ length: layers }, t);
  const values = Array.from({ length: layers }, t);
  return new Prefix({ keys, values, length: 3, scheme, positionOffsets: Array.from({ length: batch }, () => 3) });
}

describe('initPrefixTuning', () => {
  it('random: equals PrefixTuning.random under the named adapters, and leaves the active adapters as they were', () => {
    const model = tinyModel(4);
    injectLora(model, { name: 'downstream', r: 4, alpha: 8, targetModules: ['k_proj', 'v_proj'] });
    // B starts at zero (the adapter would be a no-op): give it weights so that it changes the keys and values.
    const rng = new Rng(3);
    for (const v of loraParameters(model, 'downstream')) v.assign(tf.tensor(rng.normalArray(v.size, 0, 0.5), v.shape));

    setActiveAdapters(model, []);
    const plain = PrefixTuning.random(model, 3, { sampleIds, seed: 2 });
    setActiveAdapters(model, ['downstream']);
    const adapted = PrefixTuning.random(model, 3, { sampleIds, seed: 2 });
    expect(dataOf(adapted)).not.toEqual(dataOf(plain));

    // Adapter on, start asked without it: the draw is the plain one; the adapter is back on afterwards.
    const off = initPrefixTuning(model, 'random', { length: 3, sampleIds, seed: 2, adapters: [] });
    expect(dataOf(off)).toEqual(dataOf(plain));
    expect(getActiveAdapters(model)).toEqual(['downstream']);
    // No adapters named: whatever is active.
    const asIs = initPrefixTuning(model, 'random', { length: 3, sampleIds, seed: 2 });
    expect(dataOf(asIs)).toEqual(dataOf(adapted));
    // Another seed, another draw.
    const other = initPrefixTuning(model, 'random', { length: 3, sampleIds, seed: 5 });
    expect(dataOf(other)).not.toEqual(dataOf(adapted));

    for (const p of [plain, adapted, off, asIs, other]) p.dispose();
    model.dispose();
  });

  it('shared: row 0 of the prefix, the same from the Prefix and from its saved file', () => {
    const model = tinyModel(4);
    const shared = somePrefix(model.config.numHiddenLayers, 2);
    const file = join(dir, 'shared.safetensors');
    shared.save(file, { config: model.config });
    const fromPrefix = initPrefixTuning(model, 'shared', { shared });
    const fromFile = initPrefixTuning(model, 'shared', { shared: file });
    const row0 = shared.row(0);
    const expected = [...row0.keys, ...row0.values].map(varData);
    expect(dataOf(fromPrefix)).toEqual(expected);
    expect(dataOf(fromFile)).toEqual(expected);
    expect(fromPrefix.length).toBe(3);
    for (const p of [fromPrefix, fromFile, row0, shared]) p.dispose();
    model.dispose();
  });

  it('hyper: copies a "restart" prefix, refuses a "continue" one and a missing source', () => {
    const model = tinyModel(4);
    const hyper = somePrefix(model.config.numHiddenLayers, 1);
    const tuned = initPrefixTuning(model, 'hyper', { hyper });
    expect(dataOf(tuned)).toEqual([...hyper.keys, ...hyper.values].map(varData));
    tuned.dispose();
    // The caller's prefix stays usable (the tuning holds copies).
    expect(varData(hyper.keys[0]).length).toBe(2 * 3 * 8);

    const continued = somePrefix(model.config.numHiddenLayers, 1, 'continue');
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(HypernetError);
        return (e as HypernetError).code;
      }
      return 'no error';
    };
    expect(codeOf(() => initPrefixTuning(model, 'hyper', { hyper: continued }))).toBe('HYPERNET_BAD_OPTION');
    expect(codeOf(() => initPrefixTuning(model, 'hyper', {}))).toBe('HYPERNET_BAD_OPTION');
    expect(codeOf(() => initPrefixTuning(model, 'shared', {}))).toBe('HYPERNET_BAD_OPTION');
    expect(codeOf(() => initPrefixTuning(model, 'random', { sampleIds }))).toBe('HYPERNET_BAD_OPTION');
    for (const p of [hyper, continued]) p.dispose();
    model.dispose();
  });
});
