export { ModelError } from './errors.js';
export {
  parseLlamaConfig,
  parseRopeScaling,
  ropeScalingToJson,
  validateLlamaConfig,
  llamaConfigToJson,
  type LlamaConfig,
} from './config.js';
export { DenseLinear, findDenseBase, type LinearModule } from './linear.js';
export {
  applyRope,
  ropeCosSin,
  ropeFrequencies,
  ROPE_SCALING_TYPES,
  type RopeConfig,
  type RopeFrequencies,
  type RopeOptions,
  type RopeScaling,
} from './rope.js';
export { MASK_VALUE } from './attention.js';
export {
  LlamaModel,
  emptyCache,
  disposeCache,
  expectedWeightShapes,
  type KVPrefix,
  type KVCache,
  type ForwardOptions,
  type ForwardResult,
  type LayerKV,
  type HostWeights,
} from './model.js';
export { lmLoss } from './loss.js';
export { loadLlama, saveLlama, readHfLlama, type LoadOptions } from './io.js';
export { createLlama } from './init.js';
export { extendVocabulary } from './vocabulary.js';
export {
  generate,
  sampleToken,
  continuationText,
  type GenerateOptions,
  type GenerateResult,
  type TextCodec,
} from './generate.js';
export {
  FrozenLinear,
  ModelMemoryError,
  WASM_HEAP_BYTES,
  WEIGHT_FORMATS,
  WEIGHT_BYTES_PER_PARAM,
  activationEstimate,
  trainingActivationEstimate,
  availableHostMemory,
  checkModelFits,
  loadLlamaNative,
  memoryBudget,
  planLlamaMemory,
  resolveWeightFormat,
  type MemoryBudget,
  type MemoryPlan,
  type NativeLoadOptions,
  type WeightFormat,
} from './native-weights.js';
export { writeRandomLlamaDir, type RandomLlamaDirOptions } from './random-dir.js';
export {
  saveGguf,
  idsOnlyVocabulary,
  llamaGguf,
  ggufTensorName,
  permuteRotaryRows,
  type GgufExportOptions,
} from './gguf.js';
