import { TokenizerError } from './errors.js';

/** Protobuf wire types used by the reader. */
export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_BYTES = 2;
export const WIRE_FIXED32 = 5;

/** One field of a protobuf message: its number, wire type and where its value lies. */
export interface ProtoField {
  field: number;
  wireType: number;
  /** Decoded value for varint fields (as a JS number; values above 2^53 lose precision); payload length for bytes. */
  varint: number;
  /** The low 32 bits of a varint read as a signed int32 (how protobuf stores int32 and enum fields, negatives included). */
  int32: number;
  /** Byte range of the value: the payload for length-delimited fields, the 4/8 raw bytes for fixed ones. */
  start: number;
  end: number;
}

/**
 * A minimal reader of protobuf wire format: walks the fields of one message in `bytes[start, end)`.
 * Every read is bounds-checked; a message that runs past its end throws a {@link TokenizerError} naming `file`.
 */
export class ProtoReader {
  private pos: number;
  /** Low 32 bits of the varint read last. */
  private lastLow32 = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly file: string,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.pos = start;
  }

  /** Decodes the message into its fields, in file order. */
  fields(): ProtoField[] {
    const out: ProtoField[] = [];
    while (this.pos < this.end) out.push(this.readField());
    return out;
  }

  private readField(): ProtoField {
    const at = this.pos;
    const key = this.readVarint();
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field === 0) this.fail(`field number 0 at byte ${at}`);
    switch (wireType) {
      case WIRE_VARINT: {
        const start = this.pos;
        const varint = this.readVarint();
        return { field, wireType, varint, int32: this.lastLow32 | 0, start, end: this.pos };
      }
      case WIRE_FIXED64:
        return this.fixed(field, wireType, 8);
      case WIRE_FIXED32:
        return this.fixed(field, wireType, 4);
      case WIRE_BYTES: {
        const length = this.readVarint();
        const start = this.pos;
        if (length > this.end - start) {
          this.fail(`field ${field} at byte ${at} declares ${length} bytes but only ${this.end - start} remain`);
        }
        this.pos = start + length;
        return { field, wireType, varint: length, int32: 0, start, end: this.pos };
      }
      default:
        this.fail(`unsupported wire type ${wireType} for field ${field} at byte ${at}`);
    }
  }

  private fixed(field: number, wireType: number, size: number): ProtoField {
    const start = this.pos;
    if (size > this.end - start)
      this.fail(`field ${field} at byte ${start} needs ${size} bytes, ${this.end - start} remain`);
    this.pos += size;
    return { field, wireType, varint: 0, int32: 0, start, end: this.pos };
  }

  private readVarint(): number {
    let value = 0;
    let scale = 1;
    this.lastLow32 = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(`varint runs past the end of the message at byte ${this.pos}`);
      const b = this.bytes[this.pos++];
      value += (b & 0x7f) * scale;
      if (i < 5) this.lastLow32 = (this.lastLow32 | ((b & 0x7f) << (7 * i))) >>> 0;
      if (b < 0x80) return value;
      scale *= 128;
    }
    this.fail(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  private fail(what: string): never {
    throw new TokenizerError('TOKENIZER_BAD_PROTOBUF', `${this.file}: malformed protobuf: ${what}`, {
      file: this.file,
    });
  }
}
