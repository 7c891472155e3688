import { describe, expect, it } from 'vitest';
import { EvalError, summarize } from '../src/index.js';
import { categoryKey } from '../src/aggregate.js';

describe('summarize', () => {
  it('averages per task, pools per category (as S-NI groups instances), and macro-averages tasks', () => {
    const s = summarize([
      { task: 'a', category: 'Question Answering', metric: 'rougeL', scores: [100, 0, 50, 50] }, // 50
      { task: 'b', category: 'question  answering', metric: 'rougeL', scores: [20] }, // 20
      { task: 'c', category: 'Sentiment', metric: 'rougeL', scores: [80, 60] }, // 70
    ]);
    expect(s.tasks.a).toEqual({ metric: 'rougeL', score: 50, instances: 4, category: 'Question Answering' });
    expect(s.tasks.b.score).toBe(20);
    // category question_answering pools 5 instances: (100+0+50+50+20)/5 = 44, not the task mean (50+20)/2 = 35
    expect(s.categories.question_answering).toEqual({ metric: 'rougeL', score: 44, tasks: 2, instances: 5 });
    expect(s.categories.sentiment.score).toBe(70);
    expect(s.average).toEqual({ metric: 'rougeL', score: (50 + 20 + 70) / 3, tasks: 3, instances: 7 });
  });

  it('puts mixed metrics on one [0, 1] scale', () => {
    const s = summarize([
      { task: 'gen', metric: 'rougeL', scores: [60] },
      { task: 'cls', metric: 'accuracy', scores: [1, 0] },
    ]);
    expect(s.average.metric).toBe('mixed');
    expect(s.average.score).toBeCloseTo((0.6 + 0.5) / 2, 12);
  });

  it('rejects empty input with typed errors', () => {
    expect(() => summarize([])).toThrow(EvalError);
    expect(() => summarize([{ task: 'x', metric: 'exact', scores: [] }])).toThrow(/task "x" has no scored instances/);
    expect(() =>
      summarize([
        { task: 'x', metric: 'exact', scores: [1] },
        { task: 'x', metric: 'exact', scores: [1] },
      ]),
    ).toThrow(/twice/);
    expect(categoryKey('Text  Categorization')).toBe('text_categorization');
  });
});
