import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.shared.js';

// Optional dependencies are loaded with a guarded import() at run time; tsup would otherwise bundle them.
const optional = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'webgpu', '@tensorflow/tfjs-backend-webgpu'];

export default defineConfig({ ...packageBuild(['src/index.ts']), external: optional });
