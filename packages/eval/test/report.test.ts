import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { escapeXml } from '../src/svg.js';
import {
  buildReport,
  formatTable,
  renderBarChart,
  renderCurves,
  renderMarkdown,
  writeReport,
  type MethodResult,
  type TaskScores,
} from '../src/index.js';
import { verdictLines } from '../src/report.js';

/** Minimal XML well-formedness check: balanced, properly nested tags, quoted attributes, known entities only. */
function checkXml(text: string): { elements: Array<{ name: string; attrs: Record<string, string> }>; texts: string[] } {
  const elements: Array<{ name: string; attrs: Record<string, string> }> = [];
  const texts: string[] = [];
  const stack: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let pos = 0;
  let m: RegExpExecArray | null;
  while (pos < text.length) {
    token.lastIndex = pos;
    m = token.exec(text);
    if (!m) throw new Error(`not well-formed at ${pos}: ${text.slice(pos, pos + 40)}`);
    pos = token.lastIndex;
    const [, close, name, attrText, selfClose, content] = m;
    const raw = content ?? attrText ?? '';
    for (const entity of raw.match(/&[^;\s]*;?/g) ?? []) {
      if (!/^&(amp|lt|gt|quot|apos);$/.test(entity)) throw new Error(`bad entity ${entity}`);
    }
    if (content !== undefined) {
      if (content.trim()) texts.push(content);
      continue;
    }
    if (close) {
      if (stack.pop() !== name) throw new Error(`mismatched </${name}>`);
      continue;
    }
    const attrs = Object.fromEntries([...(attrText ?? '').matchAll(/([\w:-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]]));
    elements.push({ name, attrs });
    if (!selfClose) stack.push(name);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  return { elements, texts };
}

const methods: MethodResult[] = [
  {
    method: 'zero-shot',
    configuration: { shots: 0 },
    scores: [
      { task: 't1', metric: 'accuracy', scores: [0, 1, 0, 0] },
      { task: 't2', metric: 'accuracy', scores: [0, 0] },
    ],
  },
  {
    method: 'icl',
    configuration: { shots: 16 },
    scores: [
      { task: 't1', metric: 'accuracy', scores: [1, 1, 1, 0] },
      { task: 't2', metric: 'accuracy', scores: [1, 0] },
    ],
  },
  {
    method: 'prefix <tuning> & "hyper"',
    configuration: { init: 'hyper' },
    scores: [
      { task: 't1', metric: 'accuracy', scores: [1, 1] },
      { task: 't2', metric: 'accuracy', scores: [1, 1] },
    ],
    curve: [
      {
        step: 0,
        scores: [
          { task: 't1', metric: 'accuracy', scores: [0, 1] },
          { task: 't2', metric: 'accuracy', scores: [0, 0] },
        ],
      },
      {
        step: 10,
        scores: [
          { task: 't1', metric: 'accuracy', scores: [1, 1] },
          { task: 't2', metric: 'accuracy', scores: [1, 1] },
        ],
      },
    ],
  },
];

describe('report', () => {
  const report = buildReport(methods, { seed: 3 }, new Date('2026-01-02T03:04:05Z'));
  expect(report.format).toBe('hyperllama-eval/2');

  it('holds methods.<m>.average and methods.<m>.tasks.<t> as numbers with the metric and configuration', () => {
    expect(report.methods['zero-shot']).toMatchObject({
      metric: 'accuracy',
      average: (0.25 + 0) / 2,
      tasks: { t1: 0.25, t2: 0 },
      configuration: { shots: 0 },
    });
    expect(report.methods.icl.average).toBeCloseTo((0.75 + 0.5) / 2, 12);
    expect(report.methods['prefix <tuning> & "hyper"'].curve).toEqual([
      { step: 0, average: 0.25, tasks: { t1: 0.5, t2: 0 } },
      { step: 10, average: 1, tasks: { t1: 1, t2: 1 } },
    ]);
    expect(report.configuration).toEqual({ seed: 3 });
    expect(() => buildReport([methods[0], methods[0]])).toThrow(/twice/);
  });

  it('prints a task × method table with averages (percentages), then the per-method summary', () => {
    const table = formatTable(report);
    const lines = table.trim().split('\n');
    expect(lines[0]).toMatch(/^task\s+metric\s+zero-shot\s+icl\s+prefix <tuning>/);
    expect(lines[2]).toMatch(/^t1\s+accuracy\s+25\.0\s+75\.0\s+100\.0$/);
    expect(lines[5]).toMatch(/^average\s+accuracy\s+12\.5\s+62\.5\s+100\.0$/);
    expect(lines[7]).toMatch(/^method\s+average\s+95% CI\s+answer loss\s+95% CI\s+loss with EOS\s+demonstrations$/);
    expect(lines[9]).toMatch(/^zero-shot\s+12\.5\s+\[\d+\.\d, \d+\.\d\]\s+–\s+–\s+–\s+–$/);
    const md = renderMarkdown(report);
    expect(md).toContain('| t2 | accuracy | 0.0 | 50.0 | 100.0 |');
    expect(md).toContain('| **average** | **accuracy** | **12.5** | **62.5** | **100.0** |');
    expect(md).toContain('| 10 | 100.0 |');
    expect(report.claims).toEqual([]);
  });

  it('draws one bar per method, its height proportional to the average, in well-formed SVG', () => {
    const svg = renderBarChart(report);
    const { elements, texts } = checkXml(svg);
    expect(elements[0].name).toBe('svg');
    const bars = elements.filter((e) => e.name === 'rect' && e.attrs['data-method']);
    expect(bars.map((b) => b.attrs['data-method'])).toEqual([
      'zero-shot',
      'icl',
      escapeXml('prefix <tuning> & "hyper"'),
    ]);
    expect(bars.map((b) => b.attrs['data-value'])).toEqual(['12.5', '62.5', '100.0']);
    const heights = bars.map((b) => Number(b.attrs.height));
    expect(heights[1] / heights[0]).toBeCloseTo(5, 2);
    expect(heights[2] / heights[0]).toBeCloseTo(8, 2);
    expect(texts).toContain('prefix &lt;tuning&gt; &amp; &quot;hyper&quot;');
  });

  it('draws a curve per trained method through its evaluation points', () => {
    const { elements } = checkXml(renderCurves(report));
    const lines = elements.filter((e) => e.name === 'polyline');
    expect(lines).toHaveLength(1);
    const pts = lines[0].attrs.points.split(' ').map((p) => p.split(',').map(Number));
    expect(pts).toHaveLength(2);
    expect(pts[1][0]).toBeGreaterThan(pts[0][0]); // later step to the right
    expect(pts[1][1]).toBeLessThan(pts[0][1]); // higher score drawn higher
    expect(() => renderCurves(buildReport([methods[0]]))).toThrow(/no method/);
  });

  it('writes results.json, results.md and both SVGs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eval-report-'));
    const paths = writeReport(report, dir);
    const json = JSON.parse(readFileSync(paths.json!, 'utf8'));
    expect(json.methods.icl.tasks.t1).toBe(0.75);
    expect(existsSync(paths.markdown!) && existsSync(paths.chart!) && existsSync(paths.curves!)).toBe(true);
    expect(writeReport(buildReport([methods[0]]), join(dir, 'b')).curves).toBeUndefined();
  });
});

