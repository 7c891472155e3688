import { mean } from '@hyperllama/runtime';
import { escapeXml, EvalError, type EvalReport, num, reportWriter, svgDocument as svg } from '@hyperllama/eval';

export type AnalysisName = 'masks' | 'compression' | 'sensitivity' | 'transfer';
export const ANALYSES: readonly AnalysisName[] = ['masks', 'compression', 'sensitivity', 'transfer'];

/** What an analysis writes as results.json (and renders as results.md). */
export interface AnalysisReport {
  format: 'hyperllama-analysis/1';
  analysis: AnalysisName;
  created: string;
  /** Everything that determines the numbers (model, tasks, shots, steps, seed, ...). */
  configuration: Record<string, unknown>;
  /** Every variant / method / initialisation compared, in table order. */
  variants: string[];
  /** The main table (cells already formatted). */
  table: { header: string[]; rows: string[][] };
  /** Further tables (title → header and rows). */
  extraTables?: Array<{ title: string; header: string[]; rows: string[][] }>;
  /** The analysis's numbers (per variant, per task, per draw ...). */
  data: Record<string, unknown>;
  /** Per-variant scores in `hyperllama-eval run`'s report format, when the analysis evaluates methods. */
  evaluation?: EvalReport;
  /** Plain-language reading of the numbers, with their caveats. */
  interpretation: string;
  /** SVG files written next to results.json. */
  figures: string[];
}

const mdCell = (s: string): string => s.replace(/\|/g, '\\|');

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const numeric = (c: number) => rows.length > 0 && rows.every((r) => /^[-+−]?[\d.]+|^–$|^n\/a$/.test(r[c] ?? ''));
  return [
    `| ${header.map(mdCell).join(' | ')} |`,
    `| ${header.map((_, c) => (numeric(c) ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`),
  ];
}

const TITLES: Record<AnalysisName, string> = {
  masks: 'Attention-mask ablation',
  compression: 'Compression quality',
  sensitivity: 'Sensitivity to the choice of examples',
  transfer: 'Cross-task transfer of prefix initialisations',
};

/** results.md of an analysis. */
export function renderAnalysisMarkdown(r: AnalysisReport): string {
  const lines = [
    `# ${TITLES[r.analysis]}`,
    '',
    `Created ${r.created}.`,
    '',
    ...markdownTable(r.table.header, r.table.rows),
    '',
  ];
  for (const t of r.extraTables ?? []) lines.push(`## ${t.title}`, '', ...markdownTable(t.header, t.rows), '');
  lines.push('## Interpretation', '', r.interpretation, '');
  if (r.figures.length > 0) lines.push('## Figures', '', ...r.figures.map((f) => `![${f}](${f})`), '');
  lines.push('## Configuration', '', '```json', JSON.stringify(r.configuration, null, 2), '```', '');
  return lines.join('\n');
}

/** Writes results.json, results.md and the figures (name → SVG text) into `dir`; returns the paths. */
export function writeAnalysis(
  r: AnalysisReport,
  figures: Record<string, string>,
  dir: string,
): { json: string; markdown: string; figures: string[] } {
  const missing = r.figures.filter((f) => !(f in figures));
  if (missing.length > 0)
    throw new EvalError('BAD_OPTION', `writeAnalysis: figure(s) ${missing.join(', ')} listed but not given`, {
      field: 'figures',
      actual: missing,
    });
  const write = reportWriter(dir);
  return {
    json: write('results.json', JSON.stringify(r, null, 2) + '\n'),
    markdown: write('results.md', renderAnalysisMarkdown(r)),
    figures: r.figures.map((f) => write(f, figures[f])),
  };
}

// ---- SVG figures (hand-written, like the report's) ----

const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];
/** Nice axis bounds and ticks covering [lo, hi]. */
function ticks(lo: number, hi: number, count = 5): { lo: number; hi: number; values: number[] } {
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const a = Math.floor(lo / step) * step;
  const b = Math.ceil(hi / step) * step;
  const values: number[] = [];
  for (let v = a; v <= b + step / 2; v += step) values.push(Math.round(v / step) * step);
  return { lo: a, hi: b, values };
}

export interface ScatterPoint {
  x: number;
  y: number;
  label: string;
  /** Series (colour); default one series. */
  series?: string;
}

