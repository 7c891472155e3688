import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildReport, escapeXml, formatTable, renderBarChart, renderCurves, renderMarkdown, writeReport, type MethodResult } from '../src/index.js';

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
  { method: 'zero-shot', configuration: { shots: 0 }, scores: [{ task: 't1', metric: 'accuracy', scores: [0, 1, 0, 0] }, { task: 't2', metric: 'accuracy', scores: [0, 0] }] },
  { method: 'icl', configuration: { shots: 16 }, scores: [{ task: 't1', metric: 'accuracy', scores: [1, 1, 1, 0] }, { task: 't2', metric: 'accuracy', scores: [1, 0] }] },
  {
    method: 'prefix <tuning> & "hyper"',
    configuration: { init: 'hyper' },
    scores: [{ task: 't1', metric: 'accuracy', scores: [1, 1] }, { task: 't2', metric: 'accuracy', scores: [1, 1] }],
    curve: [
      { step: 0, scores: [{ task: 't1', metric: 'accuracy', scores: [0, 1] }, { task: 't2', metric: 'accuracy', scores: [0, 0] }] },
      { step: 10, scores: [{ task: 't1', metric: 'accuracy', scores: [1, 1] }, { task: 't2', metric: 'accuracy', scores: [1, 1] }] },
    ],
  },
];

describe('report', () => {
  const report = buildReport(methods, { seed: 3 }, new Date('2026-01-02T03:04:05Z'));

  it('holds methods.<m>.average and methods.<m>.tasks.<t> as numbers with the metric and configuration', () => {
    expect(report.methods['zero-shot']).toMatchObject({ metric: 'accuracy', average: (0.25 + 0) / 2, tasks: { t1: 0.25, t2: 0 }, configuration: { shots: 0 } });
    expect(report.methods.icl.average).toBeCloseTo((0.75 + 0.5) / 2, 12);
    expect(report.methods['prefix <tuning> & "hyper"'].curve).toEqual([
      { step: 0, average: 0.25, tasks: { t1: 0.5, t2: 0 } },
      { step: 10, average: 1, tasks: { t1: 1, t2: 1 } },
    ]);
    expect(report.configuration).toEqual({ seed: 3 });
    expect(() => buildReport([methods[0], methods[0]])).toThrow(/twice/);
  });

  it('prints a task × method table with averages (percentages)', () => {
    const table = formatTable(report);
    const lines = table.trim().split('\n');
    expect(lines[0]).toMatch(/^task\s+metric\s+zero-shot\s+icl\s+prefix <tuning>/);
    expect(lines[2]).toMatch(/^t1\s+accuracy\s+25\.0\s+75\.0\s+100\.0$/);
    expect(lines[lines.length - 1]).toMatch(/^average\s+accuracy\s+12\.5\s+62\.5\s+100\.0$/);
    const md = renderMarkdown(report);
    expect(md).toContain('| t2 | accuracy | 0.0 | 50.0 | 100.0 |');
    expect(md).toContain('| **average** | **accuracy** | **12.5** | **62.5** | **100.0** |');
    expect(md).toContain('| 10 | 100.0 |');
  });

  it('draws one bar per method, its height proportional to the average, in well-formed SVG', () => {
    const svg = renderBarChart(report);
    const { elements, texts } = checkXml(svg);
    expect(elements[0].name).toBe('svg');
    const bars = elements.filter((e) => e.name === 'rect' && e.attrs['data-method']);
    expect(bars.map((b) => b.attrs['data-method'])).toEqual(['zero-shot', 'icl', escapeXml('prefix <tuning> & "hyper"')]);
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
