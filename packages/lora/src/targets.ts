import { LoraError } from './errors.js';

/**
 * Which linears an adapter or the quantiser targets, as PEFT's `target_modules`: a list of names, each matching a
 * module whose full name equals it or ends with `.<name>` (e.g. `q_proj`, `self_attn.q_proj`); a single string is a
 * regular expression that must match the full name; `'all-linear'` means every linear except `lm_head`.
 * Full names are the HF module names of LlamaForCausalLM (`model.layers.0.self_attn.q_proj`, `lm_head`).
 */
export type TargetModules = string[] | string;

/** The model's linear name (`layers.0.self_attn.q_proj`) as the HF module name (`model.layers.0.self_attn.q_proj`). */
export function hfModuleName(linearName: string): string {
  return linearName === 'lm_head' ? 'lm_head' : `model.${linearName}`;
}

/** Whether the linear `linearName` (model naming) is selected by `targets`. */
export function matchesTarget(linearName: string, targets: TargetModules): boolean {
  const full = hfModuleName(linearName);
  if (Array.isArray(targets)) return targets.some((t) => full === t || full.endsWith(`.${t}`));
  if (targets === 'all-linear') return linearName !== 'lm_head';
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${targets})$`);
  } catch (e) {
    throw new LoraError(
      'LORA_BAD_TARGETS',
      `target_modules: "${targets}" is not a valid regular expression (${(e as Error).message})`,
      {
        field: 'target_modules',
        actual: targets,
      },
    );
  }
  return re.test(full);
}

/** The linears of `names` selected by `targets`; a typed error naming the targets and the available modules if none. */
export function selectTargets(names: string[], targets: TargetModules, what: string): string[] {
  if (
    !(Array.isArray(targets)
      ? targets.every((t) => typeof t === 'string' && t.length > 0)
      : typeof targets === 'string')
  ) {
    throw new LoraError(
      'LORA_BAD_TARGETS',
      `${what}: target_modules must be a list of module names or a regex string, got ${JSON.stringify(targets)}`,
      {
        field: 'target_modules',
        actual: targets,
      },
    );
  }
  const selected = names.filter((n) => matchesTarget(n, targets));
  if (selected.length === 0) {
    throw new LoraError(
      'LORA_NO_TARGETS',
      `${what}: target_modules ${JSON.stringify(targets)} match none of the model's linears (${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''})`,
      { field: 'target_modules', expected: names, actual: targets },
    );
  }
  return selected;
}
