import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultBaseDir } from '@hyperllama/default-model';
import { readHfLlama } from '@hyperllama/llama-model';
import { readGguf } from '@hyperllama/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './helpers.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'convert-gguf-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('hyperllama-eval convert --to gguf', () => {
  it("refuses the embedded base's word-level tokenizer (llama.cpp cannot express it) with exit code 1", async () => {
    const r = await cli('convert', '--from', defaultBaseDir(), '--to', 'gguf', '--out', join(tmp, 'a.gguf'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error TOKENIZER_NOT_GGUF: .*tokenizer\.json: GGUF \(llama\.cpp\) cannot express/);
  });

  it('--vocab ids writes the embedded base as llama.cpp tensors with placeholder tokens', async () => {
    const out = join(tmp, 'base.gguf');
    const r = await cli('convert', '--from', defaultBaseDir(), '--to', 'gguf', '--vocab', 'ids', '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote .*base\.gguf \(GGUF v3, float32, \d+ bytes, vocabulary: ids only\)/);
    const f = readGguf(out);
    const { config, weights } = readHfLlama(defaultBaseDir());
    expect(f.metadata.get('llama.block_count')!.value).toBe(config.numHiddenLayers);
    expect(f.metadata.get('llama.embedding_length')!.value).toBe(config.hiddenSize);
    expect(f.metadata.get('general.name')!.value).toBe('base');
    expect((f.metadata.get('tokenizer.ggml.tokens')!.value as string[]).length).toBe(config.vocabSize);
    expect(f.tensors.find((t) => t.name === 'output.weight')).toBeUndefined(); // tied
    const embd = f.tensors.find((t) => t.name === 'token_embd.weight')!;
    expect(embd.dims).toEqual([config.hiddenSize, config.vocabSize]);
    expect(embd.data).toEqual(weights.get('model.embed_tokens.weight')!.data);
  });

  it('rejects unknown targets and vocabularies, and a checkpoint file without a tokenizer, as usage errors', async () => {
    const out = join(tmp, 'b.gguf');
    expect((await cli('convert', '--from', defaultBaseDir(), '--to', 'onnx', '--out', out)).code).toBe(2);
    expect((await cli('convert', '--from', defaultBaseDir(), '--to', 'gguf', '--vocab', 'x', '--out', out)).code).toBe(
      2,
    );
    const noTok = await cli(
      'convert',
      '--from',
      join(defaultBaseDir(), 'model.safetensors'),
      '--to',
      'gguf',
      '--out',
      out,
    );
    expect(noTok.code).toBe(2);
    expect(noTok.stderr).toContain('needs --tokenizer (or --vocab ids)');
  });
});