const N = 20;
const fill = (v: number | ((i: number) => number)) =>
  Array.from({ length: N }, (_, i) => (typeof v === 'number' ? v : v(i)));
const scored = (
  task: string,
  score: number | ((i: number) => number),
  lossValue: number | ((i: number) => number),
  extra: Partial<TaskScores> = {},
): TaskScores => {
  const l = fill(lossValue);
  return {
    task,
    metric: 'accuracy',
    scores: fill(score),
    answerLoss: l,
    answerLossWithEos: l.map((x) => x + 0.5),
    demonstrations: 0,
    ...extra,
  };
};
const curve = (score: number | ((i: number) => number), lossValue: number) => [
  { step: 0, scores: [scored('t1', 0, 3), scored('t2', 0, 3)] },
  { step: 5, scores: [scored('t1', score, lossValue), scored('t2', score, lossValue)] },
];
const pt = (init: string, score: number | ((i: number) => number), lossValue: number): MethodResult => {
  const c = curve(score, lossValue);
  return {
    method: `prefix-tuning-${init}`,
    configuration: {
      init,
      lr: 0.01,
      steps: 5,
      evalSteps: [0, 5],
      batchSize: 8,
      poolSize: { min: 32, max: 32, mean: 32 },
      poolSplitFromInstances: [],
    },
    scores: c[1].scores,
    curve: c,
  };
};
const alternating = (i: number) => i % 2;

