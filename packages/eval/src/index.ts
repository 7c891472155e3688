export { EvalError } from './errors.js';
export { porterStem } from './porter.js';
export {
  rougeTokenize,
  lcsLength,
  rougeL,
  rougeLScore,
  normalizeAnswer,
  exactMatch,
  rankClassify,
  optionCorrect,
  type RougeLScore,
  type RankScoring,
} from './metrics.js';
export { METRIC_SCALE, categoryKey, summarize, type TaskScores, type TaskSummary, type GroupSummary, type Summary } from './aggregate.js';
