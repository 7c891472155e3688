export * from './errors.js';
export * from './rng.js';
export * from './safetensors.js';
export * from './backend.js';
export * from './optim.js';
