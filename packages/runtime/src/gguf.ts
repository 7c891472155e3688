import { GgufError } from './errors.js';
import { fileSystem } from './files.js';
import { writeFileAtomic } from './safetensors.js';

// GGUF v3, the single-file format of llama.cpp (ggml): little-endian; header "GGUF", version, tensor count, metadata
// count; typed key/value metadata; tensor infos (name, dims innermost first, ggml type, offset); padding to the
// alignment; tensor data, each tensor starting at a multiple of the alignment (default 32, `general.alignment`).
// This module reads and writes the container; which keys and tensors a llama model needs is @hyperllama/llama-model's.

/** The file's first 4 bytes, "GGUF", read as a little-endian uint32. */
export const GGUF_MAGIC = 0x46554747;
/** The GGUF version written and read. */
export const GGUF_VERSION = 3;
/** Alignment of tensor data when the metadata has no `general.alignment`. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types, numbered as in the format. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
/** The value types that are not arrays. */
export type GgufScalarType = Exclude<keyof typeof GgufValueType, 'ARRAY'>;

/** One metadata value: a scalar, or an array of one scalar type. 64-bit integers are numbers (safe range) here. */
export type GgufValue =
  | { type: Exclude<GgufScalarType, 'STRING' | 'BOOL'>; value: number }
  | { type: 'BOOL'; value: boolean }
  | { type: 'STRING'; value: string }
  | { type: 'ARRAY'; itemType: Exclude<GgufScalarType, 'STRING' | 'BOOL'>; value: ArrayLike<number> }
  | { type: 'ARRAY'; itemType: 'BOOL'; value: readonly boolean[] }
  | { type: 'ARRAY'; itemType: 'STRING'; value: readonly string[] };

/** Ordered metadata (the order is kept in the file). */
export type GgufMetadata = Map<string, GgufValue>;

/** The ggml type number of float32, the only tensor type written here and decoded on reading (others keep their number). */
export const GGML_TYPE_F32 = 0;

/** A tensor to write: `dims` innermost first (ggml's ne[]; an HF [out, in] matrix has dims [in, out]), f32 data. */
export interface GgufTensor {
  name: string;
  dims: number[];
  data: Float32Array;
}

/** A tensor read back: its info and, for F32, a copy of its data. */
export interface GgufTensorInfo {
  name: string;
  dims: number[];
  /** ggml type number (0 = F32). */
  type: number;
  /** Offset in bytes from the start of the data section. */
  offset: number;
  data?: Float32Array;
}

/** A parsed GGUF file: its version, metadata in file order, tensors, alignment and where the data section starts. */
export interface GgufFile {
  version: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the data section. */
  dataOffset: number;
}

const SCALAR_BYTES: Record<Exclude<GgufScalarType, 'STRING'>, number> = {
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  UINT32: 4,
  INT32: 4,
  FLOAT32: 4,
  BOOL: 1,
  UINT64: 8,
  INT64: 8,
  FLOAT64: 8,
};
const TYPE_NAMES = Object.fromEntries(Object.entries(GgufValueType).map(([k, v]) => [v, k])) as Record<
  number,
  keyof typeof GgufValueType
>;

