import { OptionError, assertOption } from './errors.js';

/** Serialisable state of an {@link Rng}: the four 32-bit words of xoshiro128** plus a cached normal deviate. */
export interface RngState {
  algorithm: 'xoshiro128**';
  s: [number, number, number, number];
  /** Second Box-Muller deviate kept for the next `normal()` call, or null. */
  spareNormal: number | null;
}

/** splitmix32 step, used only to expand a seed into the xoshiro state. */
function splitmix32(x: number): [number, number] {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [x, z >>> 0];
}

/** Hash a string label to 32 bits (FNV-1a), used to derive independent child streams. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Seeded pseudo-random generator (xoshiro128**) used for every random choice in the project:
 * initialisation, dropout masks, sampling and data order. The state is four uint32 words, so it can be saved
 * with {@link Rng.getState} and restored with {@link Rng.fromState} to continue the exact same stream.
 */
export class Rng {
  private s: Uint32Array;
  private spareNormal: number | null = null;

  constructor(seed: number) {
    assertOption(Number.isInteger(seed) && Math.abs(seed) <= Number.MAX_SAFE_INTEGER, 'seed', 'a safe integer', seed);
    this.s = new Uint32Array(4);
    // Mix both halves of the seed so seeds beyond 2^32 still differ.
    let x = (seed >>> 0) ^ hashLabel(String(Math.floor(seed / 2 ** 32)));
    for (let i = 0; i < 4; i++) {
      const [nx, z] = splitmix32(x);
      x = nx;
      this.s[i] = z;
    }
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  static fromState(state: RngState): Rng {
    if (
      !state ||
      state.algorithm !== 'xoshiro128**' ||
      !Array.isArray(state.s) ||
      state.s.length !== 4 ||
      !state.s.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) ||
      state.s.every((w) => w === 0)
    ) {
      throw new OptionError('BAD_RNG_STATE', `not a valid xoshiro128** RNG state: ${JSON.stringify(state)}`, {
        actual: state,
      });
    }
    const rng = new Rng(0);
    rng.s.set(state.s);
    rng.spareNormal = typeof state.spareNormal === 'number' ? state.spareNormal : null;
    return rng;
  }

  getState(): RngState {
    return {
      algorithm: 'xoshiro128**',
      s: [this.s[0], this.s[1], this.s[2], this.s[3]],
      spareNormal: this.spareNormal,
    };
  }

  /** An independent generator derived from this one's current state and a label (does not advance this one). */
  fork(label: string): Rng {
    const child = new Rng(0);
    const h = hashLabel(label);
    let x = (this.s[0] ^ h ^ Math.imul(this.s[3], 0x9e3779b1)) >>> 0;
    for (let i = 0; i < 4; i++) {
      const [nx, z] = splitmix32(x ^ this.s[(i + 1) % 4]);
      x = nx;
      child.s[i] = z;
    }
    if (child.s.every((w) => w === 0)) child.s[0] = 1;
    return child;
  }

  /** Next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform float in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    assertOption(Number.isInteger(n) && n > 0 && n <= 0x100000000, 'n', 'an integer in [1, 2^32]', n);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal deviate (Box-Muller; the second deviate is cached and is part of the saved state). */
  normal(mean = 0, std = 1): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Float32Array of `n` uniform values in [lo, hi). */
  uniformArray(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.next();
    return out;
  }

  /** Float32Array of `n` normal values. */
  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** In-place Fisher-Yates shuffle; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** One uniformly chosen element. */
  pick<T>(items: readonly T[]): T {
    assertOption(items.length > 0, 'items', 'a non-empty array', items.length);
    return items[this.int(items.length)];
  }

  /** `k` distinct elements chosen uniformly without replacement, in random order. */
  sample<T>(items: readonly T[], k: number): T[] {
    assertOption(Number.isInteger(k) && k >= 0 && k <= items.length, 'k', `an integer in [0, ${items.length}]`, k);
    const idx = Array.from(items.keys());
    for (let i = 0; i < k; i++) {
      const j = i + this.int(idx.length - i);
      const tmp = idx[i];
      idx[i] = idx[j];
      idx[j] = tmp;
    }
    return idx.slice(0, k).map((i) => items[i]);
  }

  /** Index drawn from unnormalised non-negative weights. */
  categorical(weights: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < weights.length; i++) total += weights[i];
    assertOption(total > 0 && Number.isFinite(total), 'weights', 'non-negative with a positive finite sum', total);
    let r = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i];
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
