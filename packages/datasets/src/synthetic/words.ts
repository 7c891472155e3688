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
