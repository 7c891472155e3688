import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  HyperLlamaError,
  Rng,
  SafetensorsError,
  fromFloat32,
  fromInt32,
  readSafetensors,
  serializeSafetensors,
  toFloat32,
  toInt32,
  writeSafetensors,
  type SafetensorsEntry,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Build a file exactly as the specification describes: u64 LE header length, JSON header, raw data. */
function handMade(header: object | string, data: number[]): Uint8Array {
  const json = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(out, 8);
  Buffer.from(data).copy(out, 8 + h.length);
  return new Uint8Array(out);
}

describe('readSafetensors on a file written by hand from the specification', () => {
  it('reads dtypes, shapes, values and metadata', () => {
    const f32 = [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]; // 1.0, -2.0
    const f16 = [0x00, 0x3c, 0x00, 0xb8]; // 1.0, -0.5
    const bf16 = [0x80, 0x3f, 0x40, 0x40]; // 1.0, 3.0
    const i64 = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]; // -1
    const i32 = [0x07, 0x00, 0x00, 0x00]; // 7
    const u8 = [0xfe];
    const bool = [0x01, 0x00];
    const data = [...f32, ...f16, ...bf16, ...i64, ...i32, ...u8, ...bool];
    const bytes = handMade(
      {
        __metadata__: { format: 'pt' },
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F16', shape: [1, 2], data_offsets: [8, 12] },
        c: { dtype: 'BF16', shape: [2], data_offsets: [12, 16] },
        d: { dtype: 'I64', shape: [], data_offsets: [16, 24] },
        e: { dtype: 'I32', shape: [1], data_offsets: [24, 28] },
        f: { dtype: 'U8', shape: [1], data_offsets: [28, 29] },
        g: { dtype: 'BOOL', shape: [2], data_offsets: [29, 31] },
      },
      data,
    );
    const { tensors, metadata } = readSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect([...tensors.keys()]).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    expect(Array.from(toFloat32(tensors.get('a')!))).toEqual([1, -2]);
    expect(tensors.get('b')!.shape).toEqual([1, 2]);
    expect(Array.from(toFloat32(tensors.get('b')!))).toEqual([1, -0.5]);
    expect(Array.from(toFloat32(tensors.get('c')!))).toEqual([1, 3]);
    expect(Array.from(toInt32(tensors.get('d')!))).toEqual([-1]);
    expect(Array.from(toInt32(tensors.get('e')!))).toEqual([7]);
    expect(Array.from(toInt32(tensors.get('f')!))).toEqual([254]);
    expect(Array.from(toInt32(tensors.get('g')!))).toEqual([1, 0]);
  });

  it('accepts an empty file with only "{}" and zero-sized tensors', () => {
    expect(readSafetensors(handMade({}, [])).tensors.size).toBe(0);
    const z = readSafetensors(handMade({ z: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] } }, []));
    expect(z.tensors.get('z')!.data.byteLength).toBe(0);
  });
});

describe('round trip', () => {
  it('writes and reads back every dtype exactly, with metadata, atomically', () => {
    const rng = new Rng(11);
    const vals = rng.normalArray(24);
    const tensors = new Map<string, SafetensorsEntry>([
      ['f32', fromFloat32(vals, [2, 3, 4])],
      ['f16', fromFloat32(new Float32Array([1, -0.5, 65504, 2 ** -14, 2 ** -24, -0]), [6], 'F16')],
      ['bf16', fromFloat32(new Float32Array([1, 3, -256, 0.5]), [2, 2], 'BF16')],
      ['i32', fromInt32([1, -2, 2147483647], [3])],
      ['i64', fromInt32([5, -6], [2], 'I64')],
      ['u8', fromInt32([0, 255], [2], 'U8')],
      ['bool', fromInt32([1, 0, 1], [3], 'BOOL')],
    ]);
    const file = join(dir, 'all.safetensors');
    writeSafetensors(file, tensors, { note: 'round trip' });
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const back = readSafetensors(file);
    expect(back.metadata).toEqual({ note: 'round trip' });
    for (const [name, e] of tensors) {
      const b = back.tensors.get(name)!;
      expect(b.dtype).toBe(e.dtype);
      expect(b.shape).toEqual(e.shape);
      expect(Buffer.from(b.data).equals(Buffer.from(e.data))).toBe(true);
    }
    expect(Array.from(toFloat32(back.tensors.get('f32')!))).toEqual(Array.from(vals));
    expect(Array.from(toFloat32(back.tensors.get('f16')!))).toEqual([1, -0.5, 65504, 2 ** -14, 2 ** -24, -0]);
    // Data starts 8-byte aligned, as the reference writer pads the header with spaces.
    const raw = readFileSync(file);
    expect(Number(raw.readBigUInt64LE(0)) % 8).toBe(0);
  });

  it('never replaces a good file when serialisation fails', () => {
    const file = join(dir, 'keep.safetensors');
    writeSafetensors(file, { a: fromFloat32(new Float32Array([1]), [1]) });
    const before = readFileSync(file);
    expect(() => writeSafetensors(file, { a: { dtype: 'F32', shape: [2], data: new Uint8Array(4) } })).toThrow(
      SafetensorsError,
    );
    expect(readFileSync(file).equals(before)).toBe(true);
  });
});

