export * from './analyses/index.js';
