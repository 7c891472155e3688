import * as tf from '@tensorflow/tfjs';
import { Rng, type RngState } from '@hyperllama/runtime';
import { isWeightedLinear, type LinearHost } from './contract.js';
import { LoraError } from './errors.js';
import { LoraLinear } from './lora-linear.js';
import { Nf4Linear } from './nf4.js';
import { selectTargets, type TargetModules } from './targets.js';

/** Options of {@link injectLora} (PEFT's LoraConfig names in comments). */
export interface LoraConfig {
  /** Adapter name, e.g. `hyper` or `downstream` (PEFT's default is `default`). */
  name: string;
  /** Rank `r` (default 8). */
  r?: number;
  /** `lora_alpha` (default 8); scaling = alpha / r. */
  alpha?: number;
  /** `lora_dropout` (default 0). */
  dropout?: number;
  /** `target_modules` (default ['q_proj', 'v_proj'], PEFT's default for Llama). */
  targetModules?: TargetModules;
  /** `use_rslora`: scaling = alpha / sqrt(r) (default false). */
  useRslora?: boolean;
  /** Seed of the Rng that draws lora_A and the dropout masks (default 0). Ignored when `rng` is given. */
  seed?: number;
  /** Rng to fork for initialisation and dropout (it is not advanced). */
  rng?: Rng;
}

/** An adapter's resolved configuration and the linears it was injected into. */
export interface AdapterInfo {
  name: string;
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  targetModules: TargetModules;
  modules: string[];
}

interface Registry {
  adapters: Map<string, AdapterInfo>;
  active: string[];
}

const registries = new WeakMap<LinearHost, Registry>();

function registry(model: LinearHost): Registry {
  let r = registries.get(model);
  if (!r) {
    r = { adapters: new Map(), active: [] };
    registries.set(model, r);
  }
  return r;
}

function adapterInfo(model: LinearHost, name: string): AdapterInfo {
  const info = registries.get(model)?.adapters.get(name);
  if (!info) {
    throw new LoraError(
      'LORA_UNKNOWN_ADAPTER',
      `no adapter named "${name}" on this model (have: ${listAdapters(model).join(', ') || 'none'})`,
      {
        adapter: name,
        expected: listAdapters(model),
      },
    );
  }
  return info;
}

function loraModule(model: LinearHost, name: string): LoraLinear {
  const m = model.getLinear(name);
  if (!(m instanceof LoraLinear))
    throw new LoraError('LORA_NOT_INJECTED', `linear "${name}" carries no LoRA adapters`, { module: name });
  return m;
}

function badOption(field: string, expected: string, actual: unknown): never {
  throw new LoraError('LORA_BAD_OPTION', `LoRA ${field}: expected ${expected}, got ${JSON.stringify(actual)}`, {
    field,
    expected,
    actual,
  });
}

/** Names of the adapters injected into the model, in injection order. */
export function listAdapters(model: LinearHost): string[] {
  return [...(registries.get(model)?.adapters.keys() ?? [])];
}

/** The resolved configuration of adapter `name`. */
export function getAdapterInfo(model: LinearHost, name: string): AdapterInfo {
  const info = adapterInfo(model, name);
  return { ...info, modules: [...info.modules] };
}

/** Names of the adapters applied in forward passes. */
export function getActiveAdapters(model: LinearHost): string[] {
  return [...(registries.get(model)?.active ?? [])];
}

/**
 * Inject a new adapter into every linear selected by `targetModules` (wrapping it in a {@link LoraLinear} unless it
 * already is one) and freeze the base model: every weight of `model.namedWeights()` and every wrapped linear's
 * weight becomes non-trainable, as PEFT does. The first adapter injected into a model becomes active; later ones
 * are inactive until {@link setActiveAdapters} names them. Returns the names of the wrapped linears.
 */
export function injectLora(model: LinearHost, config: LoraConfig): string[] {
  const { name } = config;
  const r = config.r ?? 8;
  const alpha = config.alpha ?? 8;
  const dropout = config.dropout ?? 0;
  const targetModules = config.targetModules ?? ['q_proj', 'v_proj'];
  if (typeof name !== 'string' || name.length === 0) badOption('name', 'a non-empty string', name);
  if (!Number.isInteger(r) || r < 1) badOption('r', 'a positive integer', r);
  if (!(Number.isFinite(alpha) && alpha > 0)) badOption('lora_alpha', 'a positive number', alpha);
  if (!(dropout >= 0 && dropout < 1)) badOption('lora_dropout', 'a probability in [0, 1)', dropout);
  const reg = registry(model);
  if (reg.adapters.has(name))
    throw new LoraError('LORA_ADAPTER_EXISTS', `an adapter named "${name}" is already injected`, { adapter: name });

  const modules = selectTargets(model.linearNames(), targetModules, `injectLora("${name}")`);
  const rng = config.rng ?? new Rng(config.seed ?? 0);
  for (const moduleName of modules) {
    const current = model.getLinear(moduleName);
    const lora = current instanceof LoraLinear ? current : new LoraLinear(current);
    if (lora.inFeatures < 1 || lora.outFeatures < 1)
      badOption(`linear "${moduleName}"`, 'positive in/out features', [lora.inFeatures, lora.outFeatures]);
    lora.addAdapter(
      name,
      { r, alpha, dropout, useRslora: config.useRslora ?? false },
      rng.fork(`lora-init/${name}/${moduleName}`),
      rng.fork(`lora-dropout/${name}/${moduleName}`),
    );
    if (lora !== current) model.setLinear(moduleName, lora);
    if (isWeightedLinear(lora.base)) lora.base.weight.trainable = false;
  }
  for (const w of model.namedWeights?.().values() ?? []) w.trainable = false;

  reg.adapters.set(name, { name, r, alpha, dropout, useRslora: config.useRslora ?? false, targetModules, modules });
  if (reg.adapters.size === 1) reg.active = [name];
  syncActive(model);
  return [...modules];
}