/** Scatter plot with labelled points; each point carries `data-label`, `data-x`, `data-y`. */
export function renderScatter(
  points: readonly ScatterPoint[],
  o: { title: string; xLabel: string; yLabel: string; logX?: boolean },
): string {
  const finite = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.logX || p.x > 0));
  const fx = (x: number) => (o.logX ? Math.log2(x) : x);
  const xt = ticks(Math.min(...finite.map((p) => fx(p.x)), 0), Math.max(...finite.map((p) => fx(p.x)), 1));
  const yt = ticks(Math.min(0, ...finite.map((p) => p.y)), Math.max(...finite.map((p) => p.y), 0.01));
  const [left, top, w, h] = [64, 40, 460, 300];
  const series = [...new Set(finite.map((p) => p.series ?? ''))];
  const X = (x: number) => left + ((fx(x) - xt.lo) / (xt.hi - xt.lo)) * w;
  const Y = (y: number) => top + h - ((y - yt.lo) / (yt.hi - yt.lo)) * h;
  const body: string[] = [];
  for (const v of yt.values)
    body.push(
      `<line x1="${left}" y1="${num(Y(v))}" x2="${left + w}" y2="${num(Y(v))}" stroke="#dddddd"/>`,
      `<text x="${left - 6}" y="${num(Y(v) + 4)}" text-anchor="end">${num(v)}</text>`,
    );
  for (const v of xt.values) {
    const x = left + ((v - xt.lo) / (xt.hi - xt.lo)) * w;
    body.push(
      `<line x1="${num(x)}" y1="${top}" x2="${num(x)}" y2="${top + h}" stroke="#eeeeee"/>`,
      `<text x="${num(x)}" y="${top + h + 16}" text-anchor="middle">${o.logX ? num(2 ** v) : num(v)}</text>`,
    );
  }
  body.push(
    `<line x1="${left}" y1="${top + h}" x2="${left + w}" y2="${top + h}" stroke="#333333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + h}" stroke="#333333"/>`,
    `<text x="${num(left + w / 2)}" y="${top + h + 36}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text transform="translate(16 ${num(top + h / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  for (const p of finite) {
    const color = PALETTE[series.indexOf(p.series ?? '') % PALETTE.length];
    body.push(
      `<circle cx="${num(X(p.x))}" cy="${num(Y(p.y))}" r="4" fill="${color}" fill-opacity="0.8" data-label="${escapeXml(p.label)}" data-x="${p.x}" data-y="${p.y}"><title>${escapeXml(`${p.label}: (${num(p.x)}, ${num(p.y)})`)}</title></circle>`,
      `<text x="${num(X(p.x) + 6)}" y="${num(Y(p.y) - 5)}" font-size="9" fill="#555555">${escapeXml(p.label)}</text>`,
    );
  }
  series.filter(Boolean).forEach((s, i) => {
    const y = top + 10 + i * 18;
    body.push(
      `<circle cx="${left + w + 20}" cy="${y}" r="4" fill="${PALETTE[i % PALETTE.length]}"/>`,
      `<text x="${left + w + 30}" y="${y + 4}">${escapeXml(s)}</text>`,
    );
  });
  return svg(left + w + (series.some(Boolean) ? 170 : 30), top + h + 50, o.title, body);
}

/**
 * Dot plot: per group (x axis, e.g. a task) and series (colour, e.g. a method), one dot per value (e.g. per draw of
 * examples) and a bar at their mean. Each dot carries `data-series`, `data-group`, `data-value`.
 */
export function renderDotPlot(
  groups: readonly string[],
  series: ReadonlyArray<{ name: string; values: readonly (readonly number[])[] }>,
  o: { title: string; yLabel: string },
): string {
  const all = series.flatMap((s) => s.values.flat()).filter(Number.isFinite);
  const yt = ticks(Math.min(0, ...all), Math.max(1, ...all));
  const [left, top, groupW, h] = [64, 40, Math.max(48, 18 * series.length + 24), 280];
  const w = groups.length * groupW;
  const Y = (y: number) => top + h - ((y - yt.lo) / (yt.hi - yt.lo)) * h;
  const body: string[] = [];
  for (const v of yt.values)
    body.push(
      `<line x1="${left}" y1="${num(Y(v))}" x2="${left + w}" y2="${num(Y(v))}" stroke="#dddddd"/>`,
      `<text x="${left - 6}" y="${num(Y(v) + 4)}" text-anchor="end">${num(v)}</text>`,
    );
  body.push(
    `<text transform="translate(16 ${num(top + h / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW;
    body.push(
      `<text transform="translate(${num(x0 + groupW / 2)} ${top + h + 10}) rotate(35)" font-size="10">${escapeXml(g)}</text>`,
    );
    series.forEach((s, si) => {
      const x = x0 + 12 + si * 18 + 6;
      const values = (s.values[gi] ?? []).filter(Number.isFinite);
      const color = PALETTE[si % PALETTE.length];
      values.forEach((v, j) => {
        const jitter = ((j % 5) - 2) * 1.5;
        body.push(
          `<circle cx="${num(x + jitter)}" cy="${num(Y(v))}" r="3" fill="${color}" fill-opacity="0.6" data-series="${escapeXml(s.name)}" data-group="${escapeXml(g)}" data-value="${v}"/>`,
        );
      });
      if (values.length > 0) {
        const m = mean(values);
        body.push(
          `<line x1="${num(x - 7)}" y1="${num(Y(m))}" x2="${num(x + 7)}" y2="${num(Y(m))}" stroke="${color}" stroke-width="2"/>`,
        );
      }
    });
  });
  body.push(`<line x1="${left}" y1="${top + h}" x2="${left + w}" y2="${top + h}" stroke="#333333"/>`);
  series.forEach((s, i) => {
    const y = top + 10 + i * 18;
    body.push(
      `<circle cx="${left + w + 20}" cy="${y}" r="4" fill="${PALETTE[i % PALETTE.length]}"/>`,
      `<text x="${left + w + 30}" y="${y + 4}">${escapeXml(s.name)}</text>`,
    );
  });
  return svg(left + w + 170, top + h + 110, o.title, body);
}

