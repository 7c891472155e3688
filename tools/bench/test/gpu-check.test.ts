import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findWebGPUAdapter } from '../../scripts/webgpu-adapter.mjs';
import {
  evaluateTargets,
  markdown,
  readCpuReference,
  type GpuPhase,
  type GpuReport,
} from '../../scripts/gpu-check.mjs';

// tools/scripts/gpu-check.mjs: the one script a session with a GPU runs for the GPU targets. Here it runs in
// --quick mode on whatever adapter Dawn finds (Mesa's llvmpipe on a machine without a GPU): every phase must report
// finite numbers. Whether an adapter exists is asked of Dawn directly; only its absence skips that test.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const script = join(root, 'tools', 'scripts', 'gpu-check.mjs');
const reference = join(root, 'tools', 'bench', 'cpu-reference.json');
const found = await findWebGPUAdapter();
if (!found.adapter) console.warn(`[gpu-check.test] the --quick run is skipped: ${found.why}`);

const dir = mkdtempSync(join(tmpdir(), 'gpu-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const finite = (x: unknown) => typeof x === 'number' && Number.isFinite(x);

describe('gpu-check: CPU figures and targets', () => {
  it('tools/bench/cpu-reference.json holds docs/performance.md’s tfjs column for tiny and small', () => {
    const doc = readFileSync(join(root, 'docs', 'performance.md'), 'utf8');
    const table: Record<string, number> = {};
    for (const m of doc.matchAll(
      /^\| (tiny|small) \| (train tokens\/s|forward tokens\/s|decode tokens\/s|peak RSS MB) \| [\d,.]+ \| ([\d,.]+) \|/gm,
    ))
      table[`${m[1]} ${m[2]}`] = Number(m[3].replace(/,/g, ''));
    const metric: Record<string, string> = {
      trainTokensPerSec: 'train tokens/s',
      forwardTokensPerSec: 'forward tokens/s',
      decodeTokensPerSec: 'decode tokens/s',
      peakRssMB: 'peak RSS MB',
    };
    const json = JSON.parse(readFileSync(reference, 'utf8')) as {
      records: { name: string; metric: string; value: number }[];
    };
    expect(json.records).toHaveLength(8);
    for (const r of json.records) expect(r.value, `${r.name} ${r.metric}`).toBe(table[`${r.name} ${metric[r.metric]}`]);
    const ref = readCpuReference(reference);
    expect(ref.cpus).toBe(2);
    expect(ref.figures.small.train?.value).toBe(572);
    expect(ref.figures.tiny.decode?.value).toBe(191);
  });

  it('reads a bench JSON: each metric’s best CPU backend, never a webgpu row', () => {
    const file = join(dir, 'bench.json');
    const rec = (backend: string, metric: string, value: number) => ({
      suite: 'model',
      name: 'small',
      backend,
      metric,
      value,
      unit: 'tokens/s',
    });
    writeFileSync(
      file,
      JSON.stringify({
        meta: { cpus: 2 },
        records: [
          rec('wasm×1+openblas×2', 'trainTokensPerSec', 600),
          rec('wasm×2', 'trainTokensPerSec', 200),
          rec('webgpu', 'trainTokensPerSec', 5000),
          rec('wasm×2', 'decodeTokensPerSec', 70),
          rec('wasm×1+openblas×2', 'decodeTokensPerSec', 60),
        ],
      }),
    );
    expect(readCpuReference(file).figures).toEqual({
      small: {
        train: { value: 600, backend: 'wasm×1+openblas×2' },
        decode: { value: 70, backend: 'wasm×2' },
      },
    });
  });

  it('decides each target: met, not met, or not decided when a figure or a phase is missing', () => {
    const model = (config: string, kernel: 'tfjs' | 'tiled', train: number, decode: number): GpuPhase => ({
      name: `model-${config}-${kernel}`,
      kind: 'model',
      config,
      kernel,
      status: 'ok',
      seconds: 1,
      data: { trainTokensPerSec: train, forwardTokensPerSec: 2 * train, decodeTokensPerSec: decode, peakRssMB: 500 },
    });
    const phases: GpuPhase[] = [
      {
        name: 'matmul',
        kind: 'matmul',
        status: 'ok',
        seconds: 1,
        data: { gflops: { 1024: { tfjs: 600, tiled: 900 }, 4096: { tfjs: 2236, tiled: 17000 } } },
      },
      model('tiny', 'tfjs', 4576, 35),
      model('tiny', 'tiled', 5000, 1000),
      model('small', 'tfjs', 3689, 13),
      { name: 'model-small-tiled', kind: 'model', config: 'small', kernel: 'tiled', status: 'timeout', seconds: 180 },
      {
        name: 'hyperllama-1b',
        kind: 'hyperllama',
        status: 'ok',
        seconds: 60,
        data: {
          model: 'TinyLlama-1.1B shapes',
          steps: [
            { loss: 10.4, gradNorm: 3, seconds: 9 },
            { loss: 10.3, gradNorm: 2, seconds: 1.5 },
          ],
          firstStepSeconds: 9,
          secondsPerStep: 1.5,
          lossesFinite: true,
          changedTensors: 301,
          trainableTensors: 301,
        },
      },
    ];
    const cpuReference = readCpuReference(reference);
    const targets = evaluateTargets(
      { phases, cpuReference },
      { quick: false, peak: { gflops: 67_000, source: 'datasheet' } },
    );
    expect(targets.map((t) => [t.id, t.measured, t.required, t.met])).toEqual([
      ['matmul-4096', 17000, 16750, true],
      ['small-train', 3689, 5720, false],
      ['tiny-decode', 1000, 955, true],
      ['small-decode', 13, 320, false],
      ['hyperllama-1b', 1.5, null, true],
    ]);
    // No fp32 peak, no CPU figures, a failed 1.1B phase: nothing is decided but the failure.
    const failed = phases.map((p) =>
      p.name === 'hyperllama-1b' ? { ...p, status: 'failed' as const, error: 'out of memory', data: undefined } : p,
    );
    const undecided = evaluateTargets({ phases: failed, cpuReference: null }, { quick: false, peak: null });
    expect(undecided.map((t) => t.met)).toEqual([null, null, null, null, false]);
    expect(undecided[4].note).toBe('failed: out of memory');
    expect(undecided[1].note).toContain('CPU figure missing');
  });
});

describe.skipIf(!found.adapter)(`gpu-check --quick on the webgpu backend (${found.adapter ?? found.why})`, () => {
  it('runs every phase in its own process and reports finite numbers for each', { timeout: 900_000 }, () => {
    const out = join(dir, 'quick');
    const r = spawnSync(process.execPath, [script, '--quick', '--out', out], { encoding: 'utf8', cwd: root });
    expect(r.status, r.stderr.slice(-4000)).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'gpu-check.json'), 'utf8')) as GpuReport;
    const phases = Object.fromEntries(report.phases.map((p) => [p.name, p]));
    expect(Object.keys(phases)).toEqual(['adapter', 'matmul', 'model-tiny-tfjs', 'model-tiny-tiled', 'hyperllama-1b']);
    for (const p of report.phases) expect(p.status, `${p.name}: ${p.error}`).toBe('ok');

    const adapter = phases.adapter.data as Record<string, unknown>;
    expect(adapter.backend).toBe('webgpu');
    expect(['default', 'opengles']).toContain(adapter.source);
    expect(typeof adapter.isFallbackAdapter).toBe('boolean');
    expect(finite((adapter.deviceLimits as Record<string, number>).maxStorageBufferBindingSize)).toBe(true);
    expect(report.adapter).toEqual(adapter);

    const gflops = phases.matmul.data!.gflops as Record<string, Record<string, number>>;
    expect(Object.keys(gflops)).toEqual(['128', '256']);
    for (const size of Object.values(gflops)) {
      expect(finite(size.tfjs) && size.tfjs > 0).toBe(true);
      expect(finite(size.tiled) && size.tiled > 0).toBe(true);
    }

    for (const name of ['model-tiny-tfjs', 'model-tiny-tiled']) {
      const d = phases[name].data!;
      expect(d.name).toBe('tiny 1x32 8new');
      for (const k of ['trainTokensPerSec', 'forwardTokensPerSec', 'decodeTokensPerSec', 'peakRssMB'])
        expect(finite(d[k]) && (d[k] as number) > 0, `${name} ${k} = ${String(d[k])}`).toBe(true);
    }
    expect(phases['model-tiny-tiled'].data!.backend).toBe('webgpu tiled-matmul');

    const hl = phases['hyperllama-1b'].data as {
      steps: { loss: number; seconds: number }[];
      changedTensors: number;
      trainableTensors: number;
      secondsPerStep: number;
      lossesFinite: boolean;
    };
    expect(hl.steps).toHaveLength(2);
    for (const s of hl.steps) expect(finite(s.loss) && finite(s.seconds)).toBe(true);
    expect(hl.lossesFinite).toBe(true);
    expect(hl.changedTensors).toBe(hl.trainableTensors);
    expect(hl.trainableTensors).toBeGreaterThan(10);
    expect(finite(hl.secondsPerStep)).toBe(true);

    // Quick sizes decide nothing, but every target is listed and the tables are printed.
    expect(report.targets.map((t) => t.id)).toEqual([
      'matmul-4096',
      'small-train',
      'tiny-decode',
      'small-decode',
      'hyperllama-1b',
    ]);
    expect(report.targets.every((t) => t.met === null)).toBe(true);
    expect(report.markdown).toBe(markdown(report));
    expect(report.markdown).toContain('| fp32 matMul, GFLOPS | tfjs-webgpu | tiled (ours) |');
    expect(report.markdown).toContain('| GPU target | measured | required | result |');
    expect(r.stdout).toContain(report.markdown);
    expect(readFileSync(join(out, 'gpu-check.md'), 'utf8')).toBe(`${report.markdown}\n`);
  });
});
