#!/usr/bin/env node
import { disposeBackend } from '@hyperllama/runtime';
import { runCli } from './main.js';

process.exitCode = await runCli(process.argv.slice(2));
await disposeBackend();
