import { makeSyntheticTask, type SyntheticKind } from '@hyperllama/datasets';
import { evaluate, type EvalTokenizer } from '@hyperllama/eval';
import type { LlamaModel } from '@hyperllama/llama-model';

/** How the base model's own in-context learning fares on one held-out family's development draw. */
export interface FamilyScreen {
  family: string;
  /** Held-out kinds (variants) of the family that were scored. */
  kinds: number;
  /**
   * Mean score (as a fraction) of the bare base with 0 and with `shots` demonstrations, on the evaluation's own
   * metric: rank classification over the task's labels, or strict exact match of the greedy answer.
   */
  zeroShot: number;
  icl: number;
  /** What a constant answer scores: 1 / labels for classification (its instances are class-balanced), else 0. */
  chance: number;
  /**
   * Whether the family goes in the headline: with demonstrations the base scores at least {@link SCREEN_MIN_GAIN}
   * above both its zero-shot score and chance.
   */
  headline: boolean;
}

/**
 * A family is in the headline when the base, reading its demonstrations, scores at least this much (a fraction)
 * above both its own zero-shot score and chance: the task is learnt in context, not known beforehand or guessed.
 */
export const SCREEN_MIN_GAIN = 0.1;

export interface ScreenOptions {
  /** The evaluation's seed; the development draw uses content of seed + {@link DEV_SEED_OFFSET}, never evaluated. */
  seed: number;
  shots: number;
  /** Instances per kind (default 16). */
  instances?: number;
  /** Kinds scored per family, the first ones given (default 3). */
  kindsPerFamily?: number;
  /** Row budget in tokens, as in the evaluation. */
  maxLength: number;
}

/** Offset of the development draw's seed from the evaluation's: its label assignments, tables and instances differ. */
export const DEV_SEED_OFFSET = 1000;

/**
 * Which held-out families the base model can learn in context, decided before any evaluation, on a development
 * draw: for every held-out kind, a task with fresh held-out content (seed + {@link DEV_SEED_OFFSET}, so no evaluated
 * label assignment, table or instance), scored as the evaluation scores (same demonstrations, metric and decoding) on
 * the bare base (no adapter, no prefix) with 0 and with `shots` demonstrations (`instances` per kind, up to
 * `kindsPerFamily` kinds per family). Families where the demonstrations gain less than {@link SCREEN_MIN_GAIN} over
 * zero-shot or over chance are ones no method can be expected to learn in context at this scale: the miniature
 * reports them as controls, apart from the headline.
 */
export async function screenFamilies(
  model: LlamaModel,
  tokenizer: EvalTokenizer,
  allKinds: readonly SyntheticKind[],
  o: ScreenOptions,
): Promise<FamilyScreen[]> {
  const perFamily = new Map<string, number>();
  const kinds = allKinds.filter((k) => {
    const n = perFamily.get(k.family) ?? 0;
    perFamily.set(k.family, n + 1);
    return n < (o.kindsPerFamily ?? 3);
  });
  // Made as the evaluated tasks are (a pool of 32 examples, 32 instances), so that content and coverage match
  // them: a lookup instance, say, is answerable only when its key is among the demonstrations.
  const tasks = kinds.map((k) =>
    makeSyntheticTask(k.family, k.variant, { seed: o.seed + DEV_SEED_OFFSET, pool: 'heldout' }),
  );
  const results = await evaluate(
    tasks,
    { model, tokenizer, maxLength: o.maxLength, maxNewTokens: 16 },
    { methods: ['zero-shot', 'icl'], shots: o.shots, maxInstances: o.instances ?? 16, seed: o.seed },
  );
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const byFamily = new Map<string, { kinds: number; zeroShot: number; icl: number; chance: number }>();
  kinds.forEach((kind, i) => {
    const [zeroShot, icl] = results.map((r) => mean(r.scores.find((t) => t.task === tasks[i].name)!.scores));
    const chance = tasks[i].options ? 1 / tasks[i].options!.length : 0;
    const f = byFamily.get(kind.family) ?? { kinds: 0, zeroShot: 0, icl: 0, chance: 0 };
    byFamily.set(kind.family, {
      kinds: f.kinds + 1,
      zeroShot: f.zeroShot + zeroShot,
      icl: f.icl + icl,
      chance: f.chance + chance,
    });
  });
  return [...byFamily].map(([family, f]) => {
    const [zeroShot, icl, chance] = [f.zeroShot / f.kinds, f.icl / f.kinds, f.chance / f.kinds];
    return {
      family,
      kinds: f.kinds,
      zeroShot,
      icl,
      chance,
      headline: icl - Math.max(zeroShot, chance) >= SCREEN_MIN_GAIN,
    };
  });
}
