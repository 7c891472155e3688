import * as tf from '@tensorflow/tfjs';
import {
  fileSystem,
  fromFloat32,
  joinPath as join,
  nodeWriteFs,
  readSafetensors,
  type SafetensorsEntry,
  toFloat32,
  transposeMatrix,
  writeFileAtomic,
  writeSafetensors,
} from '@hyperllama/runtime';
import type { LinearHost } from './contract.js';
import { LoraError } from './errors.js';
import { deleteAdapter, getAdapterInfo, injectLora, listAdapters, namedLoraParameters } from './inject.js';
import { hfModuleName, type TargetModules } from './targets.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** PEFT's key of a LoRA factor: `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. */
export function peftKey(linearName: string, factor: 'lora_A' | 'lora_B'): string {
  return `base_model.model.${hfModuleName(linearName)}.${factor}.weight`;
}

export interface SaveAdapterOptions {
  /** `base_model_name_or_path` in adapter_config.json (default null). */
  baseModelNameOrPath?: string | null;
}

/**
 * Write adapter `name` in PEFT's layout: `dir/adapter_config.json` and `dir/adapter_model.safetensors` with
 * lora_A.weight [r, in] and lora_B.weight [out, r] (float32) under PEFT's key names. Files are written atomically.
 */
export function saveAdapter(model: LinearHost, name: string, dir: string, opts: SaveAdapterOptions = {}): void {
  const info = getAdapterInfo(model, name);
  const params = namedLoraParameters(model, name);
  const tensors: Record<string, SafetensorsEntry> = {};
  for (const moduleName of info.modules) {
    const A = params.get(`${moduleName}.lora_A`)!; // [in, r]
    const B = params.get(`${moduleName}.lora_B`)!; // [r, out]
    const [inF, r] = A.shape as [number, number];
    const outF = B.shape[1] as number;
    tensors[peftKey(moduleName, 'lora_A')] = fromFloat32(transposeMatrix(A.dataSync() as Float32Array, inF, r), [
      r,
      inF,
    ]);
    tensors[peftKey(moduleName, 'lora_B')] = fromFloat32(transposeMatrix(B.dataSync() as Float32Array, r, outF), [
      outF,
      r,
    ]);
  }
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: opts.baseModelNameOrPath ?? null,
    r: info.r,
    lora_alpha: info.alpha,
    lora_dropout: info.dropout,
    target_modules: info.targetModules,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: info.useRslora,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
  nodeWriteFs().mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
  writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
}

/** The fields of a PEFT adapter_config.json this package reads. */
export interface PeftLoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: TargetModules;
  useRslora: boolean;
  baseModelNameOrPath: string | null;
}

function configError(file: string, field: string, expected: string, actual: unknown): never {
  throw new LoraError(
    'PEFT_BAD_CONFIG',
    `${file}: field "${field}": expected ${expected}, got ${JSON.stringify(actual)}`,
    {
      file,
      field,
      expected,
      actual,
    },
  );
}

/** The largest LoRA rank an adapter_config.json may give. */
const MAX_RANK = 65536;

/** Read and validate a PEFT LoRA adapter_config.json (features this package does not implement are errors). */
export function readAdapterConfig(dir: string): PeftLoraConfig {
  const file = join(dir, ADAPTER_CONFIG_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fileSystem().readText(file)) as Record<string, unknown>;
  } catch (e) {
    throw new LoraError('PEFT_BAD_CONFIG', `${file}: cannot read adapter config (${(e as Error).message})`, { file });
  }
  if (typeof raw !== 'object' || raw === null) configError(file, '<root>', 'a JSON object', raw);
  if (raw.peft_type !== 'LORA') configError(file, 'peft_type', '"LORA"', raw.peft_type);
  // Bounded so a damaged r cannot ask for a multi-gigabyte allocation before the weights are compared.
  if (!Number.isInteger(raw.r) || (raw.r as number) < 1 || (raw.r as number) > MAX_RANK)
    configError(file, 'r', `an integer in [1, ${MAX_RANK}]`, raw.r);
  const alpha = raw.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0) || !Number.isFinite(alpha))
    configError(file, 'lora_alpha', 'a positive number', alpha);
  const dropout = raw.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1))
    configError(file, 'lora_dropout', 'a number in [0, 1)', dropout);
  const targets = raw.target_modules;
  if (!(typeof targets === 'string' || (Array.isArray(targets) && targets.every((t) => typeof t === 'string')))) {
    configError(file, 'target_modules', 'a list of module names or a regex string', targets);
  }
  if ((raw.bias ?? 'none') !== 'none') configError(file, 'bias', '"none"', raw.bias);
  if (raw.fan_in_fan_out === true) configError(file, 'fan_in_fan_out', 'false', raw.fan_in_fan_out);
  if (raw.use_dora === true) configError(file, 'use_dora', 'false (DoRA is not supported)', raw.use_dora);
  for (const field of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = raw[field];
    if (v != null && (typeof v !== 'object' || Object.keys(v).length > 0))
      configError(file, field, 'empty (per-module ranks are not supported)', v);
  }
  if (raw.modules_to_save != null && !(Array.isArray(raw.modules_to_save) && raw.modules_to_save.length === 0)) {
    configError(file, 'modules_to_save', 'null (extra trained modules are not supported)', raw.modules_to_save);
  }
  const base = raw.base_model_name_or_path ?? null;
  return {
    r: raw.r as number,
    loraAlpha: alpha,
    loraDropout: dropout,
    targetModules: targets as TargetModules,
    useRslora: raw.use_rslora === true,
    baseModelNameOrPath: typeof base === 'string' ? base : null,
  };
}

/**
 * Load a PEFT LoRA adapter from `dir` as adapter `name`: injects it (with the saved r, alpha, dropout and
 * target_modules) unless the model already has an adapter of that name with the same rank, then copies the weights.
 * Every expected key must be present with the expected shape and no other key may appear; otherwise a
 * {@link LoraError} lists the missing, unexpected and mis-shaped keys (and the model is left unchanged when the
 * adapter was injected by this call). F32, F16 and BF16 weights are accepted.
 */
export function loadAdapter(dir: string, model: LinearHost, name: string): void {
  const config = readAdapterConfig(dir);
  const file = join(dir, ADAPTER_WEIGHTS_FILE);
  const { tensors } = readSafetensors(file);

  // The saved factors carry the rank too: a config that disagrees with them is caught before anything is injected.
  for (const [key, t] of tensors) {
    if (key.endsWith('.lora_A.weight') && t.shape.length === 2 && t.shape[0] !== config.r) {
      throw new LoraError(
        'PEFT_RANK_MISMATCH',
        `${file}: ${key} has rank ${t.shape[0]} but ${ADAPTER_CONFIG_FILE} says r = ${config.r}`,
        {
          file,
          field: 'r',
          expected: config.r,
          actual: t.shape[0],
        },
      );
    }
  }
  const existing = listAdapters(model).includes(name);
  if (existing && getAdapterInfo(model, name).r !== config.r) {
    throw new LoraError(
      'PEFT_RANK_MISMATCH',
      `${dir}: r = ${config.r} but the model's adapter "${name}" has r = ${getAdapterInfo(model, name).r}`,
      {
        file: join(dir, ADAPTER_CONFIG_FILE),
        field: 'r',
        expected: getAdapterInfo(model, name).r,
        actual: config.r,
      },
    );
  }
  if (!existing) {
    try {
      injectLora(model, {
        name,
        r: config.r,
        alpha: config.loraAlpha,
        dropout: config.loraDropout,
        targetModules: config.targetModules,
        useRslora: config.useRslora,
      });
    } catch (e) {
      // e.g. target_modules that match nothing: the config file is what is wrong, so name it.
      if (e instanceof LoraError)
        throw new LoraError(
          e.code,
          `${join(dir, ADAPTER_CONFIG_FILE)}: ${e.message}`,
          { ...e.details, file: join(dir, ADAPTER_CONFIG_FILE) },
          { cause: e },
        );
      throw e;
    }
  }
  try {
    const params = namedLoraParameters(model, name);
    const expected = new Map<string, { variable: tf.Variable; peftShape: [number, number] }>();
    for (const [key, variable] of params) {
      const [rows, cols] = variable.shape as [number, number];
      const moduleName = key.slice(0, key.lastIndexOf('.'));
      const factor = key.endsWith('.lora_A') ? 'lora_A' : 'lora_B';
      expected.set(peftKey(moduleName, factor), { variable, peftShape: [cols, rows] });
    }
    const missing = [...expected.keys()].filter((k) => !tensors.has(k));
    const unexpected = [...tensors.keys()].filter((k) => !expected.has(k));
    const misshaped: string[] = [];
    const badDtype: string[] = [];
    for (const [key, { peftShape }] of expected) {
      const t = tensors.get(key);
      if (!t) continue;
      if (t.shape.length !== 2 || t.shape[0] !== peftShape[0] || t.shape[1] !== peftShape[1]) {
        misshaped.push(`${key}: expected [${peftShape.join(', ')}], got [${t.shape.join(', ')}]`);
      }
      if (!['F32', 'F16', 'BF16'].includes(t.dtype)) badDtype.push(`${key}: ${t.dtype}`);
    }
    if (missing.length + unexpected.length + misshaped.length + badDtype.length > 0) {
      const parts = [
        missing.length ? `missing keys: ${missing.join(', ')}` : '',
        unexpected.length ? `unexpected keys: ${unexpected.join(', ')}` : '',
        misshaped.length ? `wrong shapes: ${misshaped.join('; ')}` : '',
        badDtype.length ? `not float: ${badDtype.join(', ')}` : '',
      ].filter(Boolean);
      throw new LoraError('PEFT_KEY_MISMATCH', `${file}: adapter weights do not fit the model (${parts.join('; ')})`, {
        file,
        missing,
        unexpected,
        misshaped,
        badDtype,
      });
    }
    // Every tensor checked before any is assigned: a NaN factor leaves the model as it was.
    const decoded = new Map<string, Float32Array>();
    for (const [key] of expected) {
      const values = toFloat32(tensors.get(key)!, key);
      const bad = values.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0)
        throw new LoraError('PEFT_NON_FINITE', `${file}: tensor "${key}" holds ${values[bad]} at index ${bad}`, {
          file,
          tensor: key,
          index: bad,
        });
      decoded.set(key, values);
    }
    for (const [key, { variable, peftShape }] of expected) {
      const values = transposeMatrix(decoded.get(key)!, peftShape[0], peftShape[1]);
      tf.tidy(() => variable.assign(tf.tensor2d(values, variable.shape as [number, number])));
    }
  } catch (e) {
    if (!existing) deleteAdapter(model, name);
    throw e;
  }
}
