#!/usr/bin/env node
import { disposeBackend } from '@hyperllama/runtime';
import { main } from './cli-main.js';

const code = await main(process.argv.slice(2));
await disposeBackend();
process.exit(code);
