/**
 * Test media and a stored derivative: the first request decodes and stores the tensor, the second
 * reads the stored file.
 * Run: npx tsx derivatives.ts
 */
import { Effect, Layer } from "effect"
import { Catalog, Derivative, Jasper, TestMedia } from "@org/jasper"
import { SqliteStorage } from "@org/storage/sqlite"

const program = Effect.gen(function* () {
  // posters, videos with cuts, a tone, subtitles, broken files
  const fixtures = yield* TestMedia.generate("./fixtures")
  const catalog = yield* Catalog.Catalog
  yield* catalog.putEntity({ id: "art-1", kind: "artwork" })
  const poster = yield* catalog.register({ entityId: "art-1", role: "poster", uri: fixtures.poster })

  const derivatives = yield* Derivative.Derivatives
  const thumb = Derivative.imageTensor({ width: 224, height: 224 }) // "image-224x224-rgb", version 1
  const stored = yield* derivatives.ensure(poster, thumb) // decoded and stored once per content hash
  const tensor = yield* derivatives.get(poster, thumb) // later calls read the file
  console.log(`${thumb.name}@${thumb.version}: produced now: ${stored.produced}; ${tensor.data.length} values`)
})

const App = Jasper.layer({ roots: ["./fixtures"], derivatives: "./derivatives" }).pipe(
  Layer.provide(SqliteStorage.layer({ filename: "media.db" }))
)
Effect.runPromise(program.pipe(Effect.provide(App)))
