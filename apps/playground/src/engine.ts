import { DEFAULT_TEMPLATE, collateZeroShot, hyperRow, loadTasks, type Example, type Task } from '@hyperllama/datasets';
import { fitOptions, fitPlan, planTasks, taskPrefix, type TaskPlan } from '@hyperllama/eval';
import { Prefix } from '@hyperllama/gist-attention';
import { PrefixTuning, fit, fromPretrained, resolvePretrained, type PretrainedHyperLlama } from '@hyperllama/hypernet';
import { generate, type GenerateResult } from '@hyperllama/llama-model';
import { withActiveAdapters } from '@hyperllama/lora';
import {
  AdamW,
  HyperLlamaError,
  MemoryFileSystem,
  Rng,
  RuntimeError,
  dirnamePath,
  joinPath,
  withFileSystem,
} from '@hyperllama/runtime';

/**
 * What the page does, without the DOM: load a HyperLlama checkpoint with its base from in-memory files, compress a
 * task file exactly as `hyperllama-eval compress` does (same planning, fitting and prefix file), and answer an input
 * behind the prefix and with the demonstrations in context (full-attention ICL), greedily.
 */

/** Where the default model's files sit under the site root, and the manifest that lists them. */
export const DEFAULT_MODEL_DIR = 'models/default';
export const MANIFEST = 'manifest.json';

export interface Loaded extends PretrainedHyperLlama {
  /** Shown on the page and stored as the prefix's `checkpoint` metadata. */
  label: string;
}

/** Fetches the files a site manifest lists (`{ files: [...] }`, relative to `base`) into a memory file system. */
export async function fetchModelFiles(base: string): Promise<MemoryFileSystem> {
  const prefix = base.endsWith('/') ? base : `${base}/`;
  const response = await fetch(prefix + MANIFEST);
  if (!response.ok)
    throw new RuntimeError('FETCH_FAILED', `${prefix}${MANIFEST}: HTTP ${response.status}`, {
      file: prefix + MANIFEST,
    });
  const { files } = (await response.json()) as { files: string[] };
  return MemoryFileSystem.fromUrls(prefix, files, { root: '/model' });
}

/**
 * Loads a checkpoint from in-memory files: the folder holding `hypernet_config.json` (the first, in path order), on
 * its recorded base when that was given too, else on the folder holding `config.json` + `model.safetensors` (a
 * dropped base). Like `HyperLlama.fromPretrained` (the base hash and tokenizer are checked the same way), but always
 * from host memory: an HF base directory read from the given files.
 */
export function loadFromFiles(fs: MemoryFileSystem, label: string): Loaded {
  const paths = fs.paths();
  const configs = paths.filter((p) => p.endsWith('/hypernet_config.json'));
  if (configs.length === 0)
    throw new RuntimeError('NO_CHECKPOINT', `${label}: no hypernet_config.json among ${paths.length} files`, {
      file: label,
    });
  const checkpoint = dirnamePath(configs[0]);
  return withFileSystem(fs, () => {
    const recorded = resolvePretrained(checkpoint).model;
    const dropped = paths.find(
      (p) => p.endsWith('/config.json') && fs.exists(joinPath(dirnamePath(p), 'model.safetensors')),
    );
    const model = recorded && fs.isDirectory(recorded) ? recorded : dropped && dirnamePath(dropped);
    if (!model)
      throw new RuntimeError(
        'NO_BASE',
        `${label}: the checkpoint's base (${recorded ?? 'not recorded'}) is not among the files`,
        { file: label },
      );
    return { ...fromPretrained(checkpoint, { model }), label };
  });
}

export interface Compressed {
  task: Task;
  plan: TaskPlan;
  prefix: Prefix;
  /** The `.safetensors` bytes `hyperllama-eval compress` writes for the same task, shots and seed. */
  bytes: Uint8Array;
  seconds: number;
  /** Demonstrations the hypernetwork read (and ICL sees). */
  demonstrations: number;
  /** Tokens of the ICL context (definition + demonstrations) that the k prefix positions replace in every query. */
  contextTokens: number;
  k: number;
}

