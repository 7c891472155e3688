import { describeWasmParity } from './wasm-parity.js';

// Pure wasm (XNNPACK with explicit transposes), what runs where no native addon loads.
describeWasmParity('xnnpack');
