import type { Metric } from '@hyperllama/datasets';
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
}

export interface TaskSummary {
  metric: Metric;
  /** Mean over instances, on the metric's scale. */
  score: number;
  instances: number;
  category?: string;
}

export interface GroupSummary {
  /** A metric when every member shares it, else `mixed` (scores divided by their scale, so in [0, 1]). */
  metric: Metric | 'mixed';
  score: number;
  tasks: number;
  instances: number;
}

export interface Summary {
  tasks: Record<string, TaskSummary>;
  /** Per category (S-NI's key: lowercased, words joined by `_`): the mean over all the category's instances, as S-NI groups them. */
  categories: Record<string, GroupSummary>;
  /** Macro average: the mean of the task scores. */
  average: GroupSummary;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

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
  if (results.length === 0) throw new EvalError('NO_RESULTS', 'summarize: expected at least one task, got none', { field: 'results' });
  const tasks: Record<string, TaskSummary> = {};
  for (const r of results) {
    if (r.scores.length === 0) throw new EvalError('NO_SCORES', `summarize: task "${r.task}" has no scored instances`, { field: `${r.task}.scores` });
    if (r.task in tasks) throw new EvalError('DUPLICATE_TASK', `summarize: task "${r.task}" appears twice`, { field: 'task', actual: r.task });
    tasks[r.task] = { metric: r.metric, score: mean(r.scores), instances: r.scores.length, ...(r.category ? { category: r.category } : {}) };
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
  const average = {
    ...combine(results.map((r) => ({ metric: r.metric, value: tasks[r.task].score }))),
    tasks: results.length,
    instances: results.reduce((n, r) => n + r.scores.length, 0),
  };
  return { tasks, categories, average };
}
