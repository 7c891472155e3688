import type { Metric } from '@hyperllama/datasets';
import { mean } from '@hyperllama/runtime';
import { EvalError } from './errors.js';

/** Largest value of each metric: accuracy and exact match are fractions, ROUGE-L is ×100 as S-NI reports it. */
export const METRIC_SCALE: Record<Metric, number> = { accuracy: 1, exact: 1, rougeL: 100 };

/** The per-instance scores of one task under one method. */
export interface TaskScores {
  task: string;
  category?: string;
  metric: Metric;
  /** One score per evaluated instance, on the metric's scale. */
  scores: number[];
  /**
   * Per instance (same order as `scores`): mean negative log-likelihood (nats/token) of the first reference's answer
   * tokens, teacher-forced, WITHOUT the EOS token (the headline answer loss). NaN for an empty answer.
   */
  answerLoss?: number[];
  /** The same with the EOS token counted as one more answer token. */
  answerLossWithEos?: number[];
  /** Demonstrations the method saw, mean over instances (0 for zero-shot). */
  demonstrations?: number;
  /** A control task: reported in its own table, left out of the headline average and the claims. */
  control?: boolean;
}

export interface TaskSummary {
  metric: Metric;
  /** Mean over instances, on the metric's scale. */
  score: number;
  instances: number;
  category?: string;
  /** Mean answer loss over instances (nats/token, without EOS), when measured. */
  answerLoss?: number;
  answerLossWithEos?: number;
  demonstrations?: number;
}

export interface GroupSummary {
  /** A metric when every member shares it, else `mixed` (scores divided by their scale, so in [0, 1]). */
  metric: Metric | 'mixed';
  score: number;
  tasks: number;
  instances: number;
  /** Macro average of the tasks' answer losses (nats/token, without / with EOS), when every task has one. */
  answerLoss?: number;
  answerLossWithEos?: number;
  /** Mean over tasks of the demonstrations seen, when every task records it. */
  demonstrations?: number;
}

export interface Summary {
  tasks: Record<string, TaskSummary>;
  /** Per category (S-NI's key: lowercased, words joined by `_`): the mean over all the category's instances, as S-NI groups them. */
  categories: Record<string, GroupSummary>;
  /** Macro average: the mean of the task scores. */
  average: GroupSummary;
}

/** Mean of the finite values (NaN when there is none): an empty answer has no answer loss. */
export function finiteMean(xs: readonly number[]): number {
  const ok = xs.filter(Number.isFinite);
  return ok.length === 0 ? NaN : mean(ok);
}

/** The mean over tasks of `f`, when every task has it. */
function overTasks(summaries: readonly TaskSummary[], f: (t: TaskSummary) => number | undefined): number | undefined {
  const values = summaries.map(f);
  return values.every((v) => v !== undefined) && values.length > 0 ? finiteMean(values as number[]) : undefined;
}

/** S-NI's category key: `"Question Answering"` → `question_answering`. */
export function categoryKey(category: string): string {
  return category.toLowerCase().split(/\s+/).filter(Boolean).join('_');
}

/** Mean of values that may come from different metrics: on the shared metric's scale, else each divided by its scale. */
function combine(items: ReadonlyArray<{ metric: Metric; value: number }>): { metric: Metric | 'mixed'; score: number } {
  const metrics = new Set(items.map((i) => i.metric));
  if (metrics.size === 1) return { metric: items[0].metric, score: mean(items.map((i) => i.value)) };
  return { metric: 'mixed', score: mean(items.map((i) => i.value / METRIC_SCALE[i.metric])) };
}

/** Per-task means, per-category pooled means and the macro average over tasks. */
export function summarize(results: readonly TaskScores[]): Summary {
  if (results.length === 0)
    throw new EvalError('NO_RESULTS', 'summarize: expected at least one task, got none', { field: 'results' });
  const tasks: Record<string, TaskSummary> = {};
  for (const r of results) {
    if (r.scores.length === 0)
      throw new EvalError('NO_SCORES', `summarize: task "${r.task}" has no scored instances`, {
        field: `${r.task}.scores`,
      });
    if (r.task in tasks)
      throw new EvalError('DUPLICATE_TASK', `summarize: task "${r.task}" appears twice`, {
        field: 'task',
        actual: r.task,
      });
    for (const key of ['answerLoss', 'answerLossWithEos'] as const) {
      if (r[key] && r[key]!.length !== r.scores.length)
        throw new EvalError(
          'BAD_SCORES',
          `summarize: task "${r.task}" has ${r.scores.length} scores but ${r[key]!.length} ${key} values`,
          { field: `${r.task}.${key}` },
        );
    }
    tasks[r.task] = {
      metric: r.metric,
      score: mean(r.scores),
      instances: r.scores.length,
      ...(r.category ? { category: r.category } : {}),
      ...(r.answerLoss ? { answerLoss: finiteMean(r.answerLoss) } : {}),
      ...(r.answerLossWithEos ? { answerLossWithEos: finiteMean(r.answerLossWithEos) } : {}),
      ...(r.demonstrations !== undefined ? { demonstrations: r.demonstrations } : {}),
    };
  }
  const byCategory = new Map<string, TaskScores[]>();
  for (const r of results) {
    if (!r.category) continue;
    const key = categoryKey(r.category);
    byCategory.set(key, [...(byCategory.get(key) ?? []), r]);
  }
  const categories: Record<string, GroupSummary> = {};
  for (const [key, members] of byCategory) {
    const pooled = members.flatMap((m) => m.scores.map((value) => ({ metric: m.metric, value })));
    categories[key] = { ...combine(pooled), tasks: members.length, instances: pooled.length };
  }
  const average: GroupSummary = {
    ...combine(results.map((r) => ({ metric: r.metric, value: tasks[r.task].score }))),
    tasks: results.length,
    instances: results.reduce((n, r) => n + r.scores.length, 0),
  };
  const all = Object.values(tasks);
  const extras = {
    answerLoss: overTasks(all, (t) => t.answerLoss),
    answerLossWithEos: overTasks(all, (t) => t.answerLossWithEos),
    demonstrations: overTasks(all, (t) => t.demonstrations),
  };
  for (const [k, v] of Object.entries(extras)) if (v !== undefined) average[k as keyof typeof extras] = v;
  return { tasks, categories, average };
}
