import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@hyperllama/runtime';

/** `../shared/<rel>` from the repository root (absent on a fresh clone: tests using it skip). */
export function sharedPath(rel: string): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared', rel);
}

export const LLAMA2_MODEL = sharedPath('tokenizers/llama2/tokenizer.model');
export const LLAMA2_BIN = sharedPath('tokenizers/llama2/tokenizer.bin');
export const LLAMA2_INP = sharedPath('tokenizers/llama2/llama-spm.inp');
export const LLAMA2_OUT = sharedPath('tokenizers/llama2/llama-spm.out');
export const TOK512_MODEL = sharedPath('models/stories260K/tok512.model');
export const TOK512_BIN = sharedPath('models/stories260K/tok512.bin');

/** Suffix for the name of a test that skips when `absent` (a missing file) is set. */
export function skipNote(absent: string | undefined): string {
  return absent ? ` (skipped: ${absent} is missing)` : '';
}

/** Name of the first missing file, for skip messages. */
export function missing(...files: string[]): string | undefined {
  return files.find((f) => !existsSync(f));
}

/** llama.cpp's test vectors: inputs separated by `\n__ggml_vocab_test__\n`, one line of ids per input. */
export function readLlamaCppVectors(inp: string, out: string): Array<{ text: string; ids: number[] }> {
  const texts = readFileSync(inp, 'utf8').split('\n__ggml_vocab_test__\n');
  const lines = readFileSync(out, 'utf8').split('\n');
  // Both files end with a separator / newline, leaving one empty trailing entry.
  texts.pop();
  lines.pop();
  if (texts.length !== lines.length) throw new Error(`${texts.length} inputs but ${lines.length} outputs`);
  return texts.map((text, i) => ({
    text,
    ids: lines[i].trim() === '' ? [] : lines[i].trim().split(/\s+/).map(Number),
  }));
}

export interface FixtureCase {
  text: string;
  ids: number[];
}

/** Ids from the real SentencePiece library (tools/reference/sentencepiece_fixture.py). */
export function sentencePieceFixture(model: 'llama2' | 'tok512'): FixtureCase[] {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'sentencepiece-ids.json');
  return JSON.parse(readFileSync(file, 'utf8')).models[model];
}

const WORDS = [
  'the',
  'The',
  'cat',
  'sat',
  'on',
  'a',
  'mat',
  'Once',
  'upon',
  'time',
  'little',
  'girl',
  'named',
  'Lily',
  'Hello',
  'world',
  "don't",
  "it's",
  'über',
  'naïve',
  'café',
  'Привет',
  'мир',
  '日本語',
  '中文',
  '한국어',
  'مرحبا',
  'שלום',
  'ελληνικά',
  'हिन्दी',
  '42',
  '3.14',
  '1,000',
  '2024-01-01',
  'snake_case',
  'camelCase',
  'function',
  'const',
  'return',
  'f(x)',
  '=>',
  '===',
  '#include',
  'std::vector<int>',
  'SELECT * FROM',
  'http://example.com/a?b=c',
  'e-mail',
];
const PUNCT = [...'.,;:!?()[]{}<>"\'`~@#$%^&*-+=_/\\|'];
const SYMBOLS = [
  '😀',
  '🦙',
  '👍🏽',
  '🇫🇷',
  '👨‍👩‍👧',
  '❤️',
  '🙂',
  '∑',
  '√',
  '€',
  '\u200b',
  '\u00a0',
  '\u3000',
  'é',
  'e\u0301',
  '\ufeff',
];
const SPACES = [' ', '  ', '   ', '\t', '\n', '\n\n', ' \n', '\r\n', '    ', '\t\t'];

/**
 * A varied random string: words in many scripts, punctuation, emoji (with ZWJ and modifiers), digits, code, random
 * code points from several planes, and runs of spaces, tabs and newlines (also leading and trailing).
 */
