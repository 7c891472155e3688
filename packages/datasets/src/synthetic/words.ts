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
 * Common English words used as task content: arbitrary label words, lookup keys and values, constant answers
 * (frequent words of the default corpus, ranks 40-640, minus the words of the lists above, which are inputs).
 */
export const CONTENT_WORDS = [
  'those', 'public', 'time', 'now', 'under', 'one', 'great', 'new', 'last', 'world', 'years', 'only', 'you', 'war',
  'had', 'there', 'into', 'most', 'his', 'every', 'law', 'present', 'between', 'power', 'some', 'make', 'shall',
  'work', 'own', 'peace', 'also', 'citizens', 'national', 'without', 'against', 'when', 'system', 'part', 'well',
  'many', 'nations', 'act', 'necessary', 'service', 'foreign', 'over', 'two', 'during', 'same', 'out', 'subject',
  'good', 'first', 'what', 'before', 'interest', 'policy', 'laws', 'much', 'men', 'nation', 'through', 'free',
  'important', 'very', 'both', 'increase', 'treaty', 'your', 'just', 'being', 'long', 'duty', 'could', 'right',
  'business', 'within', 'interests', 'about', 'trade', 'means', 'large', 'need', 'action', 'general', 'attention',
  'far', 'future', 'report', 'countries', 'rights', 'military', 'still', 'where', 'purpose', 'way', 'each', 'give',
  'amount', 'progress', 'commerce', 'because', 'past', 'force', 'relations', 'while', 'whole', 'use', 'less',
  'economic', 'security', 'already', 'take', 'day', 'powers', 'help', 'condition', 'economy', 'number', 'fiscal',
  'continue', 'officers', 'after', 'best', 'further', 'hope', 'might', 'among', 'even', 'given', 'life', 'support',
  'her', 'authority', 'better', 'tax', 'high', 'however', 'possible', 'duties', 'state', 'question', 'full',
  'period', 'yet', 'ever', 'since', 'order', 'session', 'effect', 'thus', 'know', 'increased', 'taken', 'money',
  'proper', 'meet', 'revenue', 'toward', 'done', 'recommend', 'course', 'result', 'place', 'program', 'freedom',
  'too', 'debt', 'home', 'land', 'believe', 'labor', 'control', 'provide', 'measures', 'together', 'certain', 'come',
  'making', 'like', 'view', 'justice', 'several', 'end', 'care', 'become', 'here', 'never', 'political', 'again',
  'secure', 'defense', 'next', 'then', 'having', 'lands', 'children', 'vessels', 'character', 'private', 'health',
  'existing', 'million', 'effort', 'therefore', 'claims', 'fact', 'value', 'spirit', 'whether', 'received', 'others',
  'pay', 'plan', 'greater', 'three', 'special', 'resources', 'change', 'cost', 'common', 'due', 'itself', 'per',
  'small', 'forces', 'efforts', 'found', 'property', 'regard', 'another', 'until', 'millions', 'man', 'matter',
  'history', 'case', 'jobs', 'required', 'needs', 'capital', 'strength', 'provided', 'provision', 'put', 'want',
  'always', 'proposed', 'respect', 'him', 'cause', 'whose', 'either', 'few', 'say', 'local', 'growth', 'budget',
  'education', 'annual', 'see', 'industry', 'paid', 'aid', 'civil', 'down', 'cases', 'dollars', 'equal', 'protect',
  'able', 'reason', 'message', 'results', 'early', 'brought', 'energy', 'programs', 'strong', 'keep', 'billion',
  'bring', 'does', 'called', 'including', 'measure', 'ought', 'total', 'nearly', 'passed', 'affairs', 'territory',
  'line', 'ago', 'domestic', 'how', 'necessity', 'sum', 'form', 'minister', 'ask', 'prevent', 'continued',
  'different', 'rate', 'welfare', 'effective', 'let', 'naval', 'community', 'said', 'nor', 'cannot', 'maintain',
  'once', 'working', 'reduction', 'true', 'receipts', 'friendly', 'permanent', 'times', 'opinion', 'tonight',
  'banks', 'fully', 'extent', 'get', 'purposes', 'human', 'held', 'require', 'desire', 'essential', 'soon', 'cent',
  'tariff', 'parties', 'problems', 'reform', 'demand', 'price', 'self', 'months', 'submitted', 'principle',
  'families', 'operation', 'abroad', 'back', 'office', 'percent', 'adequate', 'bill', 'income', 'success', 'today',
  'rates', 'estimated', 'persons', 'set', 'terms', 'exercise', 'object', 'adopted', 'call', 'immediate', 'needed',
  'things', 'agreement', 'did', 'four', 'remain', 'products', 'serious', 'half', 'faith', 'questions', 'class',
  'payment', 'think', 'fair', 'ships', 'currency', 'almost', 'benefit', 'building', 'various', 'open', 'providing',
  'taxes', 'portion', 'surplus', 'close', 'entire', 'receive', 'reduced', 'credit', 'known', 'point', 'least',
  'find', 'growing', 'recent', 'engaged', 'ourselves', 'little', 'trust', 'real', 'acts', 'old', 'presented',
  'benefits', 'favor', 'issue', 'lives', 'social', 'century', 'financial', 'prices', 'alone', 'honor', 'position',
  'relief', 'problem', 'basis', 'return', 'supply', 'subjects', 'expected', 'balance', 'left', 'beyond', 'appointed',
  'workers', 'complete', 'schools', 'afford', 'fellow', 'whom', 'sense', 'family', 'reduce', 'courts', 'greatly',
  'silver', 'favorable', 'extended', 'influence', 'ports', 'citizen', 'lines', 'believed', 'expenses', 'troops',
  'single', 'direct', 'women', 'safety', 'nothing', 'coast', 'ending', 'liberty', 'actual', 'danger', 'manner',
  'produce', 'current', 'hands', 'used', 'advantage', 'hand', 'late', 'services', 'market', 'living', 'field',
  'higher', 'wise', 'clear', 'notes', 'school', 'created', 'laid', 'pass', 'carry', 'forward', 'lead', 'build',
  'vast', 'doubt', 'she', 'sound', 'treaties', 'kind', 'direction', 'major', 'objects', 'face', 'party', 'second',
  'bonds', 'often', 'sure', 'above', 'bank', 'greatest', 'promote', 'cut', 'difficult', 'look', 'members', 'methods',
  'similar', 'water', 'highest', 'reached', 'share', 'advance', 'job', 'natural', 'short', 'executive', 'longer',
  'court', 'days', 'tribes', 'internal', 'works', 'crime', 'limits', 'nature', 'parts', 'situation', 'though',
  'carried', 'five', 'seek', 'wisdom', 'degree', 'live', 'conduct', 'directed', 'shown', 'stand', 'committed',
  'safe', 'expense', 'enough', 'ready', 'hold', 'hoped', 'demands', 'former', 'revenues', 'spending', 'urge', 'show',
  'enable', 'example', 'moment', 'principal', 'serve', 'side', 'why', 'areas', 'branch', 'causes', 'hard', 'met',
  'mutual', 'previous', 'recently', 'vital', 'account', 'deficit',
];

/** Every content word: made-up words and {@link CONTENT_WORDS}. */
export const CONTENT = [...NONSENSE, ...CONTENT_WORDS];

/**
 * Which content a task shows: `train` (what training episodes draw) or `heldout` (what held-out tasks draw). Words
 * are shared, so training teaches reading and copying any of them; what is held out is the content itself: a label
 * assignment, a lookup table, a constant answer (see {@link isHeldOutContent}).
 */
export type ContentPool = 'train' | 'heldout';

/**
 * Whether a piece of task content (e.g. `['lookup', key1, value1, …]`) is reserved for held-out tasks: a quarter of
 * all contents, by a hash (FNV-1a) of its parts. Training never draws held-out content; held-out tasks draw only it.
 */
export function isHeldOutContent(parts: readonly string[]): boolean {
  let h = 0x811c9dc5;
  for (const ch of parts.join('\u0001')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 4 === 0;
}

/** Every word a synthetic task can show (a word tokenizer should keep each one a single token). */
export function syntheticVocabulary(): string[] {
  return [...new Set([...NOUNS, ...CONTENT, ...Object.values(TOPICS).flat()])];
}
