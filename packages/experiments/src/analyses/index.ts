export { type AnalysisSetup, type EpisodeSource, type TrainEpisodes, freshTrainEpisodes } from './common.js';
export { ANALYSES, markdownTable, writeAnalysis, type AnalysisName, type AnalysisReport } from './report.js';
export { analyzeMasks, defaultMaskVariants, maskFigures, type MaskVariant, type MaskAnalysisOptions } from './masks.js';
export { analyzeCompression, compressionFigures, type CompressionAnalysisOptions } from './compression.js';
export { analyzeSensitivity, sensitivityFigures, type SensitivityAnalysisOptions } from './sensitivity.js';
export { analyzeTransfer, syntheticFamilyOf, transferFigures, type TransferAnalysisOptions } from './transfer.js';
