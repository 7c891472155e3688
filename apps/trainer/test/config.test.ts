import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  SCHEMA,
  STAGES,
  TrainerError,
  WORD_VOCAB_SIZE,
  buildJob,
  defaultConfig,
  englishLexicon,
  resolveTokenizer,
  shotRange,
} from '@hyperllama/training';
import { extendWordTokenizer, loadTokenizer, type Tokenizer } from '@hyperllama/tokenizer';
import { main, resolveConfig, stageHelp } from '../src/index.js';
import { memoryIo } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'trainer-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function error(f: () => unknown): TrainerError {
  try {
    f();
  } catch (e) {
    return e as TrainerError;
  }
  throw new Error('expected an error');
}

/** Every leaf path of the schema. */
function leafPaths(schema: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(schema).flatMap(([k, v]) => {
    const path = prefix ? `${prefix}.${k}` : k;
    return typeof (v as { kind?: unknown }).kind === 'string' && typeof (v as { help?: unknown }).help === 'string'
      ? [path]
      : leafPaths(v as Record<string, unknown>, path);
  });
}

describe('configuration', () => {
  it('reads YAML and JSON alike; flags override the file', () => {
    const yaml = file(
      'a.yaml',
      'steps: 7\nlr: 0.5\nhyper:\n  k: 3\n  targetModules: [q_proj, v_proj]\ndata:\n  tasks: /x/tasks\n',
    );
    const json = file(
      'a.json',
      JSON.stringify({
        steps: 7,
        lr: 0.5,
        hyper: { k: 3, targetModules: ['q_proj', 'v_proj'] },
        data: { tasks: '/x/tasks' },
      }),
    );
    const fromYaml = resolveConfig('multitask', { config: yaml });
    expect(fromYaml).toEqual(resolveConfig('multitask', { config: json }));
    expect(fromYaml).toMatchObject({
      steps: 7,
      lr: 0.5,
      hyper: { k: 3, targetModules: ['q_proj', 'v_proj'], r: 8 },
      data: { tasks: '/x/tasks' },
    });
    const overridden = resolveConfig('multitask', {
      config: yaml,
      steps: '9',
      method: 'icl',
      set: ['hyper.k=5', 'data.tasks=null'],
    });
    expect(overridden).toMatchObject({ steps: 9, method: 'icl', hyper: { k: 5 }, data: { tasks: null } });
  });

  it('every shipped config in configs/ is valid; the six default-base phases match the committed embedded model', () => {
    const configs = join(dirname(fileURLToPath(import.meta.url)), '..', 'configs');
    const files = readdirSync(configs).filter((f) => f.endsWith('.yaml'));
    expect(files).toEqual(
      expect.arrayContaining(['default-base-copy.yaml', 'default-base.yaml', 'default-base-open.yaml']),
    );
    for (const f of files) expect(() => resolveConfig('pretrain-base', { config: join(configs, f) })).not.toThrow();
    // Phase 1 from scratch with the built-in word tokenizer; phase 2 continues from phase 1's exported model. Both on
    // the default corpus and the synthetic training kinds (no task file that could hold held-out tasks).
    const copy = resolveConfig('pretrain-base', { config: join(configs, 'default-base-copy.yaml') });
    const episodes = resolveConfig('pretrain-base', { config: join(configs, 'default-base.yaml') });
    expect(copy.model).toMatchObject({ base: null, tokenizer: 'builtin:word' });
    expect(copy.data).toMatchObject({ repeatFraction: 1, textFraction: 0 });
    expect(episodes.model).toMatchObject({ base: 'runs/default-base-copy/final/model', tokenizer: null });
    // Phase 3 continues from phase 2 with common English words in half the episodes and repeat rows.
    const open = resolveConfig('pretrain-base', { config: join(configs, 'default-base-open.yaml') });
    expect(open.model).toMatchObject({ base: 'runs/default-base/final/model', tokenizer: null });
    expect(open.data).toMatchObject({ openLexicon: 0.5, shots: 16, maxLength: 512 });
    // Phase 4 adds the English words to phase 3's tokenizer; phases 5 and 6 continue from the grown model.
    const phase = (f: string) => resolveConfig('pretrain-base', { config: join(configs, f) });
    const words = phase('default-base-words.yaml');
    expect(words.model).toMatchObject({ base: 'runs/default-base-open/final/model', addWords: 'english' });
    expect(phase('default-base-copy-words.yaml').model).toMatchObject({
      base: 'runs/default-base-words/final/model',
      addWords: null,
    });
    expect(phase('default-base-words-2.yaml').model).toMatchObject({
      base: 'runs/default-base-copy-words/final/model',
      addWords: null,
    });
    for (const cfg of [copy, episodes, open, words]) expect(cfg.data).toMatchObject({ tasks: null, corpus: null });
    const asset = join(configs, '..', '..', '..', 'packages', 'default-model', 'base');
    if (existsSync(join(asset, 'config.json'))) {
      const hf = JSON.parse(readFileSync(join(asset, 'config.json'), 'utf8'));
      const m = copy.model;
      expect([
        hf.hidden_size,
        hf.num_hidden_layers,
        hf.num_attention_heads,
        hf.num_key_value_heads,
        hf.intermediate_size,
      ]).toEqual([m.hiddenSize, m.numHiddenLayers, m.numAttentionHeads, m.numKeyValueHeads, m.intermediateSize]);
      // The committed tokenizer is phase 1's built-in word tokenizer grown by the English words, id for id.
      const grown = extendWordTokenizer(
        resolveTokenizer(copy),
        englishLexicon().inputs.map((w) => ` ${w}`),
      ).tokenizer;
      expect(hf.vocab_size).toBe(grown.vocabSize);
      const vocabOf = (t: Tokenizer) => (t.toFiles().tokenizerJson.model as { vocab: Record<string, number> }).vocab;
      expect(vocabOf(loadTokenizer(asset))).toEqual(vocabOf(grown));
    }
  });

  it('rejects unknown keys and bad values, naming the key path', () => {
    const unknown = error(() => resolveConfig('multitask', { config: file('u.yaml', 'hyper:\n  kk: 3\n') }));
    expect(unknown).toBeInstanceOf(TrainerError);
    expect(unknown.code).toBe('CONFIG_UNKNOWN_KEY');
    expect(unknown.message).toContain('"hyper.kk"');
    const badValue = error(() => resolveConfig('multitask', { config: file('b.json', '{"hyper": {"k": 0}}') }));
    expect(badValue.code).toBe('CONFIG_BAD_VALUE');
    expect(badValue.message).toMatch(/"hyper\.k": expected an integer ≥ 1, got 0/);
    expect(error(() => resolveConfig('multitask', { method: 'telepathy' })).message).toMatch(
      /"method": expected one of hyperllama, icl, zero-shot, shared-prefix/,
    );
    expect(error(() => resolveConfig('multitask', { steps: 'many' })).message).toContain('"steps"');
    expect(error(() => resolveConfig('multitask', { set: ['nope.x=1'] })).code).toBe('CONFIG_UNKNOWN_KEY');
    expect(error(() => resolveConfig('multitask', { config: file('c.yaml', 'steps: [1, 2\n') })).code).toBe(
      'CONFIG_BAD_SYNTAX',
    );
  });

  it('--help of each stage explains every option it uses', async () => {
    for (const stage of STAGES) {
      const help = stageHelp(stage);
      for (const path of leafPaths(SCHEMA as Record<string, unknown>)) {
        const stages = path.split('.').reduce((node: any, key) => node[key], SCHEMA).stages as string[] | undefined;
        if (stages && !stages.includes(stage)) {
          expect(help, `${stage} ${path}`).not.toContain(`  ${path} `);
          continue;
        }
        expect(help, `${stage} ${path}`).toContain(`  ${path} `);
      }
      let printed = '';
      expect(await main([stage, '--help'], memoryIo(), (s) => (printed += s))).toBe(0);
      expect(printed).toBe(help + '\n');
      expect(help).toContain(JSON.stringify(defaultConfig(stage).steps));
    }
    const io = memoryIo();
    expect(await main(['multitask', '--bogus'], io, () => {})).toBe(2);
    expect(io.lines.join('\n')).toMatch(/USAGE.*bogus/);
    expect(await main(['fly'], memoryIo(), () => {})).toBe(2);
  });
});

