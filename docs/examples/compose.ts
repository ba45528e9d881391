/**
 * The packages composed on one storage layer: Jasper registers a poster, amber-store computes its
 * brightness once, Marken stores it as an annotation and answers a query.
 * Run: npx tsx compose.ts
 */
import * as fs from "node:fs"
import { Effect, Layer, Schema } from "effect"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"
import { Catalog, Image, Jasper, TestMedia } from "@org/jasper"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { SqliteStorage } from "@org/storage/sqlite" // or: import { PostgresStorage } from "@org/storage/pg"

const Brightness = FeatureSpec.make({ name: "artwork.brightness", version: 1, entity: "artwork", value: Schema.Number })
const Bright = AnnotationType.make({ name: "bright", version: "1.0", payload: Schema.Struct({ mean: Schema.Number }) })

fs.mkdirSync("./media", { recursive: true })
const Storage = SqliteStorage.layer({ filename: "media.db" }) // PostgresStorage.layer({ url, poolSize: 10 })
const App = Layer.mergeAll(
  Jasper.layer({ roots: ["./media"], derivatives: "./derivatives" }), // Reader + Catalog + Derivatives
  FeatureStore.layer(),
  Annotations.layerWithRegistry() // Annotations + its type Registry
).pipe(Layer.provide(Storage))

const program = Effect.gen(function* () {
  const catalog = yield* Catalog.Catalog
  const store = yield* FeatureStore.FeatureStore
  const marken = yield* Annotations.Annotations
  yield* (yield* Registry.Registry).register(Bright)

  yield* TestMedia.poster("./media/poster.jpg", { seed: 7 })
  yield* catalog.putEntity({ id: "art-1", kind: "artwork" })
  const poster = yield* catalog.register({ entityId: "art-1", role: "poster", uri: "./media/poster.jpg" })

  // computed once per content hash, read from the store afterwards
  const fp = yield* Fingerprint.make({ assets: { image: poster.sha256 }, params: { size: 64 } })
  const mean = yield* store.getOrCompute(
    Brightness,
    "art-1",
    fp,
    Effect.map(Image.decode(poster, { resize: { width: 64, height: 64 }, dtype: "float32" }), (t) => {
      let sum = 0
      for (const x of t.data) sum += x
      return sum / t.data.length
    })
  )

  const op = yield* marken.start({
    type: "bright",
    version: "1.0",
    producer: { algorithm: "brightness", version: "1" }
  })
  yield* marken.upsert(op.id, [{ entity: "art-1", key: poster.sha256, payload: { mean } }])
  yield* marken.finish(op.id)
  const page = yield* marken.query({ entities: ["art-1"], type: "bright" })
  console.log(`art-1: brightness ${mean.toFixed(3)}; ${page.items.length} annotation(s)`)
})

Effect.runPromise(program.pipe(Effect.provide(App)))
