import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDirAtomic } from '@hyperllama/hypernet';
import {
  disposeBackend,
  fromFloat32,
  initBackend,
  readSafetensors,
  toFloat32,
  writeFileAtomic,
  writeSafetensors,
} from '@hyperllama/runtime';
import { LOCK_FILE, acquireRunLock, truncateMetrics } from '@hyperllama/training';
import { main } from '../src/index.js';
import { TINY, memoryIo } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'trainer-checkpoint-'));
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await disposeBackend();
});

const RUN = ['--method', 'zero-shot', '--save-every', '2', '--eval-every', '0', ...TINY];

async function train(args: string[]): Promise<{ code: number; log: string }> {
  const io = memoryIo();
  const code = await main(args, io, () => {});
  return { code, log: io.lines.join('\n') };
}

/** A finished 4-step run, copied fresh for each test that damages it. */
let template: string;
beforeAll(async () => {
  template = join(dir, 'template');
  const r = await train(['multitask', '--out', template, '--steps', '4', ...RUN]);
  expect(r.code, r.log).toBe(0);
});
let n = 0;
function freshRun(): string {
  const out = join(dir, `run-${n++}`);
  cpSync(template, out, { recursive: true });
  return out;
}
/** Every file under `d` (recursively) → its bytes, to show a failed command changed nothing. */
const snapshot = (d: string) =>
  Object.fromEntries(
    (readdirSync(d, { recursive: true }) as string[])
      .filter((f) => statSync(join(d, f)).isFile())
      .map((f) => [f, readFileSync(join(d, f)).toString('base64')]),
  );
const steps = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((m) => 'loss' in m)
    .map((m) => m.step);

describe('checkpoint recovery', () => {
  it('resumes from checkpoint.old when a save was cut off between its two renames, and the next save cleans it up', async () => {
    const out = freshRun();
    // The state writeDirAtomic leaves if killed after moving the old checkpoint aside, before the new one moves in.
    renameSync(join(out, 'checkpoint'), join(out, 'checkpoint.old'));
    const r = await train(['multitask', '--resume', out, '--steps', '6']);
    expect(r.code, r.log).toBe(0);
    expect(r.log).toContain(`resumed from ${join(out, 'checkpoint.old')} at step 4`);
    expect(JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).step).toBe(6);
    expect(existsSync(join(out, 'checkpoint.old'))).toBe(false);
    expect(steps(out)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a failed fill leaves the previous directory and no temporary behind', () => {
    const target = join(dir, 'atomic');
    writeDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'a'), 'good'));
    expect(() =>
      writeDirAtomic(target, (tmp) => {
        writeFileSync(join(tmp, 'a'), 'half');
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    expect(readFileSync(join(target, 'a'), 'utf8')).toBe('good');
    expect(readdirSync(dir).filter((f) => f.startsWith('atomic'))).toEqual(['atomic']);
  });
});