/** Bad input typed into the page (examples that are not `input => output` lines). */
export class PlaygroundError extends HyperLlamaError {}

/**
 * The task file (S-NI JSON text) of typed examples: one `input => output` per line, an optional definition. The last
 * example doubles as the one instance the planner needs (answers are asked separately). A whole S-NI task JSON is
 * passed through as it is.
 */
export function examplesTaskFile(definition: string, text: string): { text: string; name: string } {
  const raw = text.trim();
  if (raw.startsWith('{')) return { text: raw, name: 'task.json' };
  const examples = raw
    .split('\n')
    .map((line, i) => ({ line: line.trim(), n: i + 1 }))
    .filter(({ line }) => line !== '')
    .map(({ line, n }) => {
      const at = line.indexOf('=>');
      if (at < 0)
        throw new PlaygroundError('BAD_EXAMPLE', `examples line ${n}: expected "input => output", got "${line}"`, {
          field: 'examples',
          line: n,
        });
      return { input: line.slice(0, at).trim(), output: line.slice(at + 2).trim() };
    });
  if (examples.length < 2)
    throw new PlaygroundError('TOO_FEW_EXAMPLES', `examples: expected at least 2, got ${examples.length}`, {
      field: 'examples',
      actual: examples.length,
    });
  const last = examples[examples.length - 1];
  const sni = {
    Definition: definition.trim() ? [definition.trim()] : [],
    'Positive Examples': examples,
    Instances: [{ id: 'query', input: last.input, output: [last.output] }],
  };
  return { text: JSON.stringify(sni), name: 'task.json' };
}

/** Parses a task file's text (S-NI `.json` or `.jsonl`) as `loadTasks` reads a file of that name. */
export function parseTask(text: string, fileName: string): Task {
  const path = `/input/${fileName}`;
  const { tasks } = withFileSystem(new MemoryFileSystem([[path, text]]), () => loadTasks(path));
  if (tasks.length !== 1)
    throw new RuntimeError('BAD_TASK', `${fileName}: holds ${tasks.length} tasks, expected one`, { file: fileName });
  return tasks[0];
}

/** `hyperllama-eval compress --task <fileName> --shots <shots> --seed <seed>` in the page. */
export async function compress(l: Loaded, task: Task, o: { shots: number; seed: number }): Promise<Compressed> {
  const start = performance.now();
  const settings = { model: l.model, tokenizer: l.tokenizer };
  const [plan] = planTasks([task], { shots: o.shots, seed: o.seed, maxInstances: 100 });
  const prefix = taskPrefix(l.hyperllama, plan, settings);
  const bytes = await prefix.toBytes({
    config: l.model.config,
    meta: { task: plan.task.name, shots: String(plan.examples.length), seed: String(o.seed), checkpoint: l.label },
  });
  const seconds = (performance.now() - start) / 1000;
  const fitted = fitPlan(plan, fitOptions(settings, l.hyperllama.k));
  const { ids } = hyperRow(
    { encoder: l.tokenizer, gistIds: [...l.hyperllama.gistIds], maxHyperLength: 1024 },
    task.definition,
    fitted.examples,
  );
  const contextTokens = l.tokenizer.encode(iclContext(fitted), { bos: false, eos: false }).length;
  return {
    task,
    plan: fitted,
    prefix,
    bytes,
    seconds,
    demonstrations: fitted.examples.length,
    contextTokens,
    k: ids.length > 0 ? l.hyperllama.k : 0,
  };
}

/** The definition and demonstrations as ICL reads them (the collator's template). */
export function iclContext(plan: TaskPlan): string {
  const t = DEFAULT_TEMPLATE;
  const head = plan.task.definition ? t.definition(plan.task.definition) : '';
  return head + plan.examples.map((e) => t.prompt(e.input) + t.answer(e.output) + t.separator).join('');
}

