import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLlama, generate, saveLlama, type LlamaModel } from '@hyperllama/llama-model';
import {
  LLAMA3_SPECIAL_TOKENS,
  Tokenizer,
  llama3ChatIds,
  llama3TokenizerConfig,
  llama3TokenizerJson,
} from '@hyperllama/tokenizer';
import { cli } from './helpers.js';

// A Llama 3-style instruct model in miniature: Llama 3's byte-level layout over the 256 byte tokens (no merges) and
// its 256 special tokens (ids 256…511), and a random 2-layer Llama over those 512 ids.

/** GPT-2's byte alphabet: printable Latin-1 bytes are themselves, the others U+0100 on, in byte order. */
function byteAlphabet(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let n = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : 256 + n++));
}

let dir: string;
let model: LlamaModel;
let tok: Tokenizer;

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'hyperllama-chat-'));
  const json = llama3TokenizerJson({ vocab: byteAlphabet(), merges: [] });
  const config = llama3TokenizerConfig({ instruct: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  tok = new Tokenizer(json, config);
  const eot = tok.tokenToId('<|eot_id|>')!;
  model = createLlama(
    {
      vocabSize: 256 + LLAMA3_SPECIAL_TOKENS.length,
      hiddenSize: 32,
      intermediateSize: 48,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 8,
      maxPositionEmbeddings: 256,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: {
        type: 'llama3',
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 64,
      },
      tieWordEmbeddings: true,
      bosTokenId: tok.bosId,
      eosTokenId: 257,
      eosTokenIds: [257, 264, eot],
    },
    { seed: 2, std: 0.3 },
  );
  saveLlama(model, dir);
});
afterAll(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('hyperllama-eval generate --chat', () => {
  it("answers the prompt as a user turn in Llama 3's chat format, as the library does", async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello there' },
    ];
    const ids = llama3ChatIds(tok, messages);
    expect(ids.slice(0, 2)).toEqual([tok.bosId, tok.tokenToId('<|start_header_id|>')]);
    const expected = await generate(model, [ids], { maxNewTokens: 12, tokenizer: tok });
    const r = await cli(
      'generate',
      '--model',
      dir,
      '--chat',
      '--system',
      'Be brief.',
      '--prompt',
      'Hello there',
      '--max-new-tokens',
      '12',
      '--backend',
      'cpu',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(expected.texts![0] + '\n');
    expect(r.stderr).toContain(`prompt ${ids.length} tokens`);
    // Without --chat the same words are plain text after BOS: another, shorter prompt.
    const plain = await cli(
      'generate',
      '--model',
      dir,
      '--prompt',
      'Hello there',
      '--max-new-tokens',
      '2',
      '--backend',
      'cpu',
    );
    expect(plain.stderr).toContain(`prompt ${1 + 'Hello there'.length} tokens`);
  });

  it('refuses --chat with --prefix and --system without --chat', async () => {
    const both = await cli(
      'generate',
      '--model',
      dir,
      '--chat',
      '--prefix',
      'p.safetensors',
      '--prompt',
      'x',
      '--backend',
      'cpu',
    );
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--chat and --prefix/);
    const system = await cli('generate', '--model', dir, '--system', 'x', '--prompt', 'x', '--backend', 'cpu');
    expect(system.code).toBe(2);
    expect(system.stderr).toMatch(/--system needs --chat/);
  });
});
