// Plain-ASCII word lists the synthetic task families draw from. Short words keep every input and output within
// a few tokens for a byte- or character-level tokenizer.

export const NOUNS = [
  'cat', 'dog', 'sun', 'map', 'cup', 'hat', 'box', 'pen', 'car', 'bus', 'key', 'egg', 'bed', 'fox', 'owl', 'ant',
  'bee', 'cow', 'pig', 'hen', 'jar', 'pot', 'fan', 'toy', 'bag', 'log', 'net', 'rug', 'web', 'zip', 'arm', 'ear',
  'apple', 'river', 'stone', 'candle', 'garden', 'rocket', 'pencil', 'window', 'bridge', 'forest', 'island', 'ladder',
  'mirror', 'orange', 'planet', 'rabbit', 'sailor', 'tiger', 'violin', 'wagon', 'yogurt', 'zebra', 'anchor', 'button',
];

/** Made-up words with no meaning: labels for symbol-tuned classification and values for lookups. */
export const NONSENSE = [
  'blick', 'dax', 'wug', 'fep', 'zorp', 'mip', 'tove', 'gorp', 'snib', 'lunt', 'krad', 'vell', 'quib', 'yorn',
  'plim', 'drax', 'toma', 'fesh', 'glim', 'nark', 'bove', 'crin', 'dulp', 'jex', 'kiv', 'lorb', 'mub', 'prax',
];

export const TOPICS: Record<string, string[]> = {
  animal: ['cat', 'dog', 'cow', 'pig', 'fox', 'owl', 'bee', 'ant', 'hen', 'rat', 'yak', 'elk'],
  color: ['red', 'blue', 'green', 'pink', 'gray', 'gold', 'black', 'white', 'tan', 'teal'],
  fruit: ['apple', 'pear', 'plum', 'fig', 'lime', 'kiwi', 'grape', 'melon', 'peach', 'mango'],
  tool: ['saw', 'drill', 'hammer', 'axe', 'rake', 'spade', 'wrench', 'chisel', 'pliers', 'file'],
};

export const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
export const VOWELS = 'aeiou';

/**
 * Common English words used as task content: arbitrary label words, lookup keys and values, constant answers. Each
 * synthetic task draws its content from one of two disjoint halves (see {@link contentWords}): training episodes
 * only ever see the `train` half, held-out evaluation tasks only the `heldout` half. None of them is a topic word or a
 * noun of the lists above (those are inputs and lookup values of training tasks).
 */
export const CONTENT_WORDS = [
  'yes', 'no', 'good', 'bad', 'true', 'false', 'up', 'down', 'left', 'right', 'hot', 'cold', 'big', 'small', 'old', 'new',
  'high', 'low', 'fast', 'slow', 'open', 'shut', 'rich', 'poor', 'dark', 'light', 'hard', 'soft', 'long', 'short', 'wet', 'dry',
  'north', 'south', 'east', 'west', 'iron', 'wood', 'glass', 'paper', 'milk', 'bread', 'silver', 'brown', 'one', 'two', 'three', 'four',
  'five', 'six', 'seven', 'eight', 'nine', 'ten', 'king', 'queen', 'city', 'town', 'farm', 'ship', 'train', 'road', 'land', 'sea',
  'tree', 'leaf', 'rock', 'sand', 'fire', 'water', 'wind', 'rain', 'snow', 'ice', 'star', 'moon', 'day', 'night', 'year', 'week',
  'man', 'woman', 'child', 'friend', 'war', 'peace', 'law', 'home', 'work', 'play', 'gift', 'book', 'song', 'door', 'wall', 'bank',
];

export type ContentPool = 'train' | 'heldout';

/** One half of a word list: even positions for training content, odd positions for held-out content. */
export function half<T>(items: readonly T[], pool: ContentPool): T[] {
  return items.filter((_, i) => i % 2 === (pool === 'train' ? 0 : 1));
}

/** Arbitrary label words, keys and constant answers of a content pool: half of the made-up words and of {@link CONTENT_WORDS}. */
export function contentWords(pool: ContentPool): string[] {
  return [...half(NONSENSE, pool), ...half(CONTENT_WORDS, pool)];
}

/** Every word a synthetic task can show (a word tokenizer should keep each one a single token). */
export function syntheticVocabulary(): string[] {
  return [...new Set([...NOUNS, ...NONSENSE, ...CONTENT_WORDS, ...Object.values(TOPICS).flat()])];
}
