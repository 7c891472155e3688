import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_TEMPLATE,
  fewShotRow,
  makeSyntheticTask,
  type SyntheticKind,
  type TokenEncoder,
} from '@hyperllama/datasets';
import type { LlamaModel } from '@hyperllama/llama-model';
import { IGNORE_INDEX } from '@hyperllama/runtime';

/** How the base model's own in-context learning fares on one held-out family's development draw. */
export interface FamilyScreen {
  family: string;
  /** Held-out kinds (variants) of the family that were scored. */
  kinds: number;
  /** Teacher-forced exact match (every answer token the top choice), as a fraction, with 0 and with `shots` demonstrations. */
  zeroShot: number;
  icl: number;
  /** Whether the family goes in the headline: the base's ICL reaches {@link SCREEN_MIN_ICL}. */
  headline: boolean;
}

/** A family is in the headline when the base, reading its demonstrations, answers at least this fraction exactly. */
export const SCREEN_MIN_ICL = 0.1;

export interface ScreenOptions {
  /** The evaluation's seed; the development draw uses content of seed + {@link DEV_SEED_OFFSET}, never evaluated. */
  seed: number;
  shots: number;
  /** Instances per kind (default 8). */
  instances?: number;
  /** Kinds scored per family, the first ones given (default 3). */
  kindsPerFamily?: number;
  /** Row budget in tokens, as in the evaluation. */
  maxLength: number;
}

/** Offset of the development draw's seed from the evaluation's: its label assignments, tables and instances differ. */
export const DEV_SEED_OFFSET = 1000;

/**
 * Which held-out families the base model can learn in context at all, decided before any evaluation, on a
 * development draw: for every held-out kind, a task with fresh held-out content (seed + {@link DEV_SEED_OFFSET}, so
 * no evaluated label assignment, table or instance), scored by teacher-forced exact match on the bare base (no
 * adapter, no prefix) with 0 and with `shots` demonstrations (`instances` per kind, up to `kindsPerFamily` kinds per
 * family). Families whose ICL score stays below
 * {@link SCREEN_MIN_ICL} are ones no method can be expected to solve at this scale: the miniature reports them as
 * controls, apart from the headline. One forward pass per kind and setting.
 */
export function screenFamilies(
  model: LlamaModel,
  tokenizer: TokenEncoder,
  allKinds: readonly SyntheticKind[],
  o: ScreenOptions,
): FamilyScreen[] {
  const instances = o.instances ?? 8;
  const perFamily = new Map<string, number>();
  const kinds = allKinds.filter((k) => {
    const n = perFamily.get(k.family) ?? 0;
    perFamily.set(k.family, n + 1);
    return n < (o.kindsPerFamily ?? 3);
  });
  const collate = { encoder: tokenizer, template: DEFAULT_TEMPLATE, maxLength: o.maxLength, eos: false };
  const byFamily = new Map<string, { kinds: number; zeroShot: number; icl: number }>();
  for (const kind of kinds) {
    // Made as the evaluated tasks are (a pool of 32 examples, 32 instances), so that content and coverage match
    // them: a lookup instance, say, is answerable only when its key is among the demonstrations.
    const task = makeSyntheticTask(kind.family, kind.variant, { seed: o.seed + DEV_SEED_OFFSET, pool: 'heldout' });
    const demonstrations = task.examples.slice(0, o.shots);
    const [zeroShot, icl] = [0, o.shots].map((k) =>
      teacherForcedExact(
        model,
        task.instances
          .slice(0, instances)
          .map((x) => fewShotRow(collate, undefined, demonstrations.slice(0, k), x.input, x.output)),
        tokenizer.padId,
      ),
    );
    const f = byFamily.get(kind.family) ?? { kinds: 0, zeroShot: 0, icl: 0 };
    byFamily.set(kind.family, { kinds: f.kinds + 1, zeroShot: f.zeroShot + zeroShot, icl: f.icl + icl });
  }
  return [...byFamily].map(([family, f]) => ({
    family,
    kinds: f.kinds,
    zeroShot: f.zeroShot / f.kinds,
    icl: f.icl / f.kinds,
    headline: f.icl / f.kinds >= SCREEN_MIN_ICL,
  }));
}

/** Fraction of rows whose every labelled token is the model's top prediction (labels: the answer's ids, IGNORE_INDEX elsewhere). */
function teacherForcedExact(
  model: LlamaModel,
  rows: readonly { ids: number[]; labels: number[] }[],
  padId: number,
): number {
  const width = Math.max(...rows.map((r) => r.ids.length));
  const pad = <T>(xs: T[], fill: T) => [...xs, ...Array<T>(width - xs.length).fill(fill)];
  const predicted = tf.tidy(() => {
    const inputIds = tf.tensor2d(
      rows.map((r) => pad(r.ids, Math.max(padId, 0))),
      undefined,
      'int32',
    );
    const attentionMask = tf.tensor2d(
      rows.map((r) =>
        pad(
          r.ids.map(() => 1),
          0,
        ),
      ),
      undefined,
      'int32',
    );
    return model.forward({ inputIds, attentionMask }).logits!.argMax(-1).arraySync() as number[][];
  });
  // labels[t] is predicted from position t - 1.
  const exact = rows.filter((r, b) =>
    r.labels.every((label, t) => label === IGNORE_INDEX || (t > 0 && predicted[b][t - 1] === label)),
  );
  return exact.length / rows.length;
}
