import { SafetensorsError } from './errors.js';
import { fileSystem } from './files.js';
import { nodeProcess, requireNode } from './platform.js';

interface NodeWriteFs {
  openSync(p: string, flags: string): number;
  writeSync(fd: number, b: Uint8Array, offset: number, length: number): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(a: string, b: string): void;
  rmSync(p: string, o: { force: boolean }): void;
}

/** Element types of the safetensors format that this project reads and writes. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8' | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  BOOL: 1,
};

/** One tensor: raw little-endian bytes plus dtype and shape. `data.byteLength` = product(shape) × DTYPE_BYTES[dtype]. */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsEntry>;
  /** The optional `__metadata__` map (string → string). */
  metadata: Record<string, string>;
}

/** Largest header accepted (as the reference implementation: 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

function fail(code: string, source: string, message: string, details: Record<string, unknown> = {}): never {
  throw new SafetensorsError(code, `${source}: ${message}`, { file: source, ...details });
}

function isDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, x);
}

/**
 * Parse a safetensors file (path) or buffer (bytes). Validates as the reference implementation does: header length
 * within bounds, UTF-8 JSON object, known dtypes, non-negative integer shapes, shape × dtype size = byte span, offsets
 * in bounds, contiguous and non-overlapping from 0, no bytes left over. Every violation is a {@link SafetensorsError}
 * naming the source and the tensor. Tensor data are views into one buffer (copy them if you keep the buffer mutable).
 */