/** Line chart: one polyline (with `data-series`) per series of (x, y) points, legend on the right. */
export function renderLines(
  series: ReadonlyArray<{ name: string; points: ReadonlyArray<{ x: number; y: number }> }>,
  o: { title: string; xLabel: string; yLabel: string },
): string {
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const xt = ticks(Math.min(...pts.map((p) => p.x)), Math.max(...pts.map((p) => p.x)));
  const yt = ticks(Math.min(...pts.map((p) => p.y)), Math.max(...pts.map((p) => p.y)));
  const [left, top, w, h] = [64, 40, 420, 260];
  const X = (x: number) => left + ((x - xt.lo) / (xt.hi - xt.lo)) * w;
  const Y = (y: number) => top + h - ((y - yt.lo) / (yt.hi - yt.lo)) * h;
  const body: string[] = [];
  for (const v of yt.values)
    body.push(
      `<line x1="${left}" y1="${num(Y(v))}" x2="${left + w}" y2="${num(Y(v))}" stroke="#dddddd"/>`,
      `<text x="${left - 6}" y="${num(Y(v) + 4)}" text-anchor="end">${num(v)}</text>`,
    );
  for (const v of xt.values)
    body.push(`<text x="${num(X(v))}" y="${top + h + 16}" text-anchor="middle">${num(v)}</text>`);
  body.push(
    `<line x1="${left}" y1="${top + h}" x2="${left + w}" y2="${top + h}" stroke="#333333"/>`,
    `<text x="${num(left + w / 2)}" y="${top + h + 36}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text transform="translate(16 ${num(top + h / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const ok = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    body.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${ok.map((p) => `${num(X(p.x))},${num(Y(p.y))}`).join(' ')}" data-series="${escapeXml(s.name)}"/>`,
    );
    for (const p of ok) body.push(`<circle cx="${num(X(p.x))}" cy="${num(Y(p.y))}" r="3" fill="${color}"/>`);
    const ly = top + 10 + i * 18;
    body.push(
      `<line x1="${left + w + 16}" y1="${ly}" x2="${left + w + 36}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${left + w + 42}" y="${ly + 4}">${escapeXml(s.name)}</text>`,
    );
  });
  return svg(left + w + 190, top + h + 50, o.title, body);
}

/** A [0, 1] score as a percentage with one decimal ("–" when missing). */
export const pct = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? '–' : (100 * x).toFixed(1);
/** A number with `digits` decimals ("n/a" when not finite). */
export const fixed = (x: number | undefined | null, digits = 2): string =>
  x === undefined || x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
