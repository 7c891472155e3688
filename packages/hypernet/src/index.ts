export { HypernetError } from './errors.js';
export { realTokens } from './batch.js';
export {
  HyperLlama,
  DEFAULT_HYPER_LORA,
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
  baseModelHash,
  writeDirAtomic,
  resolveCheckpointDir,
  saveHyperLlama,
  writeHyperLlama,
  loadHyperLlama,
  type HypernetConfigJson,
  type SaveHyperLlamaOptions,
} from './checkpoint.js';
export {
  fromPretrained,
  loadPretrained,
  resolvePretrained,
  type FromPretrainedOptions,
  type LoadPretrainedOptions,
  type Pretrained,
  type PretrainedHyperLlama,
  type PretrainedSources,
  type ResolvedPretrained,
} from './pretrained.js';
export { trainStep, type TrainStepOptions } from './train-step.js';
export { fit, type FitOptions, type FitResult, type FitStep } from './fit.js';
