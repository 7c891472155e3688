import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlama } from '@hyperllama/llama-model';
import { disposeBackend, initBackend } from '@hyperllama/runtime';
import { convertModel } from '../src/index.js';
import { cli, writeUntrainedCheckpoint } from './helpers.js';

const SHARED = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared');
const STORIES = join(SHARED, 'models', 'stories260K');
const METAICL = ['glue-sst2', 'ag_news'].map((t) => join(SHARED, 'data', 'metaicl', t));
const SNI = join(SHARED, 'data', 'sni', 'task1732_bbh_boolean_expressions.json');
const needed = [join(STORIES, 'stories260K.bin'), join(STORIES, 'tok512.bin'), ...METAICL, SNI];
const missing = needed.find((p) => !existsSync(p));

describe.skipIf(missing !== undefined)(`hyperllama-eval run on real data (needs ${missing ?? '../shared'})`, () => {
  let tmp: string;
  let modelDir: string;
  let ckpt: string;

  beforeAll(async () => {
    await initBackend({ backend: 'wasm' }); // the pure-JS cpu backend is ~100× slower on these sequence lengths
    tmp = mkdtempSync(join(tmpdir(), 'hyperllama-real-'));
    modelDir = join(tmp, 'stories260K');
    convertModel({ from: join(STORIES, 'stories260K.bin'), tokenizer: join(STORIES, 'tok512.bin'), out: modelDir });
    // An untrained HyperLlama on the real base (fresh hyper LoRA and gists): exercises the full path, not quality.
    const model = loadLlama(modelDir, { trainable: false });
    ckpt = join(tmp, 'ckpt');
    writeUntrainedCheckpoint(model, modelDir, ckpt, { k: 4, r: 4, alpha: 8, seed: 0 });
    model.dispose();
  });
  afterAll(async () => {
    rmSync(tmp, { recursive: true, force: true });
    await disposeBackend();
  });

  it('scores MetaICL tasks by rank classification and an S-NI task by ROUGE-L, writing a well-formed report', async () => {
    const metaicl = join(tmp, 'metaicl');
    mkdirSync(metaicl);
    for (const dir of METAICL) symlinkSync(dir, join(metaicl, dir.split('/').pop()!));
    const common = [
      '--checkpoint',
      ckpt,
      '--methods',
      'zero-shot,icl,hyperllama',
      '--shots',
      '4',
      '--max-instances',
      '4',
      '--max-new-tokens',
      '8',
      '--max-length',
      '512',
      '--backend',
      'wasm',
    ];
    const a = await cli('run', '--tasks', metaicl, '--out', join(tmp, 'metaicl-report'), ...common);
    expect(a.stderr).not.toMatch(/error/i);
    expect(a.code).toBe(0);
    const b = await cli('run', '--tasks', SNI, '--out', join(tmp, 'sni-report'), ...common);
    expect(b.code).toBe(0);

    const ra = JSON.parse(readFileSync(join(tmp, 'metaicl-report', 'results.json'), 'utf8'));
    const rb = JSON.parse(readFileSync(join(tmp, 'sni-report', 'results.json'), 'utf8'));
    for (const m of ['zero-shot', 'icl', 'hyperllama']) {
      expect(ra.methods[m].metric).toBe('accuracy');
      expect(Object.keys(ra.methods[m].tasks).sort()).toEqual(['ag_news', 'glue-sst2']);
      for (const v of Object.values(ra.methods[m].tasks) as number[]) expect(v >= 0 && v <= 1).toBe(true);
      expect(rb.methods[m].metric).toBe('rougeL');
      const [score] = Object.values(rb.methods[m].tasks) as number[];
      expect(score >= 0 && score <= 100).toBe(true);
      expect(ra.methods[m].taskDetails['glue-sst2'].instances).toBe(4);
    }
    expect(ra.methods.icl.configuration.shots).toBe(4);
    expect(readFileSync(join(tmp, 'sni-report', 'methods.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  });
});