export function readSafetensors(pathOrBytes: string | Uint8Array, sourceName?: string): SafetensorsFile {
  let bytes: Uint8Array;
  const source = sourceName ?? (typeof pathOrBytes === 'string' ? pathOrBytes : '<buffer>');
  if (typeof pathOrBytes === 'string') {
    try {
      bytes = fileSystem().readBytes(pathOrBytes);
    } catch (e) {
      fail('SAFETENSORS_UNREADABLE', source, `cannot read file (${(e as Error).message})`);
    }
  } else {
    bytes = pathOrBytes;
  }
  if (bytes.byteLength < 8)
    fail('SAFETENSORS_TRUNCATED', source, `file has ${bytes.byteLength} bytes, fewer than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    fail('SAFETENSORS_BAD_HEADER', source, `header length ${headerLen} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const n = Number(headerLen);
  if (8 + n > bytes.byteLength) {
    fail(
      'SAFETENSORS_TRUNCATED',
      source,
      `header length ${n} runs past the end of the file (${bytes.byteLength} bytes)`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail('SAFETENSORS_BAD_HEADER', source, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail('SAFETENSORS_BAD_HEADER', source, 'header is not a JSON object');
  }
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const spans: Array<{ name: string; begin: number; end: number; entry: SafetensorsEntry }> = [];

  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        fail('SAFETENSORS_BAD_HEADER', source, '__metadata__ is not an object of strings');
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string')
          fail('SAFETENSORS_BAD_HEADER', source, `__metadata__.${k} is not a string`, { field: k });
        metadata[k] = v;
      }
      continue;
    }
    const where = { tensor: name };
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      fail('SAFETENSORS_BAD_HEADER', source, `tensor "${name}": entry is not an object`, where);
    }
    const info = raw as Record<string, unknown>;
    const { dtype, shape, data_offsets: offsets } = info;
    if (!isDtype(dtype))
      fail('SAFETENSORS_BAD_DTYPE', source, `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`, where);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(
        'SAFETENSORS_BAD_SHAPE',
        source,
        `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`,
        where,
      );
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[1] < offsets[0]
    ) {
      fail(
        'SAFETENSORS_BAD_OFFSETS',
        source,
        `tensor "${name}": data_offsets ${JSON.stringify(offsets)} are not [begin, end] with 0 <= begin <= end`,
        where,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLen) {
      fail(
        'SAFETENSORS_BAD_OFFSETS',
        source,
        `tensor "${name}": data_offsets [${begin}, ${end}] exceed the ${dataLen} data bytes`,
        where,
      );
    }
    let elements = 1;
    for (const d of shape as number[]) elements *= d;
    const expected = elements * DTYPE_BYTES[dtype];
    if (expected !== end - begin) {
      fail(
        'SAFETENSORS_SIZE_MISMATCH',
        source,
        `tensor "${name}": shape ${JSON.stringify(shape)} × ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
        where,
      );
    }
    const data = bytes.subarray(dataStart + begin, dataStart + end);
    spans.push({ name, begin, end, entry: { dtype, shape: [...(shape as number[])], data } });
  }

  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const s of spans) {
    if (s.begin !== cursor) {
      fail(
        'SAFETENSORS_BAD_OFFSETS',
        source,
        s.begin < cursor
          ? `tensor "${s.name}": data_offsets [${s.begin}, ${s.end}] overlap the previous tensor (ends at ${cursor})`
          : `tensor "${s.name}": data_offsets [${s.begin}, ${s.end}] leave a gap after byte ${cursor}`,
        { tensor: s.name },
      );
    }
    cursor = s.end;
  }
  if (cursor !== dataLen) {
    fail(
      'SAFETENSORS_TRAILING_BYTES',
      source,
      `${dataLen - cursor} bytes after the last tensor are not described by the header`,
    );
  }

  const tensors = new Map<string, SafetensorsEntry>();
  for (const s of spans.sort((a, b) => a.name.localeCompare(b.name))) tensors.set(s.name, s.entry);
  return { tensors, metadata };
}

/** Serialise tensors (sorted by name) and metadata into safetensors bytes, after validating every entry. */
export function serializeSafetensors(
  tensors: Map<string, SafetensorsEntry> | Record<string, SafetensorsEntry>,
  metadata?: Record<string, string>,
  target = '<buffer>',
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string')
        fail('SAFETENSORS_BAD_METADATA', target, `metadata "${k}" is not a string`, { field: k });
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, e] of entries) {
    if (name === '__metadata__') fail('SAFETENSORS_BAD_NAME', target, 'a tensor may not be named "__metadata__"');
    if (!isDtype(e.dtype))
      fail('SAFETENSORS_BAD_DTYPE', target, `tensor "${name}": unknown dtype ${JSON.stringify(e.dtype)}`, {
        tensor: name,
      });
    if (!e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail('SAFETENSORS_BAD_SHAPE', target, `tensor "${name}": bad shape ${JSON.stringify(e.shape)}`, { tensor: name });
    }
    const expected = e.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
    if (e.data.byteLength !== expected) {
      fail(
        'SAFETENSORS_SIZE_MISMATCH',
        target,
        `tensor "${name}": shape ${JSON.stringify(e.shape)} × ${e.dtype} needs ${expected} bytes, got ${e.data.byteLength}`,
        { tensor: name },
      );
    }
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  const pad = (8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.byteLength;
  for (const [, e] of entries) {
    out.set(e.data, pos);
    pos += e.data.byteLength;
  }
  return out;
}

/**
 * Write a safetensors file atomically: the bytes go to `<path>.<pid>.tmp`, are fsynced, then renamed over `path`,
 * so a crash never leaves a half-written file where a good one was.
 */
export function writeSafetensors(
  path: string,
  tensors: Map<string, SafetensorsEntry> | Record<string, SafetensorsEntry>,
  metadata?: Record<string, string>,
): void {
  const bytes = serializeSafetensors(tensors, metadata, path);
  writeFileAtomic(path, bytes);
}

/** Write bytes to `path` via a temporary file + fsync + rename. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const { openSync, writeSync, fsyncSync, closeSync, renameSync, rmSync } = requireNode<NodeWriteFs>(
    'fs',
    `writing ${path}`,
  );
  const tmp = `${path}.${nodeProcess()!.pid}.tmp`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      const buf = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
      let written = 0;
      while (written < buf.byteLength) written += writeSync(fd, buf, written, buf.byteLength - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

// ---- conversions between raw entries and typed arrays ----

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 → IEEE half bits, round to nearest even. */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0];
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
  return sign | r;
}

/** float32 → bfloat16 bits, round to nearest even. */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0];
  if ((f & 0x7f800000) === 0x7f800000 && f & 0x7fffff) return (f >>> 16) | 0x40;
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Decode a floating-point entry (F32, F16 or BF16) to a new Float32Array. */
export function toFloat32(entry: SafetensorsEntry, name = '<tensor>'): Float32Array {
  const { data, dtype } = entry;
  const n = data.byteLength / DTYPE_BYTES[dtype];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(2 * i, true));
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new SafetensorsError('SAFETENSORS_NOT_FLOAT', `tensor "${name}" has dtype ${dtype}, not F32/F16/BF16`, {
        tensor: name,
        actual: dtype,
      });
  }
}

/** Decode an integer entry (I32, I64 within ±2^53, U8, BOOL) to an Int32Array or number array. */
export function toInt32(entry: SafetensorsEntry, name = '<tensor>'): Int32Array {
  const { data, dtype } = entry;
  const n = data.byteLength / DTYPE_BYTES[dtype];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Int32Array(n);
  switch (dtype) {
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
      return out;
    case 'I64':
      for (let i = 0; i < n; i++) {
        const v = view.getBigInt64(8 * i, true);
        if (v > 2147483647n || v < -2147483648n) {
          throw new SafetensorsError(
            'SAFETENSORS_OUT_OF_RANGE',
            `tensor "${name}": I64 value ${v} does not fit int32`,
            { tensor: name },
          );
        }
        out[i] = Number(v);
      }
      return out;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = data[i];
      return out;
    default:
      throw new SafetensorsError('SAFETENSORS_NOT_INT', `tensor "${name}" has dtype ${dtype}, not an integer type`, {
        tensor: name,
        actual: dtype,
      });
  }
}

/** Encode float32 values as an entry of the given float dtype (F32 default). */
export function fromFloat32(
  values: Float32Array,
  shape: number[],
  dtype: 'F32' | 'F16' | 'BF16' = 'F32',
): SafetensorsEntry {
  const n = values.length;
  const data = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const view = new DataView(data.buffer);
  if (dtype === 'F32') for (let i = 0; i < n; i++) view.setFloat32(4 * i, values[i], true);
  else if (dtype === 'F16') for (let i = 0; i < n; i++) view.setUint16(2 * i, f32ToF16Bits(values[i]), true);
  else for (let i = 0; i < n; i++) view.setUint16(2 * i, f32ToBf16Bits(values[i]), true);
  return { dtype, shape, data };
}

/** Encode int32 values as an I32 (default), I64, U8 or BOOL entry. */
export function fromInt32(
  values: ArrayLike<number>,
  shape: number[],
  dtype: 'I32' | 'I64' | 'U8' | 'BOOL' = 'I32',
): SafetensorsEntry {
  const n = values.length;
  const data = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const view = new DataView(data.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === 'I32') view.setInt32(4 * i, values[i], true);
    else if (dtype === 'I64') view.setBigInt64(8 * i, BigInt(values[i]), true);
    else data[i] = dtype === 'BOOL' ? (values[i] ? 1 : 0) : values[i];
  }
  return { dtype, shape, data };
}

/** Transposes a row-major [rows, cols] matrix on the host (weights kept [in, out] here are [out, in] in HF files). */
export function transposeMatrix(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = values[i * cols + j];
  return out;
}
