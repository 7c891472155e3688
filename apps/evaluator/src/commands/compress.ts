import { loadTasks } from '@hyperllama/datasets';
import { planTasks, taskPrefix } from '@hyperllama/eval';
import {
  CliError,
  backendOption,
  numberOption,
  parseOptions,
  requireOption,
  startBackend,
  type Command,
  type Io,
} from '../cli-kit.js';
import { loadSetup, type SetupOptions } from '../eval-setup.js';

export interface CompressOptions extends SetupOptions {
  checkpoint: string;
  /** A task file (or a directory holding one task; `taskName` picks one of several). */
  task: string;
  taskName?: string;
  out: string;
  /** Demonstrations compressed (chosen as `run` chooses them with the same seed). */
  shots: number;
  seed: number;
  maxHyperLength?: number;
  /** `run`'s settings that decide which demonstrations fit (ICL rows and hyper input read the same ones). */
  maxLength?: number;
  maxInstances?: number;
}

/**
 * Compresses one task into its HyperLlama prefix and stores it (safetensors with the task name, shots, seed and
 * checkpoint as metadata), so `run --prefix` and `generate --prefix` can serve it without the hypernetwork pass.
 */
export async function compressTask(o: CompressOptions, io: Io): Promise<{ task: string; k: number; examples: number }> {
  const { tasks } = loadTasks(o.task);
  const chosen = o.taskName ? tasks.filter((t) => t.name === o.taskName) : tasks;
  if (chosen.length !== 1) {
    throw new CliError(
      'USAGE',
      `compress: ${o.task} holds ${tasks.length} tasks (${tasks
        .map((t) => t.name)
        .slice(0, 5)
        .join(', ')}${tasks.length > 5 ? ', …' : ''}); pick one with --task-name`,
      {
        field: 'task',
        actual: chosen.length,
      },
    );
  }
  const setup = await loadSetup(o);
  try {
    const hl = setup.hyperllama!;
    // Planned and fitted exactly as `run` plans and fits (same seed, instances and length budgets), so the stored
    // prefix is the one `run` would compute.
    const [plan] = planTasks(chosen, { shots: o.shots, seed: o.seed, maxInstances: o.maxInstances ?? 100 });
    const prefix = taskPrefix(hl, plan, {
      model: setup.model,
      tokenizer: setup.tokenizer,
      maxHyperLength: o.maxHyperLength,
      maxLength: o.maxLength,
    });
    try {
      prefix.save(o.out, {
        config: setup.model.config,
        meta: {
          task: plan.task.name,
          shots: String(plan.examples.length),
          seed: String(o.seed),
          checkpoint: setup.sources.checkpoint ?? '',
        },
      });
    } finally {
      prefix.dispose();
    }
    io.stderr(
      `[hyperllama] compressed ${plan.examples.length} demonstrations of ${plan.task.name} into ${hl.k} gist positions\n`,
    );
    return { task: plan.task.name, k: hl.k, examples: plan.examples.length };
  } finally {
    setup.dispose();
  }
}

export const compressCommand: Command = {
  summary: "store a task's HyperLlama prefix (compress once, serve many times with run/generate --prefix)",
  usage:
    'hyperllama-eval compress --checkpoint <hyperllama dir> --task <file|dir> --out <prefix.safetensors> [--task-name <name>]\n' +
    '    [--model <dir|.bin>] [--tokenizer <path>] [--shots 16] [--seed 0] [--max-hyper-length 1024] [--max-length 1024]\n' +
    '    [--max-instances 100] [--backend auto|wasm|cpu|tensorflow]\n' +
    '  Give the --shots, --seed, --max-length and --max-instances that run will use: they decide which demonstrations fit.',
  async run(argv: string[], io: Io) {
    const c = 'compress';
    const v = parseOptions(c, argv, {
      checkpoint: undefined,
      model: undefined,
      tokenizer: undefined,
      task: undefined,
      'task-name': undefined,
      out: undefined,
      shots: '16',
      seed: '0',
      'max-hyper-length': undefined,
      'max-length': undefined,
      'max-instances': '100',
      ...backendOption,
    });
    const opts: CompressOptions = {
      checkpoint: requireOption(c, 'checkpoint', v.checkpoint),
      model: v.model,
      tokenizer: v.tokenizer,
      task: requireOption(c, 'task', v.task),
      taskName: v['task-name'],
      out: requireOption(c, 'out', v.out),
      shots: numberOption(c, 'shots', v.shots, true, 1)!,
      seed: numberOption(c, 'seed', v.seed, true)!,
      maxHyperLength: numberOption(c, 'max-hyper-length', v['max-hyper-length'], true, 1),
      maxLength: numberOption(c, 'max-length', v['max-length'], true, 1),
      maxInstances: numberOption(c, 'max-instances', v['max-instances'], true, 1),
    };
    await startBackend(v.backend, io);
    const r = await compressTask(opts, io);
    io.stdout(`wrote ${opts.out} (task ${r.task}, ${r.examples} demonstrations, prefix length ${r.k})\n`);
  },
};
