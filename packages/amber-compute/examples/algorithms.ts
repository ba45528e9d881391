/**
 * Every kind of input an algorithm can read (an asset, a feature of the same entity, the features of
 * its children, the feature of its parent), with parameters, a batch compute, a concurrency limit and
 * a timeout; `Mesh.make` checks them together.
 * Run: npx tsx algorithms.ts
 */
import { Effect, Schema } from "effect"
import { FeatureSpec } from "@org/amber-store"
import { Algorithm, Mesh } from "@org/amber-compute"

const Genre = FeatureSpec.make({ name: "title.genre", version: 1, entity: "title", value: Schema.String })
const Tensor = FeatureSpec.embedding({ name: "artwork.tensor", version: 1, entity: "artwork", dimension: 4 })
const Color = FeatureSpec.embedding({ name: "artwork.color", version: 1, entity: "artwork", dimension: 2 })
const Style = FeatureSpec.make({ name: "artwork.style", version: 1, entity: "artwork", value: Schema.String })
const Palette = FeatureSpec.make({ name: "title.palette", version: 1, entity: "title", value: Schema.Number })

const genre = Algorithm.make({
  feature: Genre,
  inputs: {},
  compute: ({ entity }) => Effect.succeed(entity.id.endsWith("1") ? "drama" : "comedy")
})
const tensor = Algorithm.make({
  feature: Tensor, // FeatureSpec.make(...) or FeatureSpec.embedding(...)
  inputs: { image: Algorithm.asset("image") }, // the entity's latest asset in a role: its content hash enters the fingerprint
  params: { size: 224 }, // JSON, part of the fingerprint and of the lineage
  // many entities per call, up to batchSize
  computeBatch: (items) =>
    Effect.succeed(items.map(({ inputs }) => Float32Array.from([1, 2, 3, inputs.image.contentHash.length]))),
  batchSize: 32
})
const color = Algorithm.make({
  feature: Color,
  inputs: { tensor: Algorithm.feature(Tensor) }, // another feature of the same entity
  compute: ({ inputs }) => Effect.succeed(Float32Array.from([inputs.tensor[0]!, inputs.tensor[1]!])),
  concurrency: 4, // computations at once in one process
  timeout: "30 seconds" // a ComputeTimeoutError for the entity past it
  // or: thread: { module: "./colour.mjs", export: "default" } (CPU-bound work in worker threads)
})
const style = Algorithm.make({
  feature: Style,
  inputs: { color: Algorithm.feature(Color), title: Algorithm.parent(Genre) }, // the feature of the parent entity
  compute: ({ inputs }) => Effect.succeed(`${inputs.title}-${inputs.color[0]! > 1 ? "warm" : "cool"}`)
})
const palette = Algorithm.make({
  feature: Palette,
  inputs: { artworks: Algorithm.children(Color) }, // the feature of every child of this kind, in id order
  compute: ({ inputs }) => Effect.succeed(inputs.artworks.length)
})

// a cycle, an input nothing produces, two producers of one feature or a mismatch fails here
Effect.runPromise(Mesh.make([genre, tensor, color, style, palette])).then(() => console.log("mesh: 5 algorithms"))
