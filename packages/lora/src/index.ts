export { LoraError } from './errors.js';
export type { LinearHost, LinearModule, WeightedLinear } from './contract.js';
export { isWeightedLinear } from './contract.js';
export { hfModuleName, matchesTarget, type TargetModules } from './targets.js';
export { LoraLinear, type LoraAdapter, type LoraAdapterOptions } from './lora-linear.js';
export {
  injectLora,
  setActiveAdapters,
  withActiveAdapters,
  getActiveAdapters,
  listAdapters,
  getAdapterInfo,
  loraParameters,
  namedLoraParameters,
  mergeLora,
  deleteAdapter,
  getDropoutRngStates,
  setDropoutRngStates,
  type LoraConfig,
  type AdapterInfo,
} from './inject.js';
export {
  saveAdapter,
  loadAdapter,
  readAdapterConfig,
  peftKey,
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  type SaveAdapterOptions,
  type PeftLoraConfig,
} from './peft-io.js';
export {
  NF4_CODE,
  DYNAMIC_CODE,
  NF4_MAX_HALF_GAP,
  DYNAMIC_MAX_HALF_GAP,
  DOUBLE_QUANT_GROUP,
  quantizeNf4,
  dequantizeNf4,
  storedAbsmax,
  nf4StoredBytes,
  Nf4Linear,
  quantizeModel,
  type Nf4Options,
  type Nf4Weight,
  type QuantizeModelOptions,
  type QuantizeModelReport,
} from './nf4.js';
