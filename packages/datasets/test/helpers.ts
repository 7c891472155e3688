import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TokenEncoder } from '../src/index.js';

/** The repository's sibling `shared/` folder (reference data; absent on a fresh clone). */
export const SHARED = join(dirname(fileURLToPath(import.meta.url)), '../../../../shared');

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `hyperllama-datasets-${label}-`));
}

/**
 * A character-level test tokenizer: pad 0, BOS 1, EOS 2, and each character its own id (the vocabulary grows as
 * characters are seen, from 3 up, unless a fixed map is given). Optional multi-character tokens are matched
 * greedily first, to model merges across a prompt/answer boundary.
 */
export class CharEncoder implements TokenEncoder {
  readonly padId = 0;
  readonly bosId = 1;
  readonly eosId = 2;
  private readonly ids = new Map<string, number>();
  private readonly pieces: string[];

  constructor(
    fixed: Record<string, number> = {},
    private readonly merges: string[] = [],
  ) {
    for (const [piece, id] of Object.entries(fixed)) this.ids.set(piece, id);
    this.pieces = [];
    for (const [piece, id] of this.ids) this.pieces[id] = piece;
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const out: number[] = opts.bos ? [this.bosId] : [];
    for (let i = 0; i < text.length;) {
      const piece = this.merges.find((m) => text.startsWith(m, i)) ?? text[i];
      out.push(this.idOf(piece));
      i += piece.length;
    }
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  decode(ids: number[]): string {
    return ids.map((id) => (id <= 2 ? '' : this.pieces[id])).join('');
  }

  private idOf(piece: string): number {
    let id = this.ids.get(piece);
    if (id === undefined) {
      id = Math.max(2, ...this.ids.values()) + 1;
      this.ids.set(piece, id);
      this.pieces[id] = piece;
    }
    return id;
  }
}
