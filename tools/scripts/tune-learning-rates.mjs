#!/usr/bin/env node
// Tunes the peak learning rate of each multi-task method of the miniature (`npm start`): for every method and
// learning rate, trains from the embedded base with the miniature's settings and reads the held-out loss (fresh
// episodes of unseen parameter settings with held-out content) at the end. Prints a table; --json writes the numbers.
//   node tools/scripts/tune-learning-rates.mjs [--steps 200] [--lrs 1e-3,3e-3,1e-2] [--methods hyperllama,icl,zero-shot,shared-prefix] [--json out.json]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const steps = Number(arg('steps', '200'));
const lrs = arg('lrs', '1e-3,3e-3,1e-2').split(',').map(Number);
const methods = arg('methods', 'hyperllama,icl,zero-shot,shared-prefix').split(',');
const base = 'packages/default-model/base';
const cli = 'apps/trainer/dist/cli.js';
const tmp = mkdtempSync(join(tmpdir(), 'tune-lr-'));
const rows = [];
try {
  for (const method of methods) {
    for (const lr of lrs) {
      const out = join(tmp, `${method}-${lr}`);
      const args = [
        cli,
        'multitask',
        '--method',
        method,
        '--base',
        base,
        '--seed',
        '0',
        '--steps',
        String(steps),
        '--out',
        out,
        '--save-every',
        '0',
        '--eval-every',
        '0',
        '--set',
        `lr=${lr}`,
        '--set',
        'batchSize=8',
        '--set',
        `warmupSteps=${Math.min(20, steps)}`,
        '--set',
        'data.shots=16',
        '--set',
        'data.minShots=2',
        '--set',
        'data.maxLength=400',
        '--set',
        'data.maxHyperLength=400',
        '--set',
        'data.openLexicon=0.5',
        '--set',
        'data.definitions=0.5',
        '--set',
        'evalBatches=4',
      ];
      const started = Date.now();
      execFileSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
      const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const evals = metrics.filter((m) => m.evalLoss !== undefined);
      rows.push({
        method,
        lr,
        steps,
        initial: evals[0].evalLoss,
        final: evals.at(-1).evalLoss,
        seconds: (Date.now() - started) / 1000,
      });
      console.log(
        `${method} lr ${lr}: held-out loss ${evals[0].evalLoss.toFixed(4)} → ${evals.at(-1).evalLoss.toFixed(4)}`,
      );
      rmSync(out, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log('\n| method | ' + lrs.map((lr) => `lr ${lr}`).join(' | ') + ' | best |');
console.log('| --- | ' + lrs.map(() => '---:').join(' | ') + ' | ---: |');
for (const method of methods) {
  const mine = rows.filter((r) => r.method === method);
  const best = mine.reduce((a, b) => (b.final < a.final ? b : a));
  console.log(`| ${method} | ${mine.map((r) => r.final.toFixed(3)).join(' | ')} | ${best.lr} |`);
}
const json = arg('json');
if (json) writeFileSync(json, JSON.stringify(rows, null, 2) + '\n');
