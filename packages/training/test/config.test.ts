import { describe, expect, it } from 'vitest';
import {
  METHODS,
  PREFIX_INITS,
  SCHEMA,
  STAGES,
  TrainerError,
  applyPatch,
  charTokenizer,
  defaultConfig,
  optionHelp,
  parseSetting,
  type TrainConfig,
} from '../src/index.js';

/** The dotted paths of an object's leaves (arrays are leaves). */
function leafPaths(x: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(x).flatMap(([k, v]) => {
    const path = prefix ? `${prefix}.${k}` : k;
    const isNode = typeof v === 'object' && v !== null && !Array.isArray(v) && !('kind' in v && 'help' in v);
    return isNode ? leafPaths(v as Record<string, unknown>, path) : [path];
  });
}

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as TrainerError).code;
  }
  return undefined;
};

describe('the config schema is the one source of truth', () => {
  it('every stage default has exactly the schema’s options, and validates against it', () => {
    const schemaPaths = leafPaths(SCHEMA).sort();
    for (const stage of STAGES) {
      const cfg = defaultConfig(stage);
      expect(leafPaths(cfg as unknown as Record<string, unknown>).sort()).toEqual(schemaPaths);
      expect(applyPatch(cfg, cfg, 'defaults')).toEqual(cfg);
    }
  });

  it('the enum options list the exported values', () => {
    expect(SCHEMA.method.values).toEqual(METHODS);
    expect(SCHEMA.prefix.init.values).toEqual(PREFIX_INITS);
    const method: TrainConfig['method'] = 'shared-prefix';
    expect(applyPatch(defaultConfig('multitask'), { method }, 'test').method).toBe('shared-prefix');
  });

  it('rejects unknown keys, bad values and prototype keys, naming the path', () => {
    const base = defaultConfig('multitask');
    expect(code(() => applyPatch(base, { stepz: 3 }, 'test'))).toBe('CONFIG_UNKNOWN_KEY');
    expect(code(() => applyPatch(base, { steps: 0 }, 'test'))).toBe('CONFIG_BAD_VALUE');
    expect(code(() => applyPatch(base, { hyper: { scheme: 'sideways' } }, 'test'))).toBe('CONFIG_BAD_VALUE');
    expect(code(() => applyPatch(base, { model: { base: '' } }, 'test'))).toBe('CONFIG_BAD_VALUE');
    expect(code(() => applyPatch(base, JSON.parse('{"__proto__": {"x": 1}}'), 'test'))).toBe('CONFIG_UNKNOWN_KEY');
    expect(
      applyPatch(base, { model: { base: null, vocabSize: null }, hyper: { targetModules: ['q_proj'] } }, 'test'),
    ).toMatchObject({
      model: { base: null, vocabSize: null },
      hyper: { targetModules: ['q_proj'] },
    });
  });

  it('parses --set values by the leaf’s kind', () => {
    expect(parseSetting('hyper.k=3')).toEqual({ hyper: { k: 3 } });
    expect(parseSetting('model.base=null')).toEqual({ model: { base: null } });
    expect(parseSetting('hyper.targetModules=["q_proj","v_proj"]')).toEqual({
      hyper: { targetModules: ['q_proj', 'v_proj'] },
    });
    expect(code(() => parseSetting('nope.x=1'))).toBe('CONFIG_UNKNOWN_KEY');
  });

  it('help lists only the options that matter to the stage', () => {
    const help = optionHelp('pretrain-base').join('\n');
    expect(help).toContain('data.textFraction');
    expect(help).not.toMatch(/^  method /m);
    expect(optionHelp('multitask').join('\n')).toContain('hyperllama|icl|zero-shot|shared-prefix');
  });

  it('the built-in character tokenizer has 356 ids (3 special, 256 bytes, 97 characters)', () => {
    expect(charTokenizer().numTokens).toBe(356);
  });
});
