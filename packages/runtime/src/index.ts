export * from './errors.js';
export * from './rng.js';
export * from './safetensors.js';
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
export * from './frozen.js';
