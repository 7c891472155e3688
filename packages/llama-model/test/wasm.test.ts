import { describeWasmParity } from './wasm-parity.js';

// The default matMul path: the native addon where one loads (CI on linux-x64 gets the prebuilt one from npm ci).
describeWasmParity('auto');
