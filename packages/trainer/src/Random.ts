/**
 * A small seeded random generator (xoshiro128**) whose state can be saved in a
 * checkpoint and restored, so shuffles and initialisation repeat exactly.
 *
 * @since 0.1.0
 */

/**
 * The state of a generator: four unsigned 32-bit words.
 *
 * @since 0.1.0
 * @category models
 */
export type State = readonly [number, number, number, number]

/**
 * A mutable generator.
 *
 * @since 0.1.0
 * @category models
 */
export interface Random {
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [0, n). */
  readonly int: (n: number) => number
  /** A standard normal sample. */
  readonly normal: () => number
  /** A copy of the current state. */
  readonly state: () => State
}

const splitmix32 = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x9e3779b9) >>> 0
    let z = a
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

/**
 * A generator from a seed (any integer; strings of other seeds mix in with
 * {@link derive}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (seed: number): Random => {
  const sm = splitmix32(seed)
  return fromState([sm(), sm(), sm(), sm() | 1])
}

/**
 * A generator for a purpose derived from a seed (`derive(seed, "init")`), so that
 * different uses of one seed do not share a sequence.
 *
 * @since 0.1.0
 * @category constructors
 */
export const derive = (seed: number, purpose: string): Random => {
  let h = 0x811c9dc5 ^ (seed >>> 0)
  for (let i = 0; i < purpose.length; i++) h = Math.imul(h ^ purpose.charCodeAt(i), 0x01000193) >>> 0
  return make(h ^ Math.imul(seed | 0, 0x9e3779b1))
}

/**
 * A generator that continues from a saved state.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromState = (state: State): Random => {
  let [a, b, c, d] = state.map((x) => x >>> 0) as [number, number, number, number]
  const nextU32 = () => {
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0
    const t = (b << 9) >>> 0
    c ^= a
    d ^= b
    b ^= c
    a ^= d
    c ^= t
    d = rotl(d, 11)
    a >>>= 0
    b >>>= 0
    c >>>= 0
    d >>>= 0
    return r
  }
  const next = () => nextU32() / 4294967296
  return {
    next,
    int: (n) => Math.floor(next() * n),
    normal: () => {
      const u = 1 - next()
      const v = next()
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
    },
    state: () => [a, b, c, d]
  }
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0

/**
 * A seeded permutation of `0..n-1` (Fisher-Yates).
 *
 * @since 0.1.0
 * @category utils
 */
export const permutation = (random: Random, n: number): Int32Array => {
  const p = new Int32Array(n)
  for (let i = 0; i < n; i++) p[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = random.int(i + 1)
    const t = p[i]!
    p[i] = p[j]!
    p[j] = t
  }
  return p
}

/**
 * A Float32Array of uniform samples in [lo, hi).
 *
 * @since 0.1.0
 * @category utils
 */
export const uniform = (random: Random, n: number, lo: number, hi: number): Float32Array => {
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * random.next()
  return out
}
