export * from './types.js';
export { SUITES, DEFAULT_BACKENDS } from './suites.js';