export interface Answer {
  text: string;
  stats: GenerateResult['stats'];
}

/** Greedy answer behind the prefix, as `hyperllama-eval generate --prefix` gives it (template prompt, BOS, stop at EOS). */
export async function answerWithPrefix(l: Loaded, prefix: Prefix, input: string, maxNewTokens = 32): Promise<Answer> {
  const adapters = l.hyperllama.hasDownstreamAdapter ? ['downstream'] : [];
  const r = await withActiveAdapters(l.model, adapters, () =>
    generate(l.model, [DEFAULT_TEMPLATE.prompt(input)], { maxNewTokens, tokenizer: l.tokenizer, addBos: true, prefix }),
  );
  return { text: r.texts![0], stats: r.stats };
}

/** Greedy answer of the frozen base with the definition and demonstrations in context (full attention). */
export async function answerWithIcl(l: Loaded, plan: TaskPlan, input: string, maxNewTokens = 32): Promise<Answer> {
  const prompt = iclContext(plan) + DEFAULT_TEMPLATE.prompt(input);
  const r = await withActiveAdapters(l.model, [], () =>
    generate(l.model, [prompt], { maxNewTokens, tokenizer: l.tokenizer, addBos: true }),
  );
  return { text: r.texts![0], stats: r.stats };
}

/** A prefix file uploaded back (checked against the loaded model's config). */
export function loadPrefixBytes(l: Loaded, bytes: Uint8Array, name: string): Prefix {
  return Prefix.fromBytes(bytes, l.model.config, name);
}

export interface TuneOptions {
  steps: number;
  /** AdamW learning rate (default 0.01, as the evaluation's prefix tuning). */
  lr?: number;
  /** Examples per step, drawn with the seeded Rng from the demonstrations (default 8). */
  batchSize?: number;
  seed?: number;
}

/**
 * Prefix tuning from the task's HyperLlama prefix on its demonstrations (answer loss behind the prefix, the frozen
 * model's adapters as the downstream pass has them), as the evaluation's `prefix-tuning-hyper` does: AdamW, zero-shot
 * rows, seeded minibatches. `onStep` sees every step's loss (after it yields to the page). Returns a new prefix (the
 * caller disposes it).
 */
export async function tunePrefix(
  l: Loaded,
  c: Compressed,
  o: TuneOptions,
  onStep: (step: number, loss: number) => void,
): Promise<Prefix> {
  const tuned = PrefixTuning.fromPrefix(c.prefix);
  const optimizer = new AdamW(tuned.trainableVariables(), { lr: o.lr ?? 1e-2, weightDecay: 0 });
  const pool: readonly Example[] = c.plan.examples;
  const rng = new Rng(o.seed ?? 0).fork(`prefix-tuning/${c.task.name}`);
  const rows = (xs: readonly Example[]) =>
    collateZeroShot(
      xs.map((target) => ({ task: { definition: undefined }, target })),
      { encoder: l.tokenizer, template: DEFAULT_TEMPLATE, maxLength: 1024, useDefinition: false },
    );
  const adapters = l.hyperllama.hasDownstreamAdapter ? ['downstream'] : [];
  try {
    await fit({
      params: tuned.trainableVariables(),
      optimizer,
      steps: o.steps,
      objective: () => {
        const batch = rows(rng.sample(pool, Math.min(o.batchSize ?? 8, pool.length)));
        return () => withActiveAdapters(l.model, adapters, () => tuned.loss(l.model, batch, { training: true }));
      },
      onStep: async (s) => {
        onStep(s.step, s.loss);
        await new Promise((r) => setTimeout(r, 0));
      },
    });
    return new Prefix({
      keys: tuned.keys.map((k) => k.clone()),
      values: tuned.values.map((v) => v.clone()),
      length: tuned.length,
      scheme: 'restart',
      positionOffsets: [tuned.length],
      meta: { ...c.prefix.meta, tuned_steps: String(o.steps) },
    });
  } finally {
    optimizer.dispose();
    tuned.dispose();
  }
}