/** Choose the adapters applied in forward passes (an empty list disables LoRA). Unknown names are an error. */
export function setActiveAdapters(model: LinearHost, names: string[]): void {
  for (const n of names) adapterInfo(model, n);
  registry(model).active = [...new Set(names)];
  syncActive(model);
}

/**
 * Run `f` with exactly `names` active, then restore the previous active set (also when `f` throws). When `f`
 * returns a promise, the set is restored once it settles; nothing else should use the model meanwhile.
 */
export function withActiveAdapters<T>(model: LinearHost, names: readonly string[], f: () => T): T {
  const before = getActiveAdapters(model);
  setActiveAdapters(model, [...names]);
  let result: T;
  try {
    result = f();
  } catch (e) {
    setActiveAdapters(model, before);
    throw e;
  }
  if (result instanceof Promise) return result.finally(() => setActiveAdapters(model, before)) as T;
  setActiveAdapters(model, before);
  return result;
}

function syncActive(model: LinearHost): void {
  const active = registry(model).active;
  for (const moduleName of model.linearNames()) {
    const m = model.getLinear(moduleName);
    if (m instanceof LoraLinear) m.active = new Set(active.filter((a) => m.adapters.has(a)));
  }
}

/**
 * Adapter `name`'s trainable variables keyed `<linear>.lora_A` / `<linear>.lora_B` (model naming, e.g.
 * `layers.0.self_attn.q_proj.lora_A`), in the model's linear order. A is [in, r], B is [r, out].
 */
export function namedLoraParameters(model: LinearHost, name: string): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const moduleName of adapterInfo(model, name).modules) {
    const a = loraModule(model, moduleName).adapters.get(name)!;
    out.set(`${moduleName}.lora_A`, a.A);
    out.set(`${moduleName}.lora_B`, a.B);
  }
  return out;
}

/** Adapter `name`'s trainable variables (A, B per linear, in the model's linear order). */
export function loraParameters(model: LinearHost, name: string): tf.Variable[] {
  return [...namedLoraParameters(model, name).values()];
}

/** The state of adapter `name`'s dropout Rngs, per linear (to save in a checkpoint). */
export function getDropoutRngStates(model: LinearHost, name: string): Record<string, RngState> {
  const out: Record<string, RngState> = {};
  for (const moduleName of adapterInfo(model, name).modules)
    out[moduleName] = loraModule(model, moduleName).adapters.get(name)!.dropoutRng.getState();
  return out;
}

/** Restore dropout Rng states saved by {@link getDropoutRngStates}, so a resumed run draws the same masks. */
export function setDropoutRngStates(model: LinearHost, name: string, states: Record<string, RngState>): void {
  const modules = adapterInfo(model, name).modules;
  const missing = modules.filter((m) => !(m in states));
  if (missing.length > 0) {
    throw new LoraError(
      'LORA_BAD_RNG_STATE',
      `dropout Rng states for adapter "${name}" lack linears: ${missing.join(', ')}`,
      { adapter: name, missing },
    );
  }
  for (const m of modules) loraModule(model, m).adapters.get(name)!.dropoutRng = Rng.fromState(states[m]);
}

/**
 * Fold adapter `name` into the base weights (W += scaling · A @ B) and remove it. A linear left without adapters
 * gets its base module back. An NF4 base is dequantised, updated and re-quantised (lossy, as in PEFT).
 */
export function mergeLora(model: LinearHost, name: string): void {
  const info = adapterInfo(model, name);
  for (const moduleName of info.modules) {
    const lora = loraModule(model, moduleName);
    const base = lora.base;
    if (isWeightedLinear(base)) {
      tf.tidy(() => base.weight.assign(tf.add(base.weight, lora.deltaWeight(name))));
    } else if (base instanceof Nf4Linear) {
      const q = base.quantized;
      const deltaTensor = lora.deltaWeight(name);
      const delta = deltaTensor.dataSync(); // [in, out]
      deltaTensor.dispose();
      const merged = base.dequantize().map((w, i) => w + delta[i]);
      lora.base = Nf4Linear.fromWeight(merged, base.inFeatures, base.outFeatures, {
        blockSize: q.blockSize,
        doubleQuant: q.doubleQuant !== undefined,
      });
    } else {
      throw new LoraError(
        'LORA_CANNOT_MERGE',
        `mergeLora: the base of "${moduleName}" (${base.constructor.name}) has no weight to merge into`,
        {
          module: moduleName,
          actual: base.constructor.name,
        },
      );
    }
    lora.removeAdapter(name);
    if (lora.adapters.size === 0) model.setLinear(moduleName, lora.base);
  }
  removeFromRegistry(model, name);
}

/** Remove adapter `name` without merging it, disposing its variables. */
export function deleteAdapter(model: LinearHost, name: string): void {
  for (const moduleName of adapterInfo(model, name).modules) {
    const lora = loraModule(model, moduleName);
    lora.removeAdapter(name);
    if (lora.adapters.size === 0) model.setLinear(moduleName, lora.base);
  }
  removeFromRegistry(model, name);
}

function removeFromRegistry(model: LinearHost, name: string): void {
  const reg = registry(model);
  reg.adapters.delete(name);
  reg.active = reg.active.filter((a) => a !== name);
  syncActive(model);
}