/** A growable little-endian byte sink. */
class Writer {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(x: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, x, true);
    this.length += 4;
  }
  u64(x: number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(x), true);
    this.length += 8;
  }
  scalar(type: Exclude<GgufScalarType, 'STRING'>, x: number | boolean): void {
    this.reserve(8);
    const v = this.view;
    const at = this.length;
    const n = Number(x);
    switch (type) {
      case 'UINT8':
      case 'BOOL':
        v.setUint8(at, n);
        break;
      case 'INT8':
        v.setInt8(at, n);
        break;
      case 'UINT16':
        v.setUint16(at, n, true);
        break;
      case 'INT16':
        v.setInt16(at, n, true);
        break;
      case 'UINT32':
        v.setUint32(at, n, true);
        break;
      case 'INT32':
        v.setInt32(at, n, true);
        break;
      case 'FLOAT32':
        v.setFloat32(at, n, true);
        break;
      case 'UINT64':
        v.setBigUint64(at, BigInt(n), true);
        break;
      case 'INT64':
        v.setBigInt64(at, BigInt(n), true);
        break;
      case 'FLOAT64':
        v.setFloat64(at, n, true);
        break;
    }
    this.length += SCALAR_BYTES[type];
  }
  string(s: string): void {
    const bytes = new TextEncoder().encode(s);
    this.u64(bytes.length);
    this.bytes(bytes);
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function checkInteger(key: string, type: GgufScalarType, x: number): void {
  const ranges: Partial<Record<GgufScalarType, [number, number]>> = {
    UINT8: [0, 0xff],
    INT8: [-0x80, 0x7f],
    UINT16: [0, 0xffff],
    INT16: [-0x8000, 0x7fff],
    UINT32: [0, 0xffffffff],
    INT32: [-0x80000000, 0x7fffffff],
    UINT64: [0, Number.MAX_SAFE_INTEGER],
    INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  };
  const r = ranges[type];
  if (r && !(Number.isInteger(x) && x >= r[0] && x <= r[1])) {
    throw new GgufError('GGUF_BAD_VALUE', `metadata "${key}": ${x} is not a ${type}`, { field: key, actual: x });
  }
}

/**
 * Serialise metadata and f32 tensors into GGUF v3 bytes. Tensors are laid out in the order given, each at a multiple
 * of `general.alignment` (default 32) from the start of the data section.
 */
export function serializeGguf(metadata: GgufMetadata, tensors: readonly GgufTensor[]): Uint8Array {
  const alignValue = metadata.get('general.alignment');
  const alignment = alignValue?.type === 'UINT32' ? alignValue.value : GGUF_DEFAULT_ALIGNMENT;
  if (!(alignment > 0 && alignment % 8 === 0)) {
    throw new GgufError('GGUF_BAD_VALUE', `general.alignment: expected a positive multiple of 8, got ${alignment}`, {
      field: 'general.alignment',
    });
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError('GGUF_DUPLICATE_TENSOR', `tensor "${t.name}" given twice`);
    names.add(t.name);
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (!t.dims.every((d) => Number.isSafeInteger(d) && d > 0) || t.dims.length > 4 || count !== t.data.length) {
      throw new GgufError(
        'GGUF_BAD_TENSOR',
        `tensor "${t.name}": dims ${JSON.stringify(t.dims)} (1 to 4 positive sizes) do not hold its ${t.data.length} values`,
        { tensor: t.name },
      );
    }
  }
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, v] of metadata) {
    w.string(key);
    w.u32(GgufValueType[v.type]);
    if (v.type === 'STRING') w.string(v.value);
    else if (v.type === 'ARRAY') {
      w.u32(GgufValueType[v.itemType]);
      w.u64(v.value.length);
      if (v.itemType === 'STRING') for (const s of v.value as readonly string[]) w.string(s);
      else {
        const itemType = v.itemType;
        for (let i = 0; i < v.value.length; i++) {
          const x = v.value[i];
          if (typeof x === 'number') checkInteger(key, itemType, x);
          w.scalar(itemType, x);
        }
      }
    } else {
      if (typeof v.value === 'number') checkInteger(key, v.type, v.value);
      w.scalar(v.type, v.value);
    }
  }
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_TYPE_F32);
    w.u64(offset);
    offset += Math.ceil((t.data.length * 4) / alignment) * alignment;
  }
  w.pad(alignment);
  for (const t of tensors) {
    // Copy through a DataView: the file is little-endian whatever the host is.
    const bytes = new Uint8Array(t.data.length * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < t.data.length; i++) view.setFloat32(4 * i, t.data[i], true);
    w.bytes(bytes);
    w.pad(alignment);
  }
  return w.result();
}

/** Write a GGUF file atomically (temp file, fsync, rename). */
export function writeGguf(path: string, metadata: GgufMetadata, tensors: readonly GgufTensor[]): void {
  writeFileAtomic(path, serializeGguf(metadata, tensors));
}

/** Reads GGUF fields, failing with a typed error at the first byte past the end. */
class Reader {
  private readonly view: DataView;
  at = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly source: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.at + n > this.bytes.byteLength) {
      throw new GgufError(
        'GGUF_TRUNCATED',
        `${this.source}: ${what} at byte ${this.at} runs past the end (${this.bytes.byteLength} bytes)`,
        { file: this.source },
      );
    }
  }
  u32(what: string): number {
    this.need(4, what);
    const x = this.view.getUint32(this.at, true);
    this.at += 4;
    return x;
  }
  u64(what: string): number {
    this.need(8, what);
    const x = this.view.getBigUint64(this.at, true);
    this.at += 8;
    if (x > BigInt(Number.MAX_SAFE_INTEGER))
      throw new GgufError('GGUF_BAD_VALUE', `${this.source}: ${what} = ${x} is too large`, { file: this.source });
    return Number(x);
  }
  string(what: string): string {
    const n = this.u64(`${what} length`);
    this.need(n, what);
    const s = new TextDecoder('utf-8', { fatal: false }).decode(this.bytes.subarray(this.at, this.at + n));
    this.at += n;
    return s;
  }
  scalar(type: Exclude<GgufScalarType, 'STRING'>, what: string): number | boolean {
    this.need(SCALAR_BYTES[type], what);
    const v = this.view;
    const at = this.at;
    this.at += SCALAR_BYTES[type];
    switch (type) {
      case 'UINT8':
        return v.getUint8(at);
      case 'BOOL':
        return v.getUint8(at) !== 0;
      case 'INT8':
        return v.getInt8(at);
      case 'UINT16':
        return v.getUint16(at, true);
      case 'INT16':
        return v.getInt16(at, true);
      case 'UINT32':
        return v.getUint32(at, true);
      case 'INT32':
        return v.getInt32(at, true);
      case 'FLOAT32':
        return v.getFloat32(at, true);
      case 'UINT64':
        return Number(v.getBigUint64(at, true));
      case 'INT64':
        return Number(v.getBigInt64(at, true));
      case 'FLOAT64':
        return v.getFloat64(at, true);
    }
  }
  type(what: string): keyof typeof GgufValueType {
    const t = this.u32(what);
    const name = TYPE_NAMES[t];
    if (name === undefined)
      throw new GgufError('GGUF_BAD_VALUE', `${this.source}: ${what}: unknown value type ${t}`, { file: this.source });
    return name;
  }
}

