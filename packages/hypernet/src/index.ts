export { HypernetError } from './errors.js';
export { int2d, realTokens } from './batch.js';
export {
  HyperLlama,
  DEFAULT_HYPER_LORA,
  initialGistRows,
  prefixedHidden,
  plainLoss,
  prefixLoss,
  DOWNSTREAM_VIEWS,
  type AdapterOptions,
  type DownstreamView,
  type EncodeOptions,
  type HyperLlamaOptions,
} from './hyperllama.js';
export { LoraBaseline } from './baselines.js';
export { PrefixTuning, initPrefixTuning, type PrefixInit, type PrefixSources } from './prefix-tuning.js';
export {
  HYPERNET_CONFIG_FILE,
  GIST_EMBEDDINGS_FILE,
  HYPERNET_FORMAT,
  baseModelHash,
  writeDirAtomic,
  resolveCheckpointDir,
  saveHyperLlama,
  writeHyperLlama,
  readHypernetConfig,
  loadHyperLlama,
  type HypernetConfigJson,
  type SaveHyperLlamaOptions,
} from './checkpoint.js';
export {
  fromPretrained,
  loadPretrained,
  resolvePretrained,
  recordedPath,
  checkTokenizerFits,
  type FromPretrainedOptions,
  type LoadPretrainedOptions,
  type Pretrained,
  type PretrainedHyperLlama,
  type PretrainedSources,
  type ResolvedPretrained,
} from './pretrained.js';
export { trainStep, type TrainStepOptions } from './train-step.js';
export { fit, type FitOptions, type FitResult, type FitStep } from './fit.js';