describe('progress', () => {
  it('draws a bar on a terminal and writes log lines every logEvery steps otherwise', async () => {
    const { Progress } = await import('@hyperllama/training');
    const bar: string[] = [];
    const tty = new Progress({ isTTY: true, log: () => {}, status: (l) => bar.push(l) }, 10, 5);
    tty.update(5, 1.23456, 1000);
    expect(bar[0]).toMatch(/^\[#{12}\.{12}\] step 5\/10 {2}loss 1\.2346 {2}1000 tok\/s {2}ETA \d+s$/);
    const lines: string[] = [];
    const plain = new Progress({ isTTY: false, log: (l) => lines.push(l), status: () => {} }, 10, 5);
    for (let s = 1; s <= 10; s++) plain.update(s, 1, 10);
    expect(lines.map((l) => l.split('  ')[0])).toEqual(['step 5/10', 'step 10/10']);
  });
});

describe('shots and the built-in tokenizers', () => {
  it('draws shots in [data.minShots, data.shots] and rejects a minimum above the maximum', () => {
    const cfg = defaultConfig('multitask');
    expect(shotRange({ ...cfg, data: { ...cfg.data, shots: 8, minShots: null } })).toBe(8);
    expect(shotRange({ ...cfg, data: { ...cfg.data, shots: 8, minShots: 2 } })).toEqual([2, 8]);
    let caught: unknown;
    try {
      shotRange({ ...cfg, data: { ...cfg.data, shots: 4, minShots: 6 } });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TrainerError);
    expect((caught as TrainerError).message).toContain('data.minShots');
  });

  it('model.vocabSize sizes the built-in word tokenizer and is refused for any other tokenizer', () => {
    const cfg = defaultConfig('pretrain-base');
    const small = resolveTokenizer({ ...cfg, model: { ...cfg.model, tokenizer: 'builtin:word', vocabSize: 2048 } });
    expect(small.numTokens).toBe(2048);
    // The task words stay whole at the smaller size; the corpus words past it fall back to characters.
    expect(small.encode(' dax', { bos: false, eos: false })).toHaveLength(1);
    const refused = (model: Partial<typeof cfg.model>) => {
      try {
        resolveTokenizer({ ...cfg, model: { ...cfg.model, ...model } });
      } catch (e) {
        return e as { code?: string; message: string };
      }
      return undefined;
    };
    const char = refused({ tokenizer: 'builtin:char', vocabSize: 2048 });
    expect(char).toBeInstanceOf(TrainerError);
    expect(char?.message).toContain('model.vocabSize');
    // Fewer ids than the tasks' words: the tokenizer package's typed error names the size it needs.
    expect(refused({ tokenizer: 'builtin:word', vocabSize: 100 })?.code).toBe('TOKENIZER_BAD_OPTION');
  });

  it('builtin:word makes whole words single tokens and round-trips any text; builtin:char spells characters', () => {
    const cfg = defaultConfig('pretrain-base');
    const word = resolveTokenizer({ ...cfg, model: { ...cfg.model, tokenizer: 'builtin:word' } });
    expect(word.numTokens).toBe(WORD_VOCAB_SIZE);
    const ids = word.encode('Input: the dax\nOutput: blick', { bos: false, eos: false });
    expect(ids.map((id) => word.idToToken(id))).toEqual(['Input', ':', ' the', ' dax', '\n', 'Output', ':', ' blick']);
    const odd = 'Zyzzyva — naïve 😀  tabs\there';
    expect(word.decode(word.encode(odd, { bos: false, eos: false }))).toBe(odd);
    const char = resolveTokenizer({ ...cfg, model: { ...cfg.model, tokenizer: 'builtin:char' } });
    expect(char.encode('the', { bos: false, eos: false }).length).toBe(3);
  });
});

describe('pretrain-base row mixture', () => {
  it('rejects text and repeat shares that add up to more than 1, naming data.repeatFraction', () => {
    const cfg = defaultConfig('pretrain-base');
    let caught: unknown;
    try {
      buildJob('pretrain-base', { ...cfg, data: { ...cfg.data, textFraction: 0.8, repeatFraction: 0.5 } });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TrainerError);
    expect((caught as TrainerError).message).toMatch(/data\.repeatFraction/);
  });

  it('rejects repeat rows with a tokenizer that has no whole-word tokens (the character tokenizer)', () => {
    const cfg = defaultConfig('pretrain-base');
    expect(() =>
      buildJob('pretrain-base', { ...cfg, data: { ...cfg.data, textFraction: 0.5, repeatFraction: 0.2 } }),
    ).toThrow(/whole-word tokens/);
  });
});
