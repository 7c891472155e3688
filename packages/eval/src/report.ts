import type { Metric } from '@hyperllama/datasets';
import { METRIC_SCALE, summarize, type GroupSummary, type Summary, type TaskScores } from './aggregate.js';
import { EvalError } from './errors.js';
import { reportWriter } from './files.js';
import { escapeXml, num, svgDocument } from './svg.js';

/** One evaluated point of a prefix-tuning run: the scores after `step` optimisation steps. */
export interface CurvePoint {
  step: number;
  scores: TaskScores[];
}

/** What a protocol produced for one method. */
export interface MethodResult {
  /** e.g. `zero-shot`, `icl`, `hyperllama`, `prefix-tuning-hyper`. */
  method: string;
  /** Everything that determines the numbers: shots, seed, checkpoint, scoring, steps, ... */
  configuration: Record<string, unknown>;
  /** Final per-instance scores per task. */
  scores: TaskScores[];
  /** Prefix tuning: the scores at each evaluation step (the last equals `scores`). */
  curve?: CurvePoint[];
}

export interface MethodReport {
  metric: Metric | 'mixed';
  /** Macro average over tasks (accuracy / exact match in [0, 1], ROUGE-L in [0, 100], `mixed` in [0, 1]). */
  average: number;
  /** Score per task, on the task's metric's scale. */
  tasks: Record<string, number>;
  /** Metric, instance count and category of each task. */
  taskDetails: Summary['tasks'];
  categories: Record<string, GroupSummary>;
  configuration: Record<string, unknown>;
  /** Macro average (and per-task scores) at each evaluation step, for methods that train. */
  curve?: Array<{ step: number; average: number; tasks: Record<string, number> }>;
}

export interface EvalReport {
  format: 'hyperllama-eval/1';
  created: string;
  /** Settings shared by every method (tasks source, shots, seed, model, ...). */
  configuration: Record<string, unknown>;
  methods: Record<string, MethodReport>;
}

const taskNumbers = (summary: Summary): Record<string, number> => Object.fromEntries(Object.entries(summary.tasks).map(([t, s]) => [t, s.score]));

/** Summarises every method's scores into the report written as results.json. */
export function buildReport(results: readonly MethodResult[], configuration: Record<string, unknown> = {}, created = new Date()): EvalReport {
  if (results.length === 0) throw new EvalError('NO_RESULTS', 'buildReport: expected at least one method, got none', { field: 'results' });
  const methods: Record<string, MethodReport> = {};
  for (const r of results) {
    if (r.method in methods) throw new EvalError('DUPLICATE_METHOD', `buildReport: method "${r.method}" appears twice`, { field: 'method', actual: r.method });
    const summary = summarize(r.scores);
    methods[r.method] = {
      metric: summary.average.metric,
      average: summary.average.score,
      tasks: taskNumbers(summary),
      taskDetails: summary.tasks,
      categories: summary.categories,
      configuration: r.configuration,
      ...(r.curve
        ? {
            curve: r.curve.map((p) => {
              const s = summarize(p.scores);
              return { step: p.step, average: s.average.score, tasks: taskNumbers(s) };
            }),
          }
        : {}),
    };
  }
  return { format: 'hyperllama-eval/1', created: created.toISOString(), configuration, methods };
}

/** Every task of the report, in first-seen order. */
export function reportTasks(report: EvalReport): string[] {
  const seen = new Set<string>();
  for (const m of Object.values(report.methods)) for (const t of Object.keys(m.tasks)) seen.add(t);
  return [...seen];
}

/** A score as printed: accuracy and exact match as percentages, ROUGE-L as is, both with one decimal. */
export function formatScore(value: number | undefined, metric: Metric | 'mixed'): string {
  if (value === undefined) return '–';
  const scale = metric === 'mixed' ? 1 : METRIC_SCALE[metric];
  return ((value / scale) * 100).toFixed(1);
}

function metricOfTask(report: EvalReport, task: string): Metric {
  for (const m of Object.values(report.methods)) if (m.taskDetails[task]) return m.taskDetails[task].metric;
  return 'accuracy';
}

