import { TokenizerError } from './errors.js';
import { ProtoReader, WIRE_BYTES, WIRE_FIXED32, WIRE_VARINT, type ProtoField } from './protobuf.js';

/** SentencePiece piece types (`SentencePiece.Type` in sentencepiece_model.proto). */
export const PieceType = { Normal: 1, Unknown: 2, Control: 3, UserDefined: 4, Unused: 5, Byte: 6 } as const;
export type PieceType = (typeof PieceType)[keyof typeof PieceType];

export interface VocabPiece {
  /** The piece text, with `▁` (U+2581) standing for a space; byte pieces are named `<0xNN>`. */
  piece: string;
  /** Merge priority for BPE: a higher score merges first. */
  score: number;
  type: PieceType;
}

/** What a SentencePiece BPE vocabulary needs to become a Hugging Face tokenizer.json. */
export interface SentencePieceVocab {
  pieces: VocabPiece[];
  unkId: number;
  bosId: number;
  eosId: number;
  /** -1 when the model defines no padding piece. */
  padId: number;
  byteFallback: boolean;
  /** Prepend `▁` to the text before segmenting it (SentencePiece's `add_dummy_prefix`). */
  addDummyPrefix: boolean;
  /** Drop leading and trailing spaces and collapse runs of spaces (SentencePiece's `remove_extra_whitespaces`). */
  removeExtraWhitespaces: boolean;
}

const MODEL_TYPE_NAMES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
const MODEL_TYPE_BPE = 2;

/**
 * Reads a SentencePiece `ModelProto` (a `tokenizer.model` file). Only BPE models with the identity normalization
 * rule (no precompiled charsmap) are supported, as Llama's and llama2.c's are; anything else throws a {@link TokenizerError} that says what was found.
 */