describe('claims and verdicts', () => {
  const results: MethodResult[] = [
    {
      method: 'zero-shot',
      configuration: {},
      scores: [scored('t1', 0, 2), scored('t2', 0, 2), scored('ctl', 1, 0.5, { control: true })],
    },
    {
      method: 'icl',
      configuration: {},
      scores: [
        scored('t1', 1, 1, { demonstrations: 4 }),
        scored('t2', 1, 1, { demonstrations: 4 }),
        scored('ctl', 0, 9, { demonstrations: 4 }),
      ],
    },
    {
      method: 'hyperllama',
      configuration: {},
      scores: [
        scored('t1', 1, 1, { demonstrations: 4 }),
        scored('t2', 1, 1, { demonstrations: 4 }),
        scored('ctl', 0, 9, { demonstrations: 4 }),
      ],
    },
    {
      method: 'hyperllama-swap',
      configuration: {},
      scores: [scored('t1', alternating, 1.5), scored('t2', alternating, 1.5), scored('ctl', 1, 0.1)],
    },
    pt('random', 0, 2),
    pt('shared', alternating, 1.5),
    pt('hyper', 1, 1),
  ];
  const report = buildReport(results, { seed: 0 }, { created: new Date('2026-01-02T03:04:05Z'), resamples: 1000 });

  it('leaves control tasks out of the averages and the claims, and reports them apart', () => {
    expect(report.controlTasks).toEqual(['ctl']);
    expect(report.methods['zero-shot'].average).toBe(0);
    expect(report.methods['zero-shot'].tasks).toEqual({ t1: 0, t2: 0 });
    expect(report.methods['zero-shot'].control).toMatchObject({ average: 1, tasks: { ctl: 1 }, answerLoss: 0.5 });
    expect(report.methods.hyperllama).toMatchObject({
      average: 1,
      answerLoss: 1,
      answerLossWithEos: 1.5,
      demonstrations: 4,
      averageCi: { low: 1, high: 1 },
      answerLossCi: { low: 1, high: 1 },
    });
    // The same by name, without the flag.
    const byName = buildReport(
      results.slice(0, 3).map((r) => ({ ...r, scores: r.scores.map(({ control: _c, ...t }) => t) })),
      {},
      { controlTasks: ['ctl'], resamples: 100 },
    );
    expect(byName.methods.icl.tasks).toEqual({ t1: 1, t2: 1 });
    expect(byName.claims.find((c) => c.id === 'claim 1')!.comparisons[0].score.difference).toBe(1);
    const table = formatTable(report);
    expect(table).toContain('control tasks (left out of the averages above and of the claims): ctl');
    expect(table).toMatch(/^ctl\s+accuracy\s+100\.0\s+0\.0\s+0\.0\s+100\.0/m);
    expect(() => buildReport([results[0]], {}, { controlTasks: ['t1', 't2'] })).toThrow(
      /no task outside the control tasks/,
    );
  });

  it('tests each claim with paired bootstrap intervals on the score and on the answer loss (lower is better)', () => {
    const byId = Object.fromEntries(report.claims.map((c) => [c.id, c]));
    expect(Object.keys(byId)).toEqual(['claim 1', 'claim 2', 'claim 3', 'swap gap']);
    // claim 1: hyperllama 1 vs zero-shot 0 everywhere; loss 1 vs 2.
    expect(byId['claim 1'].comparisons[0]).toMatchObject({
      a: 'hyperllama',
      b: 'zero-shot',
      score: { difference: 1, low: 1, high: 1, verdict: 'holds' },
      answerLoss: { difference: -1, low: -1, high: -1, verdict: 'holds' },
    });
    expect(byId['claim 1']).toMatchObject({ verdict: 'holds', answerLossVerdict: 'holds' });
    // claim 2: ICL and HyperLlama equal → 0, inconclusive.
    expect(byId['claim 2'].comparisons[0].score).toMatchObject({
      difference: 0,
      low: 0,
      high: 0,
      verdict: 'inconclusive',
    });
    // swap gap: own 1 vs swapped 1/0 alternating → +0.5, interval strictly above 0.
    const gap = byId['swap gap'].comparisons[0];
    expect(gap.score.difference).toBe(0.5);
    expect(gap.score.low).toBeGreaterThan(0.2);
    expect(gap.score.high).toBeLessThan(0.8);
    expect(gap.answerLoss).toMatchObject({ difference: -0.5, low: -0.5, high: -0.5, verdict: 'holds' });
    // claim 3 at the last step: hyper beats random (1 vs 0) and shared (1 vs 1/0) → holds.
    expect(byId['claim 3']).toMatchObject({ step: 5, verdict: 'holds', answerLossVerdict: 'holds' });
    expect(byId['claim 3'].comparisons.map((c) => `${c.a} ${c.b}`)).toEqual([
      'prefix-tuning-hyper prefix-tuning-random',
      'prefix-tuning-hyper prefix-tuning-shared',
    ]);
    // When hyper does not beat shared, claim 3 does not hold.
    const worse = buildReport([pt('random', 0, 2), pt('shared', 1, 0.5), pt('hyper', 1, 1)], {}, { resamples: 200 });
    expect(worse.claims[0]).toMatchObject({
      id: 'claim 3',
      verdict: 'inconclusive',
      answerLossVerdict: 'does not hold',
    });
    expect(worse.claims[0].comparisons[1].score).toMatchObject({ difference: 0, verdict: 'inconclusive' });
  });

  it('prints the verdict lines last, in the table and at the end of results.md', () => {
    const expected = [
      'claim 1 (HyperLlama beats zero-shot): holds — +100.0 points [95% CI +100.0, +100.0]; answer loss -1.000 nats/token [95% CI -1.000, -1.000] (lower is better): holds',
      'claim 2 (full-attention ICL beats HyperLlama): inconclusive — +0.0 points [95% CI +0.0, +0.0]; answer loss +0.000 nats/token [95% CI +0.000, +0.000] (lower is better): inconclusive',
      'claim 3 (HyperLlama prefixes initialise prefix tuning better than random and trained-shared prefixes): holds — at step 5: hyper − random +100.0 points [95% CI +100.0, +100.0], hyper − shared +50.0 points',
      "swap gap (HyperLlama's own prefix beats another task's): holds — +50.0 points [95% CI +",
    ];
    const lines = verdictLines(report);
    expect(lines).toHaveLength(4);
    lines.forEach((line, i) => expect(line.startsWith(expected[i])).toBe(true));
    expect(lines[2]).toContain(
      '; answer loss at step 5: hyper − random -1.000 nats/token [95% CI -1.000, -1.000], hyper − shared -0.500 nats/token [95% CI -0.500, -0.500] (lower is better): holds',
    );
    const table = formatTable(report).trimEnd().split('\n');
    expect(table.slice(-4)).toEqual(lines);
    expect(formatTable(report)).toContain(
      'prefix tuning: lr 0.01, 5 steps, minibatches of 8, tuning pool of 32 examples per task',
    );
    const md = renderMarkdown(report)
      .trimEnd()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(md.slice(-4)).toEqual(lines);
    expect(renderMarkdown(report)).toContain(
      '| hyperllama | 100.0 | [100.0, 100.0] | 1.000 | [1.000, 1.000] | 1.500 | 4.0 |',
    );
    // The prefix-tuning table: per step each init's average [CI] / loss, and hyper's paired differences.
    expect(report.prefixTuning!.points[1].inits.hyper).toMatchObject({ average: 1, low: 1, high: 1, answerLoss: 1 });
    expect(report.prefixTuning!.points[0].differences['hyper − random'].score.difference).toBe(0);
    expect(report.prefixTuning).toMatchObject({
      lr: 0.01,
      steps: 5,
      batchSize: 8,
      inits: ['random', 'shared', 'hyper'],
    });
  });
});
