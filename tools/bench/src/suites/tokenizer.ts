import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@hyperllama/runtime';
import { loadTokenizer } from '@hyperllama/tokenizer';
import { median, timeRuns, type BenchRecord, type SuiteOptions } from '../types.js';

const LLAMA2_MODEL = 'tokenizers/llama2/tokenizer.model';

/**
 * Tokenizer speed on the genuine Llama-2 vocabulary (from ../shared; the suite reports nothing without it):
 * converting and loading `tokenizer.model`, encoding a few MB of generated prose (MB/s of UTF-8 input), decoding it.
 */
export async function run(opts: SuiteOptions): Promise<BenchRecord[]> {
  const modelPath = findShared(LLAMA2_MODEL);
  if (!modelPath) {
    console.warn(`tokenizer suite skipped: ../shared/${LLAMA2_MODEL} not found`);
    return [];
  }
  const runs = opts.quick ? 3 : 5;
  const records: BenchRecord[] = [];
  const add = (name: string, metric: string, unit: string, values: number[]): void => {
    records.push({ suite: 'tokenizer', name, backend: 'js', metric, value: median(values), unit, runs: values });
  };

  add('load tokenizer.model (convert + build)', 'time', 'ms', await timeRuns(() => loadTokenizer(modelPath), runs, 0));
  const tok = loadTokenizer(modelPath);

  const text = generateProse(new Rng(2402), opts.quick ? 500_000 : 4_000_000);
  const megabytes = Buffer.byteLength(text, 'utf8') / 1e6;
  let ids: number[] = [];
  const encodeMs = await timeRuns(() => (ids = tok.encode(text)), runs);
  add(
    `encode ${megabytes.toFixed(1)} MB of prose`,
    'throughput',
    'MB/s',
    encodeMs.map((ms) => megabytes / (ms / 1000)),
  );
  add(
    `encode ${megabytes.toFixed(1)} MB of prose`,
    'tokens/s',
    'tokens/s',
    encodeMs.map((ms) => ids.length / (ms / 1000)),
  );
  // Typical use: many short documents (examples of a few hundred characters) encoded one by one.
  const docs = text.split('\n\n');
  const docMs = await timeRuns(() => docs.forEach((d) => tok.encode(d, { bos: true })), runs);
  add(
    `encode ${docs.length} documents one by one`,
    'throughput',
    'MB/s',
    docMs.map((ms) => megabytes / (ms / 1000)),
  );
  const decodeMs = await timeRuns(() => tok.decode(ids), runs);
  add(
    `decode ${ids.length} ids`,
    'throughput',
    'MB/s',
    decodeMs.map((ms) => megabytes / (ms / 1000)),
  );
  return records;
}

/** `rel` under the nearest `shared/` folder above this file (the repository's `../shared`). */
function findShared(rel: string): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'shared', rel);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * About `chars` characters of prose-like text: Zipf-distributed pseudo-words from syllables, capitalised sentences with
 * punctuation, numbers, a little non-ASCII and emoji, paragraphs separated by blank lines.
 */
function generateProse(rng: Rng, chars: number): string {
  const syllables = [
    'ta',
    'ke',
    'ro',
    'mi',
    'lan',
    'dor',
    'the',
    'in',
    'ing',
    'st',
    'er',
    'a',
    'on',
    'pre',
    'ly',
    'ex',
    'qu',
    'ion',
    'ça',
    'ü',
  ];
  const lexicon = Array.from({ length: 5000 }, () =>
    Array.from({ length: 1 + rng.int(3) }, () => rng.pick(syllables)).join(''),
  );
  // Zipf weights 1/rank, sampled by binary search in the cumulative sums.
  const cumulative: number[] = [];
  lexicon.forEach((_, r) => cumulative.push((cumulative[r - 1] ?? 0) + 1 / (r + 1)));
  const zipfWord = (): string => {
    const u = rng.next() * cumulative[cumulative.length - 1];
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lexicon[lo];
  };
  const extras = ['42', '3.14', '2024', '😀', '—', '"quoted"', '(aside)', 'e.g.', 'naïve'];
  const paragraphs: string[] = [];
  let length = 0;
  while (length < chars) {
    const sentences: string[] = [];
    for (let s = 2 + rng.int(6); s > 0; s--) {
      const words = Array.from({ length: 4 + rng.int(16) }, () => (rng.next() < 0.03 ? rng.pick(extras) : zipfWord()));
      words[0] = words[0].charAt(0).toUpperCase() + words[0].slice(1);
      sentences.push(words.join(rng.next() < 0.1 ? ', ' : ' ') + rng.pick(['.', '.', '.', '!', '?']));
    }
    const paragraph = sentences.join(' ');
    paragraphs.push(paragraph);
    length += paragraph.length + 2;
  }
  return paragraphs.join('\n\n');
}