export function parseSentencePieceModel(bytes: Uint8Array, file: string): SentencePieceVocab {
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (code: string, what: string): never => {
    throw new TokenizerError(code, `${file}: ${what}`, { file });
  };
  const expectWire = (f: ProtoField, wireType: number, name: string): void => {
    if (f.wireType !== wireType)
      bad('TOKENIZER_BAD_PROTOBUF', `field ${name} has wire type ${f.wireType}, expected ${wireType}`);
  };
  const text = (f: ProtoField, name: string): string => {
    expectWire(f, WIRE_BYTES, name);
    try {
      return utf8.decode(bytes.subarray(f.start, f.end));
    } catch {
      return bad('TOKENIZER_BAD_PROTOBUF', `field ${name} is not valid UTF-8`);
    }
  };

  const pieces: VocabPiece[] = [];
  // Proto2 defaults of the fields we read.
  const trainer = {
    modelType: 1,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    whitespaceAsSuffix: false,
  };
  const normalizer = {
    name: '',
    charsmapBytes: 0,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  let sawTrainer = false;

  for (const f of new ProtoReader(bytes, file).fields()) {
    if (f.field === 1) {
      expectWire(f, WIRE_BYTES, 'pieces');
      const p: VocabPiece = { piece: '', score: 0, type: PieceType.Normal };
      let hasPiece = false;
      for (const g of new ProtoReader(bytes, file, f.start, f.end).fields()) {
        if (g.field === 1) {
          p.piece = text(g, 'pieces.piece');
          hasPiece = true;
        } else if (g.field === 2) {
          expectWire(g, WIRE_FIXED32, 'pieces.score');
          p.score = view.getFloat32(g.start, true);
        } else if (g.field === 3) {
          expectWire(g, WIRE_VARINT, 'pieces.type');
          if (g.int32 < 1 || g.int32 > 6)
            bad('TOKENIZER_BAD_PROTOBUF', `piece ${pieces.length} has unknown type ${g.int32}`);
          p.type = g.int32 as PieceType;
        }
      }
      if (!hasPiece) bad('TOKENIZER_BAD_PROTOBUF', `piece ${pieces.length} has no text (field 1)`);
      pieces.push(p);
    } else if (f.field === 2) {
      expectWire(f, WIRE_BYTES, 'trainer_spec');
      sawTrainer = true;
      for (const g of new ProtoReader(bytes, file, f.start, f.end).fields()) {
        if (g.wireType !== WIRE_VARINT) continue;
        if (g.field === 3) trainer.modelType = g.int32;
        else if (g.field === 24) trainer.whitespaceAsSuffix = g.varint !== 0;
        else if (g.field === 35) trainer.byteFallback = g.varint !== 0;
        else if (g.field === 40) trainer.unkId = g.int32;
        else if (g.field === 41) trainer.bosId = g.int32;
        else if (g.field === 42) trainer.eosId = g.int32;
        else if (g.field === 43) trainer.padId = g.int32;
      }
    } else if (f.field === 3) {
      expectWire(f, WIRE_BYTES, 'normalizer_spec');
      for (const g of new ProtoReader(bytes, file, f.start, f.end).fields()) {
        if (g.field === 1) normalizer.name = text(g, 'normalizer_spec.name');
        else if (g.field === 2) normalizer.charsmapBytes = g.end - g.start;
        else if (g.field === 3) normalizer.addDummyPrefix = g.varint !== 0;
        else if (g.field === 4) normalizer.removeExtraWhitespaces = g.varint !== 0;
        else if (g.field === 5) normalizer.escapeWhitespaces = g.varint !== 0;
      }
    }
  }

  if (pieces.length === 0 || !sawTrainer) {
    bad(
      'TOKENIZER_BAD_PROTOBUF',
      `not a SentencePiece model: found ${pieces.length} pieces and ${sawTrainer ? 'a' : 'no'} trainer_spec`,
    );
  }
  if (trainer.modelType !== MODEL_TYPE_BPE) {
    bad(
      'TOKENIZER_UNSUPPORTED',
      `model_type is ${MODEL_TYPE_NAMES[trainer.modelType] ?? trainer.modelType}, only BPE is supported`,
    );
  }
  if (trainer.whitespaceAsSuffix) bad('TOKENIZER_UNSUPPORTED', 'treat_whitespace_as_suffix=true is not supported');
  if (normalizer.charsmapBytes > 0 || !normalizer.escapeWhitespaces) {
    bad(
      'TOKENIZER_UNSUPPORTED',
      `normalizer "${normalizer.name}" (charsmap ${normalizer.charsmapBytes} bytes, escape_whitespaces=` +
        `${normalizer.escapeWhitespaces}) is not supported; expected the identity normalizer`,
    );
  }
  // SentencePiece matches user-defined pieces whole inside the text, under the text's single `▁` prefix; as
  // tokenizer.json added tokens they would split the text and give each part its own prefix, i.e. other ids.
  const userDefined = pieces.filter((p) => p.type === PieceType.UserDefined);
  if (userDefined.length > 0) {
    bad(
      'TOKENIZER_UNSUPPORTED',
      `${userDefined.length} user-defined pieces (first: ${JSON.stringify(userDefined[0].piece)}) are not supported`,
    );
  }
  for (const [name, id] of [
    ['unk_id', trainer.unkId],
    ['bos_id', trainer.bosId],
    ['eos_id', trainer.eosId],
    ['pad_id', trainer.padId],
  ] as const) {
    if (id >= pieces.length || (id < 0 && name === 'unk_id')) {
      bad('TOKENIZER_BAD_PROTOBUF', `trainer_spec.${name}=${id} is outside the ${pieces.length} pieces`);
    }
  }
  return {
    pieces,
    unkId: trainer.unkId,
    bosId: trainer.bosId,
    eosId: trainer.eosId,
    padId: trainer.padId,
    byteFallback: trainer.byteFallback,
    addDummyPrefix: normalizer.addDummyPrefix,
    removeExtraWhitespaces: normalizer.removeExtraWhitespaces,
  };
}
