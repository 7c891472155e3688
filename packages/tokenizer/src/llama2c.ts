import { TokenizerError } from './errors.js';
import { PieceType, type SentencePieceVocab, type VocabPiece } from './sentencepiece.js';

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/**
 * Reads a llama2.c `tokenizer.bin`: int32 max_token_length, then per token a float32 score, an int32 byte length and
 * the UTF-8 bytes, all little-endian, until the end of the file. llama2.c's exporter writes spaces where
 * SentencePiece has `▁` and renames BOS/EOS to `\n<s>\n` / `\n</s>\n`, and the file has no piece types, so:
 * `▁` is restored, ids 0, 1, 2 become `<unk>`, `<s>`, `</s>` (the Llama layout llama2.c assumes), and pieces named
 * `<0xNN>` are byte pieces (byte fallback is on when all 256 are present). Like llama2.c's `encode`, the text gets the
 * dummy-prefix space and no whitespace removal (a `.model` may differ there: see `removeExtraWhitespaces`).
 * `expectedVocabSize`, when given (llama2.c takes it from the model file), must match the number of tokens read.
 */
export function parseLlama2cVocab(bytes: Uint8Array, file: string, expectedVocabSize?: number): SentencePieceVocab {
  const bad = (what: string): never => {
    throw new TokenizerError('TOKENIZER_BAD_LLAMA2C', `${file}: malformed llama2.c tokenizer: ${what}`, { file });
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  if (bytes.length < 4) bad(`${bytes.length} bytes is too short for the max_token_length header`);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 4096) bad(`max_token_length ${maxTokenLength} is not in [1, 4096]`);

  const pieces: VocabPiece[] = [];
  let pos = 4;
  while (pos < bytes.length) {
    const id = pieces.length;
    if (bytes.length - pos < 8)
      bad(`token ${id} at byte ${pos}: header needs 8 bytes, ${bytes.length - pos} remain (truncated?)`);
    const score = view.getFloat32(pos, true);
    const length = view.getInt32(pos + 4, true);
    pos += 8;
    if (length < 0 || length > maxTokenLength)
      bad(`token ${id} at byte ${pos - 8}: length ${length} is not in [0, ${maxTokenLength}]`);
    if (bytes.length - pos < length)
      bad(`token ${id} at byte ${pos}: needs ${length} bytes, ${bytes.length - pos} remain (truncated?)`);
    let text: string;
    try {
      text = utf8.decode(bytes.subarray(pos, pos + length));
    } catch {
      return bad(`token ${id} at byte ${pos} is not valid UTF-8`);
    }
    pos += length;
    pieces.push(pieceOf(id, text, score));
  }
  if (pieces.length < 3) bad(`only ${pieces.length} tokens; at least <unk>, <s>, </s> are needed`);
  if (expectedVocabSize !== undefined && pieces.length !== expectedVocabSize) {
    bad(`read ${pieces.length} tokens, expected vocab_size ${expectedVocabSize}`);
  }
  const byteCount = pieces.filter((p) => p.type === PieceType.Byte).length;
  return {
    pieces,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    byteFallback: byteCount === 256,
    addDummyPrefix: true,
    removeExtraWhitespaces: false,
  };
}

function pieceOf(id: number, text: string, score: number): VocabPiece {
  if (id === 0) return { piece: '<unk>', score, type: PieceType.Unknown };
  if (id === 1) return { piece: '<s>', score, type: PieceType.Control };
  if (id === 2) return { piece: '</s>', score, type: PieceType.Control };
  if (BYTE_PIECE.test(text)) return { piece: text, score, type: PieceType.Byte };
  return { piece: text.replaceAll(' ', '\u2581'), score, type: PieceType.Normal };
}
