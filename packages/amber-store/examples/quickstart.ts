/**
 * A feature computed once and read back, with its lineage, on a SQLite file.
 * Run: npx tsx quickstart.ts (a second run finds the value stored and computes nothing)
 */
import { Effect, Layer, Schema } from "effect"
import { SqliteStorage } from "@org/storage/sqlite"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"

const Brightness = FeatureSpec.make({
  name: "artwork.brightness",
  version: 1,
  entity: "artwork",
  value: Schema.Struct({ mean: Schema.Number, std: Schema.Number })
})

const program = Effect.gen(function* () {
  const store = yield* FeatureStore.FeatureStore
  // what the value is computed from: the asset's content hash (a ContentHash of @org/media-types: the bare hex
  // sha256 of its bytes, as jasper stores it) and the parameters
  const image = "9f2c5e3b7a1d4c6e8f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e"
  const fp = yield* Fingerprint.make({ assets: { image }, params: { size: 224 } })
  const compute = Effect.sync(() => ({ mean: 0.42, std: 0.17 }))
  yield* store.getOrCompute(Brightness, "artwork-1", fp, compute, { producer: "brightness@1" }) // computes
  yield* store.getOrCompute(Brightness, "artwork-1", fp, compute) // stored: no compute
  console.log(yield* store.get(Brightness, "artwork-1", fp)) // Option.some({ mean: 0.42, std: 0.17 })
  console.log(yield* store.lineage(Brightness, "artwork-1", fp)) // inputs, producer, run, createdAt, computeMs
  console.log(yield* store.counters) // { hits: 2, misses: 1, computations: 1, ... } on the first run
})

const Store = FeatureStore.layer().pipe(Layer.provide(SqliteStorage.layer({ filename: "media.db" })))
Effect.runPromise(program.pipe(Effect.provide(Store)))
