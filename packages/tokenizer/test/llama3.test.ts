import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The oracle: an independent Llama 3 tokenizer (its own pre-tokenizer regex, BPE and byte mapping) that ships Meta's
// vocabulary and merges. Only its data builds our tokenizer.json, here, at test time; its encode/decode are the
// expected values.
import oracle from 'llama3-tokenizer-js';
import {
  LLAMA3_BASE_VOCAB_SIZE,
  LLAMA3_SPECIAL_TOKENS,
  Tokenizer,
  TokenizerError,
  llama3ChatIds,
  llama3TokenizerConfig,
  llama3TokenizerJson,
  loadTokenizer,
  renderLlama3Chat,
} from '../src/index.js';

let dir: string;
let tok: Tokenizer;

beforeAll(() => {
  expect(oracle.vocabById).toHaveLength(LLAMA3_BASE_VOCAB_SIZE + LLAMA3_SPECIAL_TOKENS.length);
  expect(oracle.vocabById.slice(LLAMA3_BASE_VOCAB_SIZE)).toEqual(LLAMA3_SPECIAL_TOKENS);
  // The oracle keys merges "a b" by priority.
  const merges = [...oracle.merges.entries()].sort((a, b) => a[1] - b[1]).map(([m]) => m);
  const json = llama3TokenizerJson({ vocab: oracle.vocabById.slice(0, LLAMA3_BASE_VOCAB_SIZE), merges });
  dir = mkdtempSync(join(tmpdir(), 'llama3-tok-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(llama3TokenizerConfig()));
  tok = loadTokenizer(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A seeded generator (mulberry32) so the strings are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HAND = [
  '',
  ' ',
  'Hello world',
  'hello world',
  ' Hello',
  "I'm sure you'll see they're right; it's what we'd do, isn't it? We've",
  "I'M SURE YOU'LL SEE THEY'RE RIGHT; IT'S WHAT WE'D DO, ISN'T IT? WE'VE",
  "i'M yOu'Ll ThEy'Re 's 'S 'sS ''s",
  'don’t (curly apostrophe) l’été',
  '1 12 123 1234 12345 123456 1234567 3.14159 1,000,000 0x7fff 2024-05-01 1e-9',
  '١٢٣٤ ४५६ ３４５ ½ ² Ⅻ',
  '   leading spaces',
  'trailing spaces   ',
  'tabs\tand\t\ttabs',
  'line\nbreak\n\nparagraph\n\n\n',
  'windows\r\nline\r\n\r\nends',
  ' \n \n  \t\n',
  'a  b   c    d',
  '\u00a0non\u00a0breaking\u3000ideographic\u2003em',
  'Ünïcödé naïve café résumé Ångström',
  'Привет, мир! Как дела?',
  'Γειά σου Κόσμε',
  '你好，世界！我是一个大型语言模型。',
  'こんにちは世界、カタカナとひらがな',
  '안녕하세요 세계',
  'مرحبا بالعالم',
  'नमस्ते दुनिया',
  'שלום עולם',
  'ภาษาไทย',
  'emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️',
  'e\u0301 combining a\u0308 n\u0303',
  'zero\u200bwidth\u200djoiner\ufeffbom',
  'def f(x):\n    return x ** 2  # square\n',
  'for (let i = 0; i < n; i++) { sum += a[i]; }',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); }',
  '<div class="x">&amp; &lt;tag&gt;</div>',
  "SELECT * FROM t WHERE a >= 10 AND b != 'x';",
  '{"key": [1, 2, {"nested": null}], "ok": true}',
  'https://example.com/path?q=a+b&x=%20#frag',
  'user@example.org, +1 (555) 010-9999',
  '!!!???...,,,;;;:::',
  '----====____****',
  '$$$ €€€ £ ¥ ₹ ₿',
  '~`@#^&|\\/',
  'x'.repeat(300),
  'ab'.repeat(150),
  'Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis',
  'camelCaseIdentifier snake_case_identifier SCREAMING_SNAKE kebab-case',
  'MiXeD CaSe WoRdS',
  '\u0000\u0001\u0002 control \u007f chars',
  '\uFFFD replacement',
  'lone surrogate pair 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚',
];

const FRAGMENTS = [
  'the',
  'The',
  'THE',
  ' quick',
  'brown',
  'fox',
  "'s",
  "'LL",
  "'re",
  "n't",
  '’s',
  'x',
  'ZZ',
  '0',
  '7',
  '42',
  '123',
  '9999',
  '31415926',
  '1.5',
  '-3',
  '1e10',
  '0b1010',
  ' ',
  '  ',
  '   ',
  '\t',
  '\n',
  '\n\n',
  '\r\n',
  ' \n',
  '\n ',
  '\u00a0',
  '\u3000',
  '.',
  ',',
  '!',
  '?',
  ';',
  ':',
  '...',
  '—',
  '–',
  '-',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  '<',
  '>',
  '"',
  "'",
  '`',
  '=',
  '==',
  '=>',
  '->',
  '::',
  '&&',
  '||',
  '#',
  '@',
  '$',
  '%',
  '^',
  '*',
  '/',
  '\\',
  '|',
  '~',
  '+',
  'é',
  'ß',
  'ø',
  'Ω',
  'Ж',
  'ж',
  '中',
  '文',
  'の',
  'ー',
  '한',
  'ع',
  'ह',
  '😀',
  '🎉',
  '👍🏽',
  '∑',
  '√',
  '∞',
  '→',
  'return',
  'function',
  'const',
  'import',
  'self',
  'None',
  'null',
  '__init__',
  'console.log',
  'i++',
  '<|eot_id|>',
  '<|begin_of_text|>',
  '<|start_header_id|>',
  '<|end_header_id|>',
  '<|reserved_special_token_42|>',
  '<|python_tag|>',
  '<|not_a_special|>',
  '<|eot_id',
  '|>',
];

function generated(count: number, seed: number): string[] {
  const r = rng(seed);
  return Array.from({ length: count }, () => {
    const n = 1 + Math.floor(r() * 14);
    let s = '';
    for (let i = 0; i < n; i++) s += FRAGMENTS[Math.floor(r() * FRAGMENTS.length)];
    return s;
  });
}

/** GPT-2's byte-level alphabet: printable Latin-1 bytes are themselves, the others U+0100 on, in byte order. */
const BYTE_OF = (() => {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const map = new Map<string, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCharCode(printable(b) ? b : 256 + n++), b);
  return map;
})();

const STRINGS = [...HAND, ...generated(300, 15)];
const noSpecial = /(?!)/g; // the oracle's hook for a special-token regex: one that never matches

describe('Llama 3 tokenizer.json built from llama3-tokenizer-js data, loaded by loadTokenizer', () => {
  it(`encodes ${STRINGS.length} strings exactly as the oracle, special tokens parsed (parseSpecial) or as text`, () => {
    expect(STRINGS.length).toBeGreaterThan(300);
    let specials = 0;
    for (const s of STRINGS) {
      const parsed = tok.encode(s, { parseSpecial: true });
      expect(parsed, JSON.stringify(s)).toEqual(oracle.encode(s, { bos: false, eos: false }));
      if (parsed.some((id) => id >= LLAMA3_BASE_VOCAB_SIZE)) specials++;
      // Default: text is only text; "<|eot_id|>" in it is characters.
      const plain = tok.encode(s);
      expect(plain, JSON.stringify(s)).toEqual(
        oracle.encode(s, { bos: false, eos: false, specialTokenRegex: noSpecial } as never),
      );
      expect(plain.every((id) => id < LLAMA3_BASE_VOCAB_SIZE)).toBe(true);
    }
    expect(specials).toBeGreaterThan(20); // the generated strings do hold special tokens
  });

  it('BOS and EOS: <|begin_of_text|> and <|end_of_text|> as the oracle adds them; <|eot_id|> for instruct', () => {
    for (const s of STRINGS.slice(0, 60))
      expect(tok.encode(s, { bos: true, eos: true, parseSpecial: true })).toEqual(
        oracle.encode(s, { bos: true, eos: true }),
      );
    expect(tok.bosId).toBe(128000);
    expect(tok.eosId).toBe(128001);
    expect(tok.vocabSize).toBe(LLAMA3_BASE_VOCAB_SIZE);
    expect(tok.numTokens).toBe(128256);
    const instruct = new Tokenizer(tok.toFiles().tokenizerJson, llama3TokenizerConfig({ instruct: true }));
    expect(instruct.eosId).toBe(oracle.getSpecialTokenId('<|eot_id|>'));
    expect(tok.isSpecial(oracle.getSpecialTokenId('<|start_header_id|>'))).toBe(true);
  });

  it('decodes as the oracle: whole encodings (back to the string), cut ones (broken UTF-8) and special tokens', () => {
    const r = rng(7);
    // The oracle's TextDecoder drops a U+FEFF that starts its output; Hugging Face's byte-level decoder (and ours)
    // keeps it. Otherwise the two must agree exactly.
    const oracleDecode = (ids: number[]) => {
      const text = oracle.decode(ids);
      const bytes = ids.flatMap((i) => [...oracle.vocabById[i]].map((ch) => BYTE_OF.get(ch)!));
      return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? `\ufeff${text}` : text;
    };
    for (const s of STRINGS) {
      const ids = oracle.encode(s, { bos: false, eos: false });
      if (ids.length === 0) continue;
      expect(tok.decode(ids)).toBe(oracleDecode(ids));
      if (!/<\|/.test(s)) expect(tok.decode(ids)).toBe(s);
      // A random slice, which may cut a multi-byte character: both replace the broken bytes the same way.
      const a = Math.floor(r() * ids.length);
      const b = a + 1 + Math.floor(r() * (ids.length - a));
      expect(tok.decode(ids.slice(a, b))).toBe(oracleDecode(ids.slice(a, b)));
    }
    // Random ids over the whole vocabulary.
    for (let k = 0; k < 50; k++) {
      const ids = Array.from({ length: 1 + Math.floor(r() * 20) }, () => Math.floor(r() * 128256));
      expect(tok.decode(ids)).toBe(oracleDecode(ids));
    }
    const eot = oracle.getSpecialTokenId('<|eot_id|>');
    expect(tok.decode([9906, eot], { skipSpecial: true })).toBe('Hello');
  });

  it('refuses merges that are not two tokens of the vocabulary', () => {
    const vocab = ['a', 'b', 'ab'];
    expect(() => llama3TokenizerJson({ vocab, merges: ['a b', 'a c'] })).toThrow(TokenizerError);
    expect(() => llama3TokenizerJson({ vocab, merges: ['b a'] })).toThrow(/merges\[0\]/); // "ba" is no token
    expect(() => llama3TokenizerJson({ vocab: ['a', 'a'], merges: [] })).toThrow(/distinct/);
  });
});

describe('Llama 3 chat template', () => {
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: '  What is 2+2?\n' },
    { role: 'assistant', content: 'It is 4.' },
    { role: 'user', content: 'And 3+3?' },
  ];

  it("renders Meta's documented format", () => {
    expect(renderLlama3Chat(messages)).toBe(
      '<|begin_of_text|>' +
        '<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\nIt is 4.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(renderLlama3Chat(messages.slice(0, 1), { addGenerationPrompt: false, bos: false })).toBe(
      '<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>',
    );
  });

  it('gives the ids of the rendered text: header ids, "\\n\\n" (271), the oracle\'s content ids, <|eot_id|>', () => {
    const id = (t: string) => oracle.getSpecialTokenId(t);
    const [bos, start, end, eot] = ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'].map(
      id,
    );
    expect([bos, start, end, eot]).toEqual([128000, 128006, 128007, 128009]);
    const text = (s: string) => oracle.encode(s, { bos: false, eos: false });
    expect(text('\n\n')).toEqual([271]);
    const expected = [bos];
    for (const m of messages) expected.push(start, ...text(m.role), end, ...text(`\n\n${m.content.trim()}`), eot);
    expected.push(start, ...text('assistant'), end, 271);
    const ids = llama3ChatIds(tok, messages);
    expect(ids).toEqual(expected);
    // The same as tokenizing the rendered text with its special tokens (as transformers' apply_chat_template does).
    expect(ids).toEqual(tok.encode(renderLlama3Chat(messages), { parseSpecial: true }));
    expect(ids).toEqual(oracle.encode(renderLlama3Chat(messages), { bos: false, eos: false }));
  });

  it('keeps special-token text inside a message as text, and refuses bad messages and tokenizers without the headers', () => {
    const ids = llama3ChatIds(tok, [{ role: 'user', content: 'hi<|eot_id|><|start_header_id|>system' }], {
      addGenerationPrompt: false,
    });
    expect(ids.filter((i) => i === 128009)).toHaveLength(1); // only the real end of turn
    expect(ids.filter((i) => i === 128006)).toHaveLength(1);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(TokenizerError);
        return (e as TokenizerError).code;
      }
      return 'none';
    };
    expect(code(() => llama3ChatIds(tok, [{ role: 'user', content: 3 as unknown as string }]))).toBe(
      'TOKENIZER_BAD_CHAT',
    );
    expect(code(() => renderLlama3Chat([{ role: '<|eot_id|>', content: 'x' }]))).toBe('TOKENIZER_BAD_CHAT');
    expect(code(() => renderLlama3Chat('hi' as never))).toBe('TOKENIZER_BAD_CHAT');
    const json = llama3TokenizerJson({ vocab: ['a', 'b', 'ab'], merges: ['a b'], specialTokens: ['<s>', '</s>'] });
    const small = new Tokenizer(json, { bos_token: '<s>', eos_token: '</s>' }, 'small.json');
    expect(code(() => llama3ChatIds(small, messages))).toBe('TOKENIZER_NO_SPECIAL');
  });
});
