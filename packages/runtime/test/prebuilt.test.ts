import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng, nativeCandidates, type NativeBlas } from '../src/index.js';

// The binaries shipped in native/prebuilt/<platform>-<arch>: built by `npm run build:prebuilt -w @hyperllama/runtime`
// from exactly the C sources shipped beside them (BUILD.json records both hashes), linked statically against
// OpenBLAS, and computing what a plain JS reference computes.
const native = join(dirname(fileURLToPath(import.meta.url)), '..', 'native');
const prebuiltDir = join(native, 'prebuilt');
const targets = existsSync(prebuiltDir)
  ? readdirSync(prebuiltDir).filter((d) => existsSync(join(prebuiltDir, d, 'BUILD.json')))
  : [];
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** DT_NEEDED entries of a little-endian ELF64 shared object (its section headers survive `strip`). */
function elfNeeded(file: string): string[] {
  const b = readFileSync(file);
  expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  expect(b[4]).toBe(2); // ELFCLASS64
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const section = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      type: b.readUInt32LE(o + 4),
      offset: Number(b.readBigUInt64LE(o + 0x18)),
      size: Number(b.readBigUInt64LE(o + 0x20)),
      link: b.readUInt32LE(o + 0x28),
    };
  };
  const needed: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== 6) continue; // SHT_DYNAMIC
    const strtab = section(s.link);
    for (let o = s.offset; o < s.offset + s.size; o += 16) {
      const tag = b.readBigInt64LE(o);
      if (tag === 0n) break;
      if (tag !== 1n) continue; // DT_NEEDED
      const at = strtab.offset + Number(b.readBigUInt64LE(o + 8));
      needed.push(b.subarray(at, b.indexOf(0, at)).toString('latin1'));
    }
  }
  return needed;
}

