import { EvalError } from './errors.js';
import { porterStem } from './porter.js';

/**
 * ROUGE-L's tokenisation as `rouge_score`'s default tokenizer does it (the one Super-NaturalInstructions'
 * official evaluation uses for English): lowercase, every run of characters other than `a-z0-9` becomes a space,
 * split on whitespace, Porter-stem words longer than three characters (S-NI passes `use_stemmer=True`), and drop
 * empty tokens.
 */
export function rougeTokenize(text: string, opts: { stem?: boolean } = {}): string[] {
  const stem = opts.stem ?? true;
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .split(/\s+/)
    .map((t) => (stem && t.length > 3 ? porterStem(t) : t))
    .filter((t) => /^[a-z0-9]+$/.test(t));
}

/** Length of the longest common subsequence of two token lists (O(|a|·|b|) time, O(|b|) memory). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = Array.from({ length: b.length + 1 }, () => 0);
  for (const x of a) {
    const row = Array.from({ length: b.length + 1 }, () => 0);
    for (let j = 1; j <= b.length; j++) row[j] = x === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], row[j - 1]);
    prev = row;
  }
  return prev[b.length];
}

export interface RougeLScore {
  precision: number; // LCS / prediction tokens
  recall: number; // LCS / reference tokens
  fmeasure: number; // harmonic mean; 0 when either side has no tokens
}

/** Sentence-level ROUGE-L of one prediction against one reference, as fractions in [0, 1]. */
export function rougeL(prediction: string, reference: string, opts: { stem?: boolean } = {}): RougeLScore {
  const p = rougeTokenize(prediction, opts);
  const r = rougeTokenize(reference, opts);
  if (p.length === 0 || r.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(r, p);
  const precision = lcs / p.length;
  const recall = lcs / r.length;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

function checkReferences(references: readonly string[], metric: string): void {
  if (references.length === 0)
    throw new EvalError('NO_REFERENCES', `${metric}: an instance needs at least one reference, got none`, {
      field: 'references',
    });
}

/** S-NI's per-instance ROUGE-L: the best F-measure over the references, ×100 (so in [0, 100]). */
export function rougeLScore(prediction: string, references: readonly string[], opts: { stem?: boolean } = {}): number {
  checkReferences(references, 'rougeL');
  return 100 * Math.max(...references.map((r) => rougeL(prediction, r, opts).fmeasure));
}

/** ASCII punctuation, as Python's `string.punctuation`. */
const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/**
 * S-NI's answer normalisation for exact match (SQuAD's without the article removal): lowercase, delete ASCII
 * punctuation, collapse whitespace and trim.
 */
export function normalizeAnswer(text: string): string {
  const kept = Array.from(text.toLowerCase())
    .filter((ch) => !PUNCTUATION.has(ch))
    .join('');
  return kept.split(/\s+/).filter(Boolean).join(' ');
}

/** How exact match compares: `strict` (default) trims surrounding whitespace only; `sni` applies {@link normalizeAnswer}. */
export type ExactMatchNormalization = 'strict' | 'sni';

/**
 * 1 when the prediction equals any reference, else 0. Strict by default: only surrounding whitespace is trimmed, so
 * punctuation, brackets and case count (`[a b]` ≠ `a b`, `Dog` ≠ `dog`). `{ normalize: 'sni' }` compares after S-NI's
 * normalisation ({@link normalizeAnswer}), as Super-NaturalInstructions' own scorer does (see {@link exactMatchSni}).
 */
export function exactMatch(
  prediction: string,
  references: readonly string[],
  opts: { normalize?: ExactMatchNormalization } = {},
): number {
  checkReferences(references, 'exact');
  const norm = opts.normalize ?? 'strict';
  if (norm !== 'strict' && norm !== 'sni')
    throw new EvalError('BAD_OPTION', `exactMatch: normalize: expected "strict" or "sni", got "${String(norm)}"`, {
      field: 'normalize',
      actual: norm,
    });
  const f = norm === 'sni' ? normalizeAnswer : (t: string) => t.trim();
  const p = f(prediction);
  return references.some((r) => f(r) === p) ? 1 : 0;
}

/** S-NI's exact match: 1 when the normalised prediction equals any normalised reference ({@link normalizeAnswer}). */
export function exactMatchSni(prediction: string, references: readonly string[]): number {
  return exactMatch(prediction, references, { normalize: 'sni' });
}

/** How an option's token log-likelihoods become its score: their sum, or their mean (length-normalised). */
export type RankScoring = 'sum' | 'mean';

/**
 * Rank classification: `optionTokenLogProbs[j]` holds the log-probability of each token of option j given the
 * prompt; returns the index of the option with the highest mean (default: length-normalised, so a long option is not
 * penalised for its length) or sum — the first one on ties.
 */
export function rankClassify(
  optionTokenLogProbs: readonly (readonly number[])[],
  scoring: RankScoring = 'mean',
): number {
  if (optionTokenLogProbs.length === 0)
    throw new EvalError('NO_OPTIONS', 'rankClassify: expected at least one option, got none', { field: 'options' });
  let best = -1;
  let bestScore = Number.NEGATIVE_INFINITY;
  optionTokenLogProbs.forEach((logProbs, j) => {
    if (logProbs.length === 0)
      throw new EvalError('EMPTY_OPTION', `rankClassify: option ${j} has no tokens`, { field: `options[${j}]` });
    const sum = logProbs.reduce((a, b) => a + b, 0);
    const score = scoring === 'mean' ? sum / logProbs.length : sum;
    if (best < 0 || score > bestScore) {
      best = j;
      bestScore = score;
    }
  });
  return best;
}

/** 1 when the chosen option is one of the references (compared exactly), else 0. */
export function optionCorrect(options: readonly string[], chosen: number, references: readonly string[]): number {
  return references.includes(options[chosen]) ? 1 : 0;
}

/** One instance's answer loss: mean negative log-likelihood per token (nats/token) without and with the EOS token. */
export interface AnswerLoss {
  /** Over the answer's tokens only (NaN for an empty answer). The headline. */
  withoutEos: number;
  /** Over the answer's tokens and EOS (equal to `withoutEos` when the row holds no EOS label, e.g. a cut answer). */
  withEos: number;
}

/**
 * The answer loss of a teacher-forced row from its labelled tokens' log-probabilities (in order); `endsWithEos` says
 * whether the last one is the EOS label.
 */
export function answerLoss(logProbs: readonly number[], endsWithEos: boolean): AnswerLoss {
  const nll = (xs: readonly number[]) => (xs.length === 0 ? NaN : -xs.reduce((a, b) => a + b, 0) / xs.length);
  const answer = endsWithEos ? logProbs.slice(0, -1) : logProbs;
  return { withoutEos: nll(answer), withEos: nll(logProbs) };
}
