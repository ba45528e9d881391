/**
 * A batch of features computed with one read, one claim transaction and one write, on a SQLite file.
 * Run: npx tsx many.ts (a second run finds every value stored and computes nothing)
 */
import { Effect, Exit, Layer, Schema } from "effect"
import { SqliteStorage } from "@org/storage/sqlite"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"

const Luma = FeatureSpec.make({
  name: "artwork.luma",
  version: 1,
  entity: "artwork",
  value: Schema.Struct({ mean: Schema.Number })
})

// three artworks and the content hashes of their images (bare hex sha256, as jasper stores them)
const artworks = ["a", "b", "c"].map((letter, i) => ({ id: `artwork-${i + 1}`, image: letter.repeat(64) }))

const program = Effect.gen(function* () {
  const store = yield* FeatureStore.FeatureStore
  let computed = 0
  const items = yield* Effect.forEach(artworks, (a) =>
    Effect.map(Fingerprint.make({ assets: { image: a.image } }), (fingerprint) => ({
      entity: a.id,
      fingerprint,
      compute: Effect.sync(() => {
        computed++
        return { mean: a.image.charCodeAt(0) / 255 }
      })
    }))
  )
  const exits = yield* store.getOrComputeMany(Luma, items, { producer: "luma@1", concurrency: 4 })
  // one result per item: its value, or why it failed; nothing stored for a failed item
  for (const [i, exit] of exits.entries()) {
    console.log(artworks[i]!.id, Exit.isSuccess(exit) ? exit.value : `failed: ${String(exit.cause)}`)
  }
  console.log(`${computed} computed`) // 3 on the first run, 0 after
})

const Store = FeatureStore.layer().pipe(Layer.provide(SqliteStorage.layer({ filename: "many.db" })))
Effect.runPromise(program.pipe(Effect.provide(Store)))