describe('resume errors are typed, name what is wrong, and leave the checkpoint as it was', () => {
  it('CHECKPOINT_NOT_FOUND: no run, or a run without a checkpoint', async () => {
    const nowhere = join(dir, 'nowhere');
    let r = await train(['multitask', '--resume', nowhere]);
    expect(r.code).toBe(1);
    expect(r.log).toContain(`error CHECKPOINT_NOT_FOUND: ${nowhere}: no run to resume`);
    const out = freshRun();
    rmSync(join(out, 'checkpoint'), { recursive: true });
    r = await train(['multitask', '--resume', out, '--steps', '6']);
    expect(r.code).toBe(1);
    expect(r.log).toContain(`error CHECKPOINT_NOT_FOUND: ${join(out, 'checkpoint')}: no checkpoint to resume from`);
  });

  it('CHECKPOINT_STAGE: the run (config.json) or its checkpoint (state.json) is of another stage', async () => {
    const out = freshRun();
    let r = await train(['hyperpretrain', '--resume', out]);
    expect(r.code).toBe(1);
    expect(r.log).toContain(
      `error CHECKPOINT_STAGE: ${out}/config.json: the run is stage "multitask", not "hyperpretrain"`,
    );
    const stateFile = join(out, 'checkpoint', 'state.json');
    writeFileSync(
      stateFile,
      readFileSync(stateFile, 'utf8').replace('"stage": "multitask"', '"stage": "hyperpretrain"'),
    );
    const before = snapshot(join(out, 'checkpoint'));
    r = await train(['multitask', '--resume', out, '--steps', '6']);
    expect(r.code).toBe(1);
    expect(r.log).toContain(
      `error CHECKPOINT_STAGE: ${join(out, 'checkpoint')}: the checkpoint is from stage "hyperpretrain", not "multitask"`,
    );
    expect(snapshot(join(out, 'checkpoint'))).toEqual(before);
  });

  it('CHECKPOINT_BAD: a truncated state.json, one of the wrong shape, and NaN in the saved weights', async () => {
    const out = freshRun();
    const stateFile = join(out, 'checkpoint', 'state.json');
    const good = readFileSync(stateFile, 'utf8');
    const cases: Array<[string, RegExp]> = [
      [good.slice(0, good.length / 2), /CHECKPOINT_BAD: .*state\.json: cannot read the training state/],
      [
        JSON.stringify({ stage: 'multitask', data: null }),
        /CHECKPOINT_BAD: .*state\.json: field "step": expected a non-negative integer/,
      ],
      ['[]', /CHECKPOINT_BAD: .*state\.json: field "<root>"/],
    ];
    for (const [text, expected] of cases) {
      writeFileSync(stateFile, text);
      const before = snapshot(join(out, 'checkpoint'));
      const r = await train(['multitask', '--resume', out, '--steps', '6']);
      expect(r.code, r.log).toBe(1);
      expect(r.log).toMatch(expected);
      expect(snapshot(join(out, 'checkpoint'))).toEqual(before);
    }
    writeFileSync(stateFile, good);
    const file = join(out, 'checkpoint', 'trainable.safetensors');
    const { tensors, metadata } = readSafetensors(file);
    const [name, entry] = [...tensors][0];
    const values = toFloat32(entry, name).slice();
    values[3] = NaN;
    writeSafetensors(file, new Map([...tensors, [name, fromFloat32(values, entry.shape)]]), metadata);
    const r = await train(['multitask', '--resume', out, '--steps', '6']);
    expect(r.code).toBe(1);
    expect(r.log).toContain(`error CHECKPOINT_BAD: ${file}: tensor ${name} holds NaN at index 3`);
  });

  it('CHECKPOINT_MISMATCH: a missing tensor, or one of another shape', async () => {
    const out = freshRun();
    const file = join(out, 'checkpoint', 'trainable.safetensors');
    const { tensors, metadata } = readSafetensors(file);
    const [first, ...rest] = [...tensors];
    writeSafetensors(file, new Map(rest), metadata);
    let r = await train(['multitask', '--resume', out, '--steps', '6']);
    expect(r.code).toBe(1);
    expect(r.log).toContain(
      `error CHECKPOINT_MISMATCH: ${file}: holds ${tensors.size - 1} tensors, the run trains ${tensors.size} (missing: ${first[0]})`,
    );
    const [name, entry] = first;
    const flat = toFloat32(entry, name);
    writeSafetensors(file, new Map([[name, fromFloat32(flat, [flat.length])], ...rest]), metadata);
    r = await train(['multitask', '--resume', out, '--steps', '6']);
    expect(r.code).toBe(1);
    expect(r.log).toContain(
      `error CHECKPOINT_MISMATCH: ${file}: ${name} has shape [${flat.length}], the run's is [${entry.shape}]`,
    );
  });
});

