import { describe, expect, it } from 'vitest';
import { GgufError, readGguf, serializeGguf, type GgufMetadata } from '../src/index.js';

const meta = (): GgufMetadata =>
  new Map([
    ['general.architecture', { type: 'STRING', value: 'llama' }],
    ['a.u32', { type: 'UINT32', value: 4000000000 }],
    ['a.f32', { type: 'FLOAT32', value: 1e-5 }],
    ['a.bool', { type: 'BOOL', value: true }],
    ['a.i64', { type: 'INT64', value: -3 }],
    ['a.strings', { type: 'ARRAY', itemType: 'STRING', value: ['<s>', '▁the', ''] }],
    ['a.ints', { type: 'ARRAY', itemType: 'INT32', value: [1, -2, 3] }],
  ]);

describe('GGUF container', () => {
  const tensors = [
    { name: 'x', dims: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    { name: 'y', dims: [5], data: new Float32Array([0.5, -1, 2, 3, 7]) },
  ];
  const bytes = serializeGguf(meta(), tensors);

  it('writes the v3 header by hand-checkable bytes: magic, version, counts, then the first key', () => {
    const v = new DataView(bytes.buffer, bytes.byteOffset);
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('GGUF');
    expect(v.getUint32(4, true)).toBe(3);
    expect(v.getBigUint64(8, true)).toBe(2n); // tensors
    expect(v.getBigUint64(16, true)).toBe(7n); // metadata entries
    expect(v.getBigUint64(24, true)).toBe(20n); // "general.architecture".length
    expect(new TextDecoder().decode(bytes.subarray(32, 52))).toBe('general.architecture');
    expect(v.getUint32(52, true)).toBe(8); // STRING
  });

  it('reads back metadata, dims, offsets aligned to 32 and the data', () => {
    const f = readGguf(bytes);
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(32);
    expect(f.dataOffset % 32).toBe(0);
    expect(f.metadata.get('general.architecture')).toEqual({ type: 'STRING', value: 'llama' });
    expect(f.metadata.get('a.u32')!.value).toBe(4000000000);
    expect(f.metadata.get('a.f32')!.value).toBeCloseTo(1e-5, 12);
    expect(f.metadata.get('a.bool')!.value).toBe(true);
    expect(f.metadata.get('a.i64')!.value).toBe(-3);
    expect(f.metadata.get('a.strings')!.value).toEqual(['<s>', '▁the', '']);
    expect(Array.from(f.metadata.get('a.ints')!.value as ArrayLike<number>)).toEqual([1, -2, 3]);
    expect(f.tensors.map((t) => [t.name, t.dims, t.type, t.offset])).toEqual([
      ['x', [3, 2], 0, 0],
      ['y', [5], 0, 32], // 24 bytes of x padded to 32
    ]);
    expect([...f.tensors[0].data!]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...f.tensors[1].data!]).toEqual([0.5, -1, 2, 3, 7]);
    expect(bytes.byteLength).toBe(f.dataOffset + 64);
  });

  it('refuses bad input with typed errors', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(GgufError);
        return (e as GgufError).code;
      }
      return 'no error';
    };
    expect(code(() => readGguf(new Uint8Array(16)))).toBe('GGUF_BAD_MAGIC');
    expect(code(() => readGguf(bytes.subarray(0, 40)))).toBe('GGUF_TRUNCATED');
    // y's 20 bytes start at data offset 32: 48 data bytes cannot hold them (the last tensor's padding may be cut).
    expect(code(() => readGguf(bytes.subarray(0, bytes.byteLength - 16)))).toBe('GGUF_BAD_OFFSET');
    const v2 = bytes.slice();
    new DataView(v2.buffer).setUint32(4, 2, true);
    expect(code(() => readGguf(v2))).toBe('GGUF_BAD_VERSION');
    expect(code(() => serializeGguf(meta(), [{ name: 'z', dims: [4], data: new Float32Array(3) }]))).toBe(
      'GGUF_BAD_TENSOR',
    );
    expect(code(() => serializeGguf(meta(), [tensors[0], tensors[0]]))).toBe('GGUF_DUPLICATE_TENSOR');
    expect(code(() => serializeGguf(new Map([['k', { type: 'UINT32', value: -1 }]]), []))).toBe('GGUF_BAD_VALUE');
  });
});