export function randomText(rng: Rng, opts: { maxParts?: number; spaces?: readonly string[] } = {}): string {
  const spaces = opts.spaces ?? SPACES;
  const parts: string[] = [];
  if (rng.next() < 0.2) parts.push(rng.pick(spaces));
  const n = rng.int((opts.maxParts ?? 16) + 1);
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    if (r < 0.5) parts.push(rng.pick(WORDS));
    else if (r < 0.65) parts.push(rng.pick(PUNCT));
    else if (r < 0.75) parts.push(rng.pick(SYMBOLS));
    else if (r < 0.85) parts.push(String(rng.int(10 ** (1 + rng.int(8)))));
    else
      parts.push(
        String.fromCodePoint(
          rng.pick([0x20 + rng.int(0x5f), 0xa0 + rng.int(0x2f00), 0x4e00 + rng.int(0x5000), 0x1f300 + rng.int(0x800)]),
        ),
      );
    parts.push(rng.next() < 0.3 ? rng.pick(spaces) : ' ');
  }
  if (parts.length && rng.next() < 0.3) parts.pop();
  return parts.join('');
}

// ---- Writers for synthetic tokenizer files (a tiny SentencePiece model and its llama2.c export) ----

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? b | 0x80 : b);
  } while (v);
  return out;
}
const key = (field: number, wire: number): number[] => varint(field * 8 + wire);
export const pbVarint = (field: number, n: number): number[] => [...key(field, 0), ...varint(n)];
export const pbBytes = (field: number, bytes: ArrayLike<number>): number[] => [
  ...key(field, 2),
  ...varint(bytes.length),
  ...Array.from(bytes),
];
export const pbString = (field: number, s: string): number[] => pbBytes(field, new TextEncoder().encode(s));
export function pbFloat(field: number, x: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, x, true);
  return [...key(field, 5), ...b];
}

export interface SyntheticPiece {
  piece: string;
  score: number;
  type: number;
}

/** `<unk>`, `<s>`, `</s>`, the 256 byte pieces, then `normal` (piece, score) in order: ids 259, 260, ... */
export function syntheticPieces(normal: Array<[string, number]>): SyntheticPiece[] {
  return [
    { piece: '<unk>', score: 0, type: 2 },
    { piece: '<s>', score: 0, type: 3 },
    { piece: '</s>', score: 0, type: 3 },
    ...Array.from({ length: 256 }, (_, b) => ({
      piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`,
      score: 0,
      type: 6,
    })),
    ...normal.map(([piece, score]) => ({ piece, score, type: 1 })),
  ];
}

/** A SentencePiece ModelProto (BPE, byte fallback, identity normalizer) holding `pieces`. */
export function sentencePieceModelBytes(
  pieces: SyntheticPiece[],
  opts: { modelType?: number; removeExtraWhitespaces?: boolean; padId?: number } = {},
): Uint8Array {
  const trainer = [
    ...pbVarint(3, opts.modelType ?? 2),
    ...pbVarint(4, pieces.length),
    ...pbVarint(35, 1),
    ...pbVarint(40, 0),
    ...pbVarint(41, 1),
    ...pbVarint(42, 2),
    ...pbVarint(43, opts.padId ?? -1),
  ];
  const normalizer = [
    ...pbString(1, 'identity'),
    ...pbVarint(3, 1),
    ...pbVarint(4, opts.removeExtraWhitespaces ? 1 : 0),
  ];
  const bytes = [
    ...pieces.flatMap((p) => pbBytes(1, [...pbString(1, p.piece), ...pbFloat(2, p.score), ...pbVarint(3, p.type)])),
    ...pbBytes(2, trainer),
    ...pbBytes(3, normalizer),
  ];
  return Uint8Array.from(bytes);
}

/** The same vocabulary as llama2.c's exporter writes it (spaces for `▁`, BOS/EOS wrapped in newlines). */
export function llama2cBytes(pieces: SyntheticPiece[]): Uint8Array {
  const enc = new TextEncoder();
  const texts = pieces.map((p, id) =>
    enc.encode(id === 1 ? '\n<s>\n' : id === 2 ? '\n</s>\n' : p.piece.replaceAll('\u2581', ' ')),
  );
  const out = new Uint8Array(4 + texts.reduce((n, t) => n + 8 + t.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.max(...texts.map((t) => t.length)), true);
  let pos = 4;
  texts.forEach((t, id) => {
    view.setFloat32(pos, pieces[id].score, true);
    view.setInt32(pos + 4, t.length, true);
    out.set(t, pos + 8);
    pos += 8 + t.length;
  });
  return out;
}
