export { LoraError } from './errors.js';
export type { LinearHost, LinearModule, WeightedLinear } from './contract.js';
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
  type SaveAdapterOptions,
  type PeftLoraConfig,
} from './peft-io.js';
export {
  quantizeNf4,
  dequantizeNf4,
  nf4StoredBytes,
  Nf4Linear,
  quantizeModel,
  type Nf4Options,
  type Nf4Weight,
  type QuantizeModelOptions,
  type QuantizeModelReport,
} from './nf4.js';