describe('prebuilt native addons', () => {
  it('ship a linux-x64 binary', () => {
    expect(targets).toContain('linux-x64');
  });

  it.each(targets)('%s was built from the shipped sources, and its licence ships with it', (target) => {
    const manifest = JSON.parse(readFileSync(join(prebuiltDir, target, 'BUILD.json'), 'utf8')) as {
      sources: Record<string, string>;
      output: { file: string; sha256: string; bytes: number };
      flags: string[];
    };
    const shipped = Object.fromEntries(
      readdirSync(native)
        .filter((f) => f.endsWith('.c'))
        .sort()
        .map((f) => [f, sha256(join(native, f))]),
    );
    // A C source edited (or added) without rebuilding: run `npm run build:prebuilt -w @hyperllama/runtime`.
    expect(manifest.sources).toEqual(shipped);
    const file = join(prebuiltDir, target, manifest.output.file);
    expect(sha256(file)).toBe(manifest.output.sha256);
    expect(readFileSync(file).length).toBe(manifest.output.bytes);
    expect(manifest.flags.some((f) => /^-m(arch|cpu|tune)=native$/.test(f))).toBe(false);
    expect(readFileSync(join(prebuiltDir, 'LICENSE-OpenBLAS.txt'), 'utf8')).toMatch(/BSD-3-clause/i);
  });

  it.each(targets.filter((t) => t.startsWith('linux-')))('%s needs no OpenBLAS at run time', (target) => {
    const needed = elfNeeded(join(prebuiltDir, target, 'hyperllama_blas.node'));
    expect(needed.length).toBeGreaterThan(0);
    for (const lib of needed)
      expect(lib, lib).toMatch(/^(libc\.so|libm\.so|libpthread\.so|libgcc_s\.so|libdl\.so|ld-linux[-\w]*\.so)\.\d+$/);
  });

  it('are tried after a local build, for this platform and architecture', () => {
    const c = nativeCandidates('/pkg', 'linux', 'x64');
    expect(c.map((x) => x.source)).toEqual(['local', 'prebuilt']);
    expect(c[0].file).toBe('/pkg/native/build/hyperllama_blas.node');
    expect(c[1].file).toBe('/pkg/native/prebuilt/linux-x64/hyperllama_blas.node');
    expect(nativeCandidates('/pkg', 'darwin', 'arm64')[1].label).toBe('prebuilt darwin-arm64');
  });

  // The native tests run on whichever addon loads first (a local build where there is one): this one always runs
  // the prebuilt binary for this machine, against plain JS.
  const here = `${process.platform}-${process.arch}`;
  describe.skipIf(!targets.includes(here))(`the ${here} binary`, () => {
    let blas: NativeBlas;
    beforeAll(() => {
      blas = createRequire(import.meta.url)(join(prebuiltDir, here, 'hyperllama_blas.node')) as NativeBlas;
    });
    const rng = new Rng(11);

    it('multiplies (transposed, batched, sgemv) as a plain JS loop does', () => {
      for (const [batch, m, n, k, ta, tb] of [
        [1, 33, 17, 29, false, false],
        [3, 8, 5, 70, true, false],
        [2, 9, 40, 6, false, true],
        [2, 1, 300, 64, false, true], // sgemv, the decoding case
        [1, 130, 1, 20, true, false],
        [1, 256, 256, 256, false, false], // large enough for OpenBLAS's threads
      ] as Array<[number, number, number, number, boolean, boolean]>) {
        const a = new Float32Array(rng.normalArray(batch * m * k, 0, 1));
        const b = new Float32Array(rng.normalArray(batch * k * n, 0, 1));
        const c = new Float32Array(batch * m * n);
        blas.sgemmBatched(a, b, c, batch, m, n, k, ta, tb, m * k, k * n);
        let worst = 0;
        for (let i = 0; i < batch; i++)
          for (let r = 0; r < m; r++)
            for (let col = 0; col < n; col++) {
              let s = 0;
              for (let j = 0; j < k; j++) {
                const av = a[i * m * k + (ta ? j * m + r : r * k + j)];
                const bv = b[i * k * n + (tb ? col * k + j : j * n + col)];
                s += av * bv;
              }
              worst = Math.max(worst, Math.abs(c[i * m * n + r * n + col] - s));
            }
        expect(worst, `${batch}×${m}×${n}×${k} ${ta} ${tb}`).toBeLessThan(1e-3);
      }
    });

    it('computes the softmax cross-entropy and its gradient as float64 JS does', () => {
      const rows = 5;
      const classes = 1031; // not a multiple of any vector width
      const logits = new Float32Array(rng.normalArray(rows * classes, 0, 4));
      logits[3] = -1e30; // exp underflows to 0
      const targets = new Int32Array([0, 1030, -100, 7, 500]);
      const weights = new Float32Array([1, 0.5, 1, 2, 0]);
      const losses = new Float32Array(rows);
      const grad = new Float32Array(rows * classes);
      blas.softmaxCrossEntropy(logits, targets, weights, losses, grad, rows, classes);
      for (let r = 0; r < rows; r++) {
        const row = Array.from(logits.subarray(r * classes, (r + 1) * classes));
        const m = Math.max(...row);
        const sum = row.reduce((s, x) => s + Math.exp(x - m), 0);
        const valid = targets[r] >= 0 && targets[r] < classes;
        const loss = valid ? weights[r] * (m + Math.log(sum) - row[targets[r]]) : 0;
        expect(Math.abs(losses[r] - loss), `loss ${r}`).toBeLessThan(1e-5 * Math.max(1, Math.abs(loss)));
        for (let j = 0; j < classes; j++) {
          const g = valid ? weights[r] * (Math.exp(row[j] - m) / sum - (j === targets[r] ? 1 : 0)) : 0;
          expect(Math.abs(grad[r * classes + j] - g), `grad ${r},${j}`).toBeLessThan(4e-6 * Math.abs(g) + 1e-9);
        }
      }
    });
  });
});
