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
export {
  buildReport,
  reportTasks,
  reportTable,
  formatScore,
  formatTable,
  renderMarkdown,
  renderBarChart,
  renderCurves,
  curveMethods,
  escapeXml,
  writeReport,
  type CurvePoint,
  type MethodResult,
  type MethodReport,
  type EvalReport,
} from './report.js';
export {
  planTasks,
  labelLogProbs,
  taskPrefix,
  evaluateMethod,
  evaluatePrefixTuning,
  evaluate,
  parseMethods,
  ALL_METHODS,
  type EvalTokenizer,
  type TaskPlan,
  type PlanOptions,
  type EvalSettings,
  type BaseMethod,
  type MethodName,
  type ProgressEvent,
  type PrefixTuningOptions,
  type EvaluateOptions,
} from './protocols.js';
export * from './analyses/index.js';