function readValue(r: Reader, type: keyof typeof GgufValueType, key: string): GgufValue {
  if (type === 'STRING') return { type, value: r.string(key) };
  if (type !== 'ARRAY') {
    const x = r.scalar(type, key);
    return type === 'BOOL' ? { type, value: x as boolean } : { type, value: x as number };
  }
  const itemType = r.type(`${key} item type`);
  const n = r.u64(`${key} count`);
  if (itemType === 'ARRAY') throw new GgufError('GGUF_BAD_VALUE', `metadata "${key}": nested arrays are not supported`);
  if (itemType === 'STRING') return { type, itemType, value: Array.from({ length: n }, () => r.string(key)) };
  r.need(n * SCALAR_BYTES[itemType], key);
  if (itemType === 'BOOL')
    return { type, itemType, value: Array.from({ length: n }, () => r.scalar('BOOL', key) as boolean) };
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = r.scalar(itemType, key) as number;
  return { type, itemType, value: values };
}

/**
 * Parse a GGUF file (path or bytes): header, metadata, tensor infos and, for F32 tensors, their data. Checks the
 * magic, version 3, that every tensor offset is aligned and in bounds, and that tensors do not overlap.
 */
export function readGguf(pathOrBytes: string | Uint8Array, sourceName?: string): GgufFile {
  const source = sourceName ?? (typeof pathOrBytes === 'string' ? pathOrBytes : '<buffer>');
  let bytes: Uint8Array;
  try {
    bytes = typeof pathOrBytes === 'string' ? fileSystem().readBytes(pathOrBytes) : pathOrBytes;
  } catch (e) {
    throw new GgufError('GGUF_UNREADABLE', `${source}: cannot read file (${(e as Error).message})`, { file: source });
  }
  const r = new Reader(bytes, source);
  const magic = r.u32('magic');
  if (magic !== GGUF_MAGIC)
    throw new GgufError('GGUF_BAD_MAGIC', `${source}: not a GGUF file (magic 0x${magic.toString(16)})`, {
      file: source,
    });
  const version = r.u32('version');
  if (version !== GGUF_VERSION) {
    throw new GgufError('GGUF_BAD_VERSION', `${source}: GGUF version ${version}, expected ${GGUF_VERSION}`, {
      file: source,
      expected: GGUF_VERSION,
      actual: version,
    });
  }
  const tensorCount = r.u64('tensor count');
  const kvCount = r.u64('metadata count');
  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string('metadata key');
    metadata.set(key, readValue(r, r.type(`metadata "${key}" type`), key));
  }
  const alignValue = metadata.get('general.alignment');
  const alignment = alignValue?.type === 'UINT32' ? alignValue.value : GGUF_DEFAULT_ALIGNMENT;
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string('tensor name');
    const nDims = r.u32(`tensor "${name}" n_dims`);
    if (nDims < 1 || nDims > 4)
      throw new GgufError('GGUF_BAD_TENSOR', `${source}: tensor "${name}" has ${nDims} dims`, { tensor: name });
    const dims = Array.from({ length: nDims }, () => r.u64(`tensor "${name}" dims`));
    tensors.push({ name, dims, type: r.u32(`tensor "${name}" type`), offset: r.u64(`tensor "${name}" offset`) });
  }
  const dataOffset = Math.ceil(r.at / alignment) * alignment;
  const dataBytes = bytes.byteLength - dataOffset;
  const spans = tensors
    .filter((t) => t.type === GGML_TYPE_F32)
    .map((t) => ({ t, end: t.offset + t.dims.reduce((a, b) => a * b, 1) * 4 }))
    .sort((a, b) => a.t.offset - b.t.offset);
  let cursor = 0;
  for (const { t, end } of spans) {
    if (t.offset % alignment !== 0 || t.offset < cursor || end > dataBytes) {
      throw new GgufError(
        'GGUF_BAD_OFFSET',
        `${source}: tensor "${t.name}" at data offset ${t.offset} (to ${end}) is unaligned (${alignment}), overlaps the previous tensor or runs past the ${dataBytes} data bytes`,
        { file: source, tensor: t.name },
      );
    }
    cursor = end;
    const view = new DataView(bytes.buffer, bytes.byteOffset + dataOffset + t.offset, end - t.offset);
    const data = new Float32Array((end - t.offset) / 4);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(4 * i, true);
    t.data = data;
  }
  return { version, metadata, tensors, alignment, dataOffset };
}