describe('metrics.jsonl repair', () => {
  it('a truncated last line (a kill mid-append) is dropped on resume, with a note, and the log reads as one run', async () => {
    const out = freshRun();
    const metrics = join(out, 'metrics.jsonl');
    writeFileSync(metrics, readFileSync(metrics, 'utf8') + '{"step":5,"loss":2.3,"lr":0.0');
    const r = await train(['multitask', '--resume', out, '--steps', '6']);
    expect(r.code, r.log).toBe(0);
    expect(r.log).toContain(`${metrics}: repaired: dropped 1 unreadable line(s)`);
    expect(steps(out)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('keeps lines up to the step, drops later ones and unreadable ones', () => {
    const f = join(dir, 'm.jsonl');
    writeFileSync(
      f,
      '{"step":0,"evalLoss":3}\n{"step":1,"loss":2}\nnot json\n{"nostep":1}\n{"step":2,"loss":1}\n{"step":3,"lo',
    );
    expect(truncateMetrics(f, 1)).toBe(3);
    expect(readFileSync(f, 'utf8')).toBe('{"step":0,"evalLoss":3}\n{"step":1,"loss":2}\n');
  });
});

describe('the run lock', () => {
  const lockOf = (out: string) => join(out, LOCK_FILE);
  const holder = (pid: number, host = hostname()) =>
    JSON.stringify({ pid, host, started: '2026-01-02T03:04:05.000Z', stage: 'multitask' });

  it('a live holder is refused, naming its pid, host and start time; nothing in the run changes', async () => {
    const out = freshRun();
    const other = spawn('sleep', ['30']);
    try {
      writeFileSync(lockOf(out), holder(other.pid!));
      const before = { ckpt: snapshot(join(out, 'checkpoint')), run: snapshot(out) };
      for (const args of [
        ['multitask', '--resume', out, '--steps', '6'],
        ['multitask', '--out', out, '--steps', '2', ...RUN],
      ]) {
        const r = await train(args);
        expect(r.code).toBe(1);
        expect(r.log).toContain(
          `error OUT_LOCKED: ${lockOf(out)}: ${out} is in use by process ${other.pid} on ${hostname()}, started 2026-01-02T03:04:05.000Z`,
        );
      }
      expect({ ckpt: snapshot(join(out, 'checkpoint')), run: snapshot(out) }).toEqual(before);
    } finally {
      other.kill();
    }
  });

  it('a holder on another host is refused too (its pid cannot be checked)', () => {
    const out = join(dir, 'remote');
    mkdirSync(out);
    writeFileSync(lockOf(out), holder(1, 'elsewhere'));
    expect(() => acquireRunLock(out, 'multitask', () => {})).toThrow(
      /OUT_LOCKED|in use by process 1 on elsewhere.*another host/,
    );
  });

  it('a stale lock (holder gone) is taken over with a message and released at the end; its half-written temporaries go', async () => {
    const out = freshRun();
    const gone = spawn('true');
    await new Promise((r) => gone.on('exit', r));
    writeFileSync(lockOf(out), holder(gone.pid!));
    // what a kill mid-write leaves: a checkpoint folder being filled, a metrics rewrite
    mkdirSync(join(out, `checkpoint.tmp-${gone.pid}`));
    writeFileSync(join(out, `metrics.jsonl.${gone.pid}.tmp`), '{"step"');
    const r = await train(['multitask', '--resume', out, '--steps', '6']);
    expect(r.code, r.log).toBe(0);
    expect(r.log).toContain(
      `${lockOf(out)}: taking over a stale lock: process ${gone.pid} on ${hostname()} (started 2026-01-02T03:04:05.000Z) is gone`,
    );
    expect(existsSync(lockOf(out))).toBe(false);
    expect(r.log).toContain(
      `removed what killed runs left half-written: checkpoint.tmp-${gone.pid}, metrics.jsonl.${gone.pid}.tmp`,
    );
    expect(readdirSync(out).filter((f) => /tmp/.test(f))).toEqual([]);
  });

  it('is held during the run, names this process, and a second acquire in the meantime is refused', () => {
    const out = join(dir, 'held');
    mkdirSync(out);
    const release = acquireRunLock(out, 'hyperpretrain', () => {});
    const held = JSON.parse(readFileSync(lockOf(out), 'utf8'));
    expect(held).toMatchObject({ pid: process.pid, host: hostname(), stage: 'hyperpretrain' });
    expect(Date.parse(held.started)).toBeGreaterThan(Date.now() - 60_000);
    expect(() => acquireRunLock(out, 'multitask', () => {})).toThrow(`in use by process ${process.pid}`);
    release();
    expect(readdirSync(out)).toEqual([]); // lock and its pid-named temporary both gone
  });
});

describe('temporary files carry the process id', () => {
  it('writeFileAtomic writes through <path>.<pid>.tmp', () => {
    const path = join(dir, 'pid-file.json');
    // Block exactly that name: the write fails only if it is the name used.
    mkdirSync(`${path}.${process.pid}.tmp`);
    expect(() => writeFileAtomic(path, 'x')).toThrow();
    rmSync(`${path}.${process.pid}.tmp`, { recursive: true });
    writeFileAtomic(path, 'x');
    expect(readFileSync(path, 'utf8')).toBe('x');
  });

  it('writeDirAtomic fills <dir>.tmp-<pid>', () => {
    let seen = '';
    writeDirAtomic(join(dir, 'pid-dir'), (tmp) => void (seen = tmp));
    expect(seen).toBe(`${join(dir, 'pid-dir')}.tmp-${process.pid}`);
  });
});

describe('non-finite values during training', () => {
  it('weights that overflow to Infinity stop the run with a typed error naming the tensor, and no checkpoint is written', async () => {
    const out = join(dir, 'overflow');
    // lr 1e39 is finite in the config but Infinity in float32: the first update makes weights non-finite.
    const r = await train([
      'multitask',
      '--out',
      out,
      '--steps',
      '4',
      ...RUN,
      '--save-every',
      '1',
      '--lr',
      '1e39',
      '--set',
      'warmupSteps=0',
      '--set',
      'maxGradNorm=0',
    ]);
    expect(r.code).toBe(1);
    expect(r.log).toMatch(
      /error NON_FINITE_WEIGHTS: step 1: trainable tensor \S+ holds (NaN|-?Infinity) at index \d+; no checkpoint was written;/,
    );
    expect(existsSync(join(out, 'checkpoint'))).toBe(false);
    expect(existsSync(join(out, 'final'))).toBe(false);
  });
});
