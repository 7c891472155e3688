export {
  type AnalysisSetup,
  type EpisodeSource,
  type TrainEpisodes,
  type TrainVariantOptions,
  freshTrainEpisodes,
  trainingEpisodes,
  describeTraining,
  std,
  pearson,
  spearman,
  ranks,
  averageWithError,
  gistViewFrom,
  variantPrefix,
  trainVariant,
  obtainHyperLlama,
} from './common.js';
export {
  ANALYSES,
  markdownTable,
  renderAnalysisMarkdown,
  writeAnalysis,
  renderScatter,
  renderDotPlot,
  type AnalysisName,
  type AnalysisReport,
  type ScatterPoint,
} from './report.js';
export { analyzeMasks, defaultMaskVariants, maskFigures, type MaskVariant, type MaskAnalysisOptions } from './masks.js';
export { analyzeCompression, compressionFigures, type CompressionAnalysisOptions } from './compression.js';
export {
  analyzeSensitivity,
  demonstrationDraws,
  sensitivityFigures,
  type SensitivityAnalysisOptions,
} from './sensitivity.js';
export {
  analyzeTransfer,
  relatedHeldOutTask,
  relatedTask,
  syntheticFamilyOf,
  syntheticKindOf,
  trainSharedPrefix,
  transferFigures,
  type TransferAnalysisOptions,
} from './transfer.js';
