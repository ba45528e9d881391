import { Effect, Layer, Schema } from "effect"
import { Annotations, AnnotationType } from "@org/marken"
import type { Database } from "@org/storage"

export const Shot = AnnotationType.make({
  name: "shot",
  version: "1.0",
  payload: Schema.Struct({
    kind: Schema.Literal("cut", "fade"),
    score: Schema.Number.pipe(Schema.between(0, 1)),
    tags: Schema.optional(Schema.Array(Schema.String)),
    meta: Schema.optional(Schema.Struct({ camera: Schema.String, flagged: Schema.Boolean }))
  }),
  vectors: { embedding: { dimension: 8, metric: "cosine" } }
})

export const ShotV11 = AnnotationType.make({
  name: "shot",
  version: "1.1",
  payload: Schema.Struct({
    kind: Schema.Literal("cut", "fade"),
    score: Schema.Number.pipe(Schema.between(0, 1)),
    tags: Schema.optional(Schema.Array(Schema.String)),
    meta: Schema.optional(Schema.Struct({ camera: Schema.String, flagged: Schema.Boolean })),
    note: Schema.optional(Schema.String)
  }),
  vectors: { embedding: { dimension: 8, metric: "cosine" } }
})

export const ShotV2 = AnnotationType.make({
  name: "shot",
  version: "2.0",
  payload: Schema.Struct({
    transition: Schema.Literal("cut", "fade"),
    score: Schema.Number,
    tags: Schema.Array(Schema.String)
  }),
  vectors: { embedding: { dimension: 8, metric: "cosine" } }
})

/** A deterministic pseudo-random generator (mulberry32). */
export const rng = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export const vec = (random: () => number, dim = 8) => Float32Array.from({ length: dim }, () => random() * 2 - 1)

export const marken = (options?: Annotations.Options) => (storage: Layer.Layer<Database.Database, any>) =>
  Annotations.layerWithRegistry(options).pipe(Layer.provide(storage))

export const producer = { algorithm: "shot-detector", version: "3.2" }

void Effect

/** Clustered vectors: `clusters` random centres, each point a centre plus small noise. */
export const clustered = (n: number, dim: number, clusters: number, seed: number): Array<Float32Array> => {
  const r = rng(seed)
  const centres = Array.from({ length: clusters }, () => vec(r, dim))
  return Array.from({ length: n }, () => {
    const c = centres[Math.floor(r() * clusters)]!
    return Float32Array.from(c, (x) => x + (r() * 2 - 1) * 0.15)
  })
}

/** Exact cosine k nearest (indices) among `candidates`. */
export const exactCosine = (
  q: Float32Array,
  vectors: ReadonlyArray<Float32Array>,
  candidates: ReadonlyArray<number>,
  k: number
) => {
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))
  const nq = norm(q)
  return candidates
    .map((i) => {
      const v = vectors[i]!
      let dot = 0
      for (let j = 0; j < v.length; j++) dot += v[j]! * q[j]!
      return { i, d: 1 - dot / (nq * norm(v)) }
    })
    .sort((a, b) => a.d - b.d)
    .slice(0, k)
}
