import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HyperLlama, HypernetError } from '@hyperllama/hypernet';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { defaultBaseDir, defaultHyperLlamaDir } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});
afterAll(() => disposeBackend());

describe('@hyperllama/default-model', () => {
  it('loads the checkpoint with the base it records (relative path, matching weight hash)', () => {
    const { hyperllama, model, tokenizer, sources } = HyperLlama.fromPretrained(defaultHyperLlamaDir());
    expect(sources.model).toBe(join(defaultHyperLlamaDir(), '..', 'base'));
    expect(model.config.numHiddenLayers).toBe(4);
    expect(model.config.hiddenSize).toBe(192);
    expect(tokenizer.vocabSize).toBe(model.config.vocabSize);
    expect(hyperllama.k).toBe(4);
    hyperllama.dispose();
    model.dispose();
  });

  it('refuses the checkpoint on a base whose weights differ (the recorded hash is checked)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'default-model-'));
    try {
      cpSync(defaultBaseDir(), join(dir, 'base'), { recursive: true });
      cpSync(defaultHyperLlamaDir(), join(dir, 'hyperllama'), { recursive: true });
      // Perturb one byte of the base's weights: the checkpoint must no longer load onto it.
      const file = join(dir, 'base', 'model.safetensors');
      const bytes = new Uint8Array(readFileSync(file));
      bytes[bytes.length - 4] ^= 0x01; // the low mantissa byte of the last float32: a tiny, finite change
      writeFileSync(file, bytes);
      expect(() => HyperLlama.fromPretrained(join(dir, 'hyperllama'))).toThrow(HypernetError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      tf.disposeVariables();
    }
  });
});