describe('validation', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['too short for the length', new Uint8Array([1, 2, 3]), /fewer than the 8-byte/],
    [
      'hostile header length 2^60',
      (() => {
        const b = Buffer.alloc(16);
        b.writeBigUInt64LE(2n ** 60n);
        return new Uint8Array(b);
      })(),
      /exceeds the limit/,
    ],
    [
      'header past the end',
      (() => {
        const b = Buffer.alloc(16);
        b.writeBigUInt64LE(100n);
        return new Uint8Array(b);
      })(),
      /runs past the end/,
    ],
    ['invalid JSON', handMade('{"a":', []), /not valid UTF-8 JSON/],
    ['JSON array', handMade('[]', []), /not a JSON object/],
    [
      'unknown dtype',
      handMade(
        { a: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } },
        Array.from({ length: 8 }, () => 0),
      ),
      /unknown dtype "F64"/,
    ],
    [
      'negative shape',
      handMade(
        { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } },
        Array.from({ length: 4 }, () => 0),
      ),
      /shape/,
    ],
    [
      'size mismatch',
      handMade(
        { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
        Array.from({ length: 8 }, () => 0),
      ),
      /needs 12 bytes/,
    ],
    [
      'offsets out of bounds',
      handMade(
        ok,
        Array.from({ length: 4 }, () => 0),
      ),
      /exceed the 4 data bytes/,
    ],
    [
      'trailing bytes',
      handMade(
        ok,
        Array.from({ length: 12 }, () => 0),
      ),
      /4 bytes after the last tensor/,
    ],
    [
      'overlap',
      handMade(
        { ...ok, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } },
        Array.from({ length: 8 }, () => 0),
      ),
      /overlap|gap/,
    ],
    [
      'gap',
      handMade(
        { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } },
        Array.from({ length: 8 }, () => 0),
      ),
      /gap/,
    ],
    ['metadata not strings', handMade({ __metadata__: { x: 1 } }, []), /not a string/],
  ];
  for (const [name, bytes, pattern] of cases) {
    it(`rejects: ${name}`, () => {
      let err: unknown;
      try {
        readSafetensors(bytes, 'case.safetensors');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SafetensorsError);
      expect((err as Error).message).toMatch(/^case\.safetensors: /);
      expect((err as Error).message).toMatch(pattern);
    });
  }

  it('names the tensor at fault', () => {
    const bytes = handMade(
      { weight: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
      Array.from({ length: 8 }, () => 0),
    );
    expect(() => readSafetensors(bytes, 'm.safetensors')).toThrow(/tensor "weight"/);
  });

  it('gives HyperLlamaError, never another exception, for hundreds of corrupted or truncated files (seeded fuzz)', () => {
    const rng = new Rng(2024);
    const base = serializeSafetensors(
      {
        'model.layers.0.weight': fromFloat32(rng.normalArray(12), [3, 4]),
        'model.bias': fromFloat32(rng.normalArray(4), [4], 'BF16'),
        ids: fromInt32([1, 2, 3], [3], 'I64'),
      },
      { source: 'fuzz' },
    );
    let rejected = 0;
    let accepted = 0;
    for (let trial = 0; trial < 600; trial++) {
      const bytes = new Uint8Array(base);
      const mode = trial % 4;
      let mutated: Uint8Array = bytes;
      if (mode === 0)
        mutated = bytes.subarray(0, rng.int(bytes.length)); // truncation
      else if (mode === 1)
        for (let k = 0, n = 1 + rng.int(4); k < n; k++) bytes[rng.int(bytes.length)] = rng.int(256); // byte flips
      else if (mode === 2)
        for (let k = 0, n = 1 + rng.int(3); k < n; k++) bytes[8 + rng.int(120)] = rng.int(256); // header flips
      else {
        const view = new DataView(bytes.buffer);
        view.setBigUint64(0, BigInt(rng.int(2 ** 31)) * BigInt(1 + rng.int(2 ** 20)), true); // random header length
      }
      try {
        readSafetensors(mutated, `fuzz-${trial}`);
        accepted++;
      } catch (e) {
        expect(e).toBeInstanceOf(HyperLlamaError);
        rejected++;
      }
    }
    // Flips inside tensor data are valid files; everything else must be rejected cleanly.
    expect(rejected).toBeGreaterThan(300);
    expect(rejected + accepted).toBe(600);
  });

  it('reports an unreadable path as a typed error', () => {
    expect(() => readSafetensors(join(dir, 'missing.safetensors'))).toThrow(/cannot read file/);
    writeFileSync(join(dir, 'empty.safetensors'), '');
    expect(() => readSafetensors(join(dir, 'empty.safetensors'))).toThrow(SafetensorsError);
    expect(existsSync(join(dir, 'missing.safetensors'))).toBe(false);
  });
});
