import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlama, saveLlama } from '@hyperllama/llama-model';
import { getActiveAdapters, withActiveAdapters } from '@hyperllama/lora';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import {
  PieceType,
  Tokenizer,
  saveTokenizer,
  tokenizerConfigFromPieces,
  tokenizerJsonFromPieces,
  type SentencePieceVocab,
} from '@hyperllama/tokenizer';
import { HyperLlama, HypernetError, loadPretrained, saveHyperLlama } from '../src/index.js';
import { tinyModel } from './helpers.js';

/** A character tokenizer of `n` ids (the tiny model's 98 by default): unk, bos, eos, then printable ASCII. */
function tokenizerOf(n = 98): Tokenizer {
  const pieces: SentencePieceVocab['pieces'] = [
    { piece: '<unk>', score: 0, type: PieceType.Unknown },
    { piece: '<s>', score: 0, type: PieceType.Control },
    { piece: '</s>', score: 0, type: PieceType.Control },
  ];
  for (let c = 32; pieces.length < n; c++)
    pieces.push({ piece: c === 32 ? '\u2581' : String.fromCharCode(c), score: -c, type: PieceType.Normal });
  const vocab: SentencePieceVocab = {
    pieces,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    byteFallback: false,
    addDummyPrefix: false,
    removeExtraWhitespaces: false,
  };
  return new Tokenizer(tokenizerJsonFromPieces(vocab), tokenizerConfigFromPieces(vocab), 'test');
}

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as HypernetError).code;
  }
  return undefined;
};

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});
afterAll(() => disposeBackend());

describe('one way in: HyperLlama.fromPretrained and loadPretrained', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pretrained-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const base = join(dir, 'base');
  let gist: Float32Array;

  beforeAll(() => {
    const model = tinyModel(4);
    saveLlama(model, base);
    saveTokenizer(tokenizerOf(), base);
    const hl = new HyperLlama(model, { k: 2, seed: 3 });
    gist = (hl.gistEmbeddings.dataSync() as Float32Array).slice();
    saveHyperLlama(hl, join(dir, 'abs'), { basePath: resolve(base) });
    saveHyperLlama(hl, join(dir, 'rel'), { basePath: '../base' }); // relative to the checkpoint, not to the cwd
    saveHyperLlama(hl, join(dir, 'none'));
    hl.dispose();
    model.dispose();
  });

  it('resolves an absolute or checkpoint-relative base path and the base directory’s tokenizer', () => {
    for (const name of ['abs', 'rel']) {
      const p = HyperLlama.fromPretrained(join(dir, name));
      expect(p.sources).toEqual({ checkpoint: resolve(dir, name), model: resolve(base), tokenizer: resolve(base) });
      expect(p.tokenizer.numTokens - p.tokenizer.gistIds.length).toBe(p.model.config.vocabSize);
      expect(p.hyperllama.gistEmbeddings.dataSync()).toEqual(gist);
      expect(p.config.k).toBe(2);
      expect(p.model.namedWeights().values().next().value!.trainable).toBe(false);
      p.dispose();
    }
  });

  it('returns the model as the downstream model: the hyper adapter runs only inside hyper passes', () => {
    // A checkpoint whose hyper LoRA is not a no-op (B ≠ 0), so running through it changes the logits.
    const model = loadLlama(base);
    const hl = new HyperLlama(model, { k: 2, seed: 3 });
    for (const [name, v] of Object.entries(hl.trainableVariables()))
      if (name.endsWith('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', 7));
    saveHyperLlama(hl, join(dir, 'trained'), { basePath: '../base' });
    hl.dispose();
    model.dispose();

    const p = HyperLlama.fromPretrained(join(dir, 'trained'));
    expect(getActiveAdapters(p.model)).toEqual([]);
    const plain = loadLlama(base);
    const ids = tf.tensor2d([[1, 40, 41, 42, 43]], undefined, 'int32');
    const diff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
    const expected = plain.forward({ inputIds: ids }).logits!;
    expect(diff(p.model.forward({ inputIds: ids }).logits!, expected)).toBe(0);
    const throughHyper = withActiveAdapters(p.model, ['hyper'], () => p.model.forward({ inputIds: ids }).logits!);
    expect(diff(throughHyper, expected)).toBeGreaterThan(1e-3);
    expect(getActiveAdapters(p.model)).toEqual([]);
    plain.dispose();
    p.dispose();
  });

  it('needs a base when none is recorded; an explicit one wins', () => {
    expect(code(() => HyperLlama.fromPretrained(join(dir, 'none')))).toBe('HYPERNET_NO_BASE');
    const p = HyperLlama.fromPretrained(join(dir, 'none'), { model: base });
    expect(p.sources.model).toBe(resolve(base));
    p.dispose();
    expect(code(() => HyperLlama.fromPretrained(join(dir, 'nowhere')))).toBe('HYPERNET_NOT_FOUND');
  });

  it('loadPretrained: a base directory with its tokenizer, which must fit the vocabulary', () => {
    const p = loadPretrained(base);
    expect(p.sources).toEqual({ checkpoint: null, model: resolve(base), tokenizer: resolve(base) });
    expect(tf.memory().numTensors).toBeGreaterThan(0);
    p.dispose();
    saveTokenizer(tokenizerOf(60), join(dir, 'small-tok'));
    expect(code(() => loadPretrained(base, { tokenizer: join(dir, 'small-tok') }))).toBe('TOKENIZER_MISMATCH');
    expect(code(() => loadPretrained(join(base, 'model.safetensors')))).toBe('HYPERNET_NO_TOKENIZER');
  });
});