/** The task × method table (rows: tasks then the average), as rows of cells. */
export function reportTable(report: EvalReport): string[][] {
  const methods = Object.keys(report.methods);
  const header = ['task', 'metric', ...methods];
  const rows = reportTasks(report).map((task) => {
    const metric = metricOfTask(report, task);
    return [task, metric, ...methods.map((m) => formatScore(report.methods[m].tasks[task], metric))];
  });
  const avgMetrics = new Set(methods.map((m) => report.methods[m].metric));
  const average = ['average', avgMetrics.size === 1 ? [...avgMetrics][0] : 'mixed', ...methods.map((m) => formatScore(report.methods[m].average, report.methods[m].metric))];
  return [header, ...rows, average];
}

/** The table as aligned plain text for a terminal. */
export function formatTable(report: EvalReport): string {
  const rows = reportTable(report);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0]), rule, ...rows.slice(1, -1).map(line), rule, line(rows[rows.length - 1])].join('\n') + '\n';
}

const mdCell = (s: string): string => s.replace(/\|/g, '\\|');

/** results.md: the table, what the numbers mean, and each method's configuration. */
export function renderMarkdown(report: EvalReport): string {
  const rows = reportTable(report);
  const table = [
    `| ${rows[0].map(mdCell).join(' | ')} |`,
    `| ${rows[0].map((_, c) => (c < 2 ? '---' : '---:')).join(' | ')} |`,
    ...rows.slice(1).map((r, i) => {
      const cells = r.map(mdCell);
      return i === rows.length - 2 ? `| ${cells.map((c) => `**${c}**`).join(' | ')} |` : `| ${cells.join(' | ')} |`;
    }),
  ];
  const lines = [
    '# Evaluation results',
    '',
    `Created ${report.created}. Scores are percentages: accuracy (rank classification) and exact match ×100, ROUGE-L as`,
    'Super-NaturalInstructions reports it (0–100). The average is the macro average over tasks (`mixed`: each task',
    'divided by its metric\'s maximum first).',
    '',
    ...table,
    '',
    '## Configuration',
    '',
    '```json',
    JSON.stringify(report.configuration, null, 2),
    '```',
    '',
    ...Object.entries(report.methods).flatMap(([name, m]) => [`- **${name}**: \`${JSON.stringify(m.configuration)}\``]),
    '',
  ];
  const curves = Object.entries(report.methods).filter(([, m]) => m.curve);
  if (curves.length > 0) {
    lines.push('## Prefix tuning curves', '', '| step | ' + curves.map(([n]) => mdCell(n)).join(' | ') + ' |', '| ---: | ' + curves.map(() => '---:').join(' | ') + ' |');
    const steps = [...new Set(curves.flatMap(([, m]) => m.curve!.map((p) => p.step)))].sort((a, b) => a - b);
    for (const step of steps) {
      const cells = curves.map(([, m]) => formatScore(m.curve!.find((p) => p.step === step)?.average, m.metric));
      lines.push(`| ${step} | ${cells.join(' | ')} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

// ---- SVG (hand-written, no dependencies) ----

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export { escapeXml };

/** Horizontal grid lines and labels for a 0–100 axis. */
function yAxis(left: number, top: number, plotW: number, plotH: number, label: string): string[] {
  const out: string[] = [];
  for (let v = 0; v <= 100; v += 20) {
    const y = top + plotH - (v / 100) * plotH;
    out.push(`<line x1="${left}" y1="${num(y)}" x2="${left + plotW}" y2="${num(y)}" stroke="#dddddd"/>`);
    out.push(`<text x="${left - 6}" y="${num(y + 4)}" text-anchor="end">${v}</text>`);
  }
  out.push(`<text transform="translate(14 ${num(top + plotH / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(label)}</text>`);
  return out;
}

/** Bar chart of each method's average (as a percentage); every bar carries `data-method` and `data-value`. */
export function renderBarChart(report: EvalReport): string {
  const methods = Object.entries(report.methods);
  const [left, top, barW, gap, plotH] = [56, 40, 64, 24, 260];
  const plotW = methods.length * (barW + gap) + gap;
  const width = left + plotW + 20;
  const height = top + plotH + 60;
  const body = yAxis(left, top, plotW, plotH, 'average score (%)');
  methods.forEach(([name, m], i) => {
    const pct = Math.max(0, Math.min(100, Number(formatScore(m.average, m.metric))));
    const h = (pct / 100) * plotH;
    const x = left + gap + i * (barW + gap);
    const y = top + plotH - h;
    body.push(
      `<rect x="${num(x)}" y="${num(y)}" width="${barW}" height="${num(h)}" fill="${PALETTE[i % PALETTE.length]}" data-method="${escapeXml(name)}" data-value="${pct.toFixed(1)}"><title>${escapeXml(`${name}: ${pct.toFixed(1)}`)}</title></rect>`,
      `<text x="${num(x + barW / 2)}" y="${num(y - 4)}" text-anchor="middle">${pct.toFixed(1)}</text>`,
      `<text x="${num(x + barW / 2)}" y="${top + plotH + 16}" text-anchor="middle">${escapeXml(name)}</text>`,
    );
  });
  body.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333333"/>`);
  return svgDocument(width, height, 'Average over held-out tasks', body);
}

/** Methods that have a curve (prefix tuning by initialisation). */
export function curveMethods(report: EvalReport): string[] {
  return Object.entries(report.methods)
    .filter(([, m]) => m.curve && m.curve.length > 0)
    .map(([n]) => n);
}

/** Line chart of average score against prefix-tuning steps, one polyline (with `data-method`) per method. */
export function renderCurves(report: EvalReport): string {
  const names = curveMethods(report);
  if (names.length === 0) throw new EvalError('NO_CURVES', 'renderCurves: no method in the report has a curve', { field: 'methods' });
  const [left, top, plotW, plotH] = [56, 40, 420, 260];
  const maxStep = Math.max(1, ...names.flatMap((n) => report.methods[n].curve!.map((p) => p.step)));
  const width = left + plotW + 190;
  const height = top + plotH + 50;
  const body = yAxis(left, top, plotW, plotH, 'average score (%)');
  for (let i = 0; i <= 4; i++) {
    const step = Math.round((maxStep * i) / 4);
    const x = left + (step / maxStep) * plotW;
    body.push(`<text x="${num(x)}" y="${top + plotH + 16}" text-anchor="middle">${step}</text>`);
  }
  body.push(`<text x="${num(left + plotW / 2)}" y="${top + plotH + 36}" text-anchor="middle">prefix-tuning steps</text>`);
  body.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333333"/>`);
  names.forEach((name, i) => {
    const m = report.methods[name];
    const color = PALETTE[i % PALETTE.length];
    const pts = m.curve!.map((p) => {
      const pct = Math.max(0, Math.min(100, Number(formatScore(p.average, m.metric))));
      return `${num(left + (p.step / maxStep) * plotW)},${num(top + plotH - (pct / 100) * plotH)}`;
    });
    body.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}" data-method="${escapeXml(name)}"/>`);
    for (const pt of pts) {
      const [x, y] = pt.split(',');
      body.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
    }
    const ly = top + 10 + i * 18;
    body.push(`<line x1="${left + plotW + 16}" y1="${ly}" x2="${left + plotW + 36}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    body.push(`<text x="${left + plotW + 42}" y="${ly + 4}">${escapeXml(name)}</text>`);
  });
  return svgDocument(width, height, 'Prefix tuning by initialisation', body);
}

/** Writes results.json, results.md, methods.svg and (when a method has a curve) prefix-tuning.svg; returns the paths. */
export function writeReport(report: EvalReport, dir: string): Record<'json' | 'markdown' | 'chart' | 'curves', string | undefined> {
  const write = reportWriter(dir);
  return {
    json: write('results.json', JSON.stringify(report, null, 2) + '\n'),
    markdown: write('results.md', renderMarkdown(report)),
    chart: write('methods.svg', renderBarChart(report)),
    curves: curveMethods(report).length > 0 ? write('prefix-tuning.svg', renderCurves(report)) : undefined,
  };
}
