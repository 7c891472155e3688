import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { HyperLlamaError } from '@hyperllama/runtime';
import {
  STAGES,
  STAGE_OUTPUT,
  TrainerError,
  applyPatch,
  defaultConfig,
  optionHelp,
  parseSetting,
  processIo,
  readConfigFile,
  runStage,
  type Io,
  type RunResult,
  type Stage,
  type TrainConfig,
} from '@hyperllama/training';

const FLAGS = {
  config: { type: 'string' },
  out: { type: 'string' },
  steps: { type: 'string' },
  'save-every': { type: 'string' },
  'eval-every': { type: 'string' },
  seed: { type: 'string' },
  resume: { type: 'string' },
  backend: { type: 'string' },
  lr: { type: 'string' },
  'batch-size': { type: 'string' },
  method: { type: 'string' },
  init: { type: 'string' },
  base: { type: 'string' },
  hypernet: { type: 'string' },
  shared: { type: 'string' },
  task: { type: 'string' },
  set: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Flag → config path (the value is parsed by the schema, like `--set path=value`). */
const FLAG_PATHS: Record<string, string> = {
  steps: 'steps',
  'save-every': 'saveEvery',
  'eval-every': 'evalEvery',
  seed: 'seed',
  backend: 'backend',
  lr: 'lr',
  'batch-size': 'batchSize',
  method: 'method',
  init: 'prefix.init',
  base: 'model.base',
  hypernet: 'prefix.hypernet',
  shared: 'prefix.shared',
  task: 'prefix.task',
};

const STAGE_SUMMARY: Record<Stage, string> = {
  'pretrain-base':
    'train every weight of a small Llama (from scratch, or from --base) on corpus text + synthetic training-family episodes',
  hyperpretrain:
    'compression hyperpretraining: the hypernetwork reads text segments A and D, the downstream model predicts C after B',
  multitask: 'multi-task training on few-shot episodes: --method hyperllama | icl | zero-shot | shared-prefix',
  'prefix-tune': 'tune a prefix on one task, --init random | shared | hyper, recording the evaluation curve',
};

export function usage(): string {
  return [
    'usage: hyperllama-train <stage> [options]',
    '',
    'stages:',
    ...STAGES.map((s) => `  ${s.padEnd(14)} ${STAGE_SUMMARY[s]}`),
    '',
    'Run `hyperllama-train <stage> --help` for every option of a stage.',
  ].join('\n');
}

export function stageHelp(stage: Stage): string {
  return [
    `usage: hyperllama-train ${stage} [--config file.json|yaml] [--out dir] [options]`,
    '',
    STAGE_SUMMARY[stage] + '.',
    `Outputs in <out>/final/${STAGE_OUTPUT[stage]} (and in <out>/checkpoint/), metrics in <out>/metrics.jsonl.`,
    '',
    'flags:',
    '  --config <file>        JSON or YAML file with any of the options below (unknown keys are errors)',
    '  --out <dir>            run directory (default runs/<stage>)',
    '  --resume <dir>         continue the run in <dir> from its last checkpoint, bit-identically',
    '  --steps, --save-every, --eval-every, --seed, --lr, --batch-size, --backend <auto|tensorflow|wasm|cpu>',
    ...(stage === 'multitask' ? ['  --method <hyperllama|icl|zero-shot|shared-prefix>'] : []),
    ...(stage === 'prefix-tune'
      ? ['  --init <random|shared|hyper>, --task <name>, --shared <prefix file>, --hypernet <checkpoint dir>']
      : []),
    '  --base <dir>           base model (Hugging Face Llama directory or llama2.c .bin)',
    '  --set <path=value>     any option below (repeatable), e.g. --set hyper.k=8',
    '',
    'options (config keys; flags override the file; with no --config the tiny default runs: a random-init',
    '2-layer Llama, the built-in character tokenizer, synthetic tasks and the default corpus):',
    ...optionHelp(stage),
  ].join('\n');
}

/** Build the configuration of a run: defaults ← config file ← flags. */
export function resolveConfig(stage: Stage, values: Record<string, unknown>): TrainConfig {
  let cfg = defaultConfig(stage);
  if (typeof values.config === 'string') cfg = applyPatch(cfg, readConfigFile(values.config), values.config);
  for (const [flag, path] of Object.entries(FLAG_PATHS)) {
    const v = values[flag];
    if (typeof v === 'string') cfg = applyPatch(cfg, parseSetting(`${path}=${v}`), `--${flag}`);
  }
  for (const s of (values.set as string[] | undefined) ?? []) cfg = applyPatch(cfg, parseSetting(s), `--set ${s}`);
  return cfg;
}

/** The CLI: returns the process exit code (0 done, 1 error, 2 usage, 130 SIGINT, 143 SIGTERM). */
export async function main(
  argv: string[],
  io: Io = processIo,
  stdout: (s: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  const [stageArg, ...rest] = argv;
  if (!stageArg || stageArg === '--help' || stageArg === '-h' || stageArg === 'help') {
    stdout(usage() + '\n');
    return stageArg ? 0 : 2;
  }
  if (!(STAGES as readonly string[]).includes(stageArg)) {
    io.log(`hyperllama-train: unknown stage "${stageArg}"\n\n${usage()}`);
    return 2;
  }
  const stage = stageArg as Stage;
  try {
    let values: Record<string, unknown>;
    try {
      values = parseArgs({ args: rest, options: FLAGS, strict: true, allowPositionals: false }).values;
    } catch (e) {
      throw new TrainerError('USAGE', `${stage}: ${(e as Error).message}`, { stage });
    }
    if (values.help) {
      stdout(stageHelp(stage) + '\n');
      return 0;
    }
    let out = (values.out as string | undefined) ?? `runs/${stage}`;
    let cfg: TrainConfig;
    if (typeof values.resume === 'string') {
      out = values.resume;
      if (!existsSync(`${out}/config.json`))
        throw new TrainerError('CHECKPOINT_NOT_FOUND', `${out}: no run to resume (no config.json)`, { file: out });
      // The run's own resolved configuration, then any flags given now (e.g. more --steps).
      const saved = readConfigFile(`${out}/config.json`) as Record<string, unknown>;
      const { stage: savedStage, ...savedCfg } = saved;
      if (savedStage !== stage)
        throw new TrainerError(
          'CHECKPOINT_STAGE',
          `${out}/config.json: the run is stage "${String(savedStage)}", not "${stage}"`,
          { file: `${out}/config.json` },
        );
      cfg = applyPatch(defaultConfig(stage), savedCfg, `${out}/config.json`);
      for (const [flag, path] of Object.entries(FLAG_PATHS)) {
        const v = values[flag];
        if (typeof v === 'string') cfg = applyPatch(cfg, parseSetting(`${path}=${v}`), `--${flag}`);
      }
      for (const s of (values.set as string[] | undefined) ?? []) cfg = applyPatch(cfg, parseSetting(s), `--set ${s}`);
    } else {
      cfg = resolveConfig(stage, values);
    }
    const result: RunResult = await runStage(stage, cfg, { out, resume: typeof values.resume === 'string', io });
    io.log(
      `${stage}: ${result.interrupted ? 'interrupted' : 'done'} at step ${result.step}; loss ${result.firstLoss.toFixed(4)} → ${result.lastLoss.toFixed(4)}, held-out ${result.evalLoss.toFixed(4)}, ${Math.round(result.tokensPerSecond)} tokens/s`,
    );
    if (result.final) io.log(`outputs: ${result.final}`);
    io.log(`checkpoint: ${result.checkpoint}`);
    // 128 + the signal's number, as a shell reports a process the signal ended.
    return result.interrupted ? (result.signal === 'SIGTERM' ? 143 : 130) : 0;
  } catch (e) {
    if (
      e instanceof RangeError ||
      /out of memory|allocation failed|Invalid (typed )?array length/i.test((e as Error).message ?? '')
    ) {
      io.log(
        `hyperllama-train ${stage}: error OUT_OF_MEMORY: ${(e as Error).message}. Lower batchSize, data.maxLength / data.maxHyperLength / data.seqLen, or the model size.`,
      );
      return 1;
    }
    if (e instanceof HyperLlamaError) {
      io.log(`hyperllama-train ${stage}: error ${e.code}: ${e.message}`);
      return e.code === 'USAGE' ? 2 : 1;
    }
    throw e;
  }
}
