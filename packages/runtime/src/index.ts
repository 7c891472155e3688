export * from './errors.js';
export * from './rng.js';
export * from './safetensors.js';
export * from './gguf.js';
export * from './backend.js';
export * from './optim.js';
export { loadNativeBlas, nativeCandidates, type NativeBlas, type NativeLoad, type NativeSource } from './native.js';
export {
  linearCrossEntropy,
  softmaxCrossEntropyWithGrad,
  isRecordingGradients,
  SOFTMAX_CE_KERNEL,
  type LinearCrossEntropyOptions,
} from './cross-entropy.js';
export { IGNORE_INDEX, mean } from './conventions.js';
export { rmsNorm, swiglu, rotaryEmbedding, maskedSoftmax } from './fused.js';
export { webgpuAdapterInfo, type WebGPUAdapterInfo } from './webgpu.js';
export {
  attentionWebGPU,
  FUSED_ATTENTION_MAX_KEYS,
  matMulWebGPU,
  setWebGPUMatMul,
  type WebGPUMatMul,
} from './webgpu-kernels.js';
export {
  type FileSystem,
  type NamedBlob,
  MemoryFileSystem,
  fileSystem,
  setFileSystem,
  withFileSystem,
  nodeFileSystem,
  nodeWriteFs,
  type NodeWriteFs,
  joinPath,
  dirnamePath,
  basenamePath,
  extnamePath,
  isAbsolutePath,
  resolvePath,
  relativePath,
  workingDirectory,
} from './files.js';
export { isNode, envVar, nodeBuiltin, requireNode } from './platform.js';
export { Sha256, sha256Hex } from './sha256.js';
export * from './frozen.js';
