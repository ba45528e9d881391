/**
 * Makes its own media (a poster drawn with sharp, a trailer with three shots from ffmpeg), registers
 * both in a catalog on SQLite and decodes them: a tensor, frames at 1 fps, the shots.
 * Run: npx tsx register-and-decode.ts
 */
import * as fs from "node:fs"
import { Effect, Layer, Stream } from "effect"
import sharp from "sharp"
import { Catalog, Image, Jasper, TestMedia, Video } from "@org/jasper"
import { SqliteStorage } from "@org/storage/sqlite"

const program = Effect.gen(function* () {
  yield* Effect.promise(async () => {
    fs.mkdirSync("./media", { recursive: true })
    await sharp({ create: { width: 240, height: 360, channels: 3, background: "#2d5f8b" } })
      .jpeg()
      .toFile("./media/poster.jpg")
  })
  yield* TestMedia.video("./media/trailer.mp4", { segments: ["color=c=red", "testsrc", "color=c=blue"] })

  const catalog = yield* Catalog.Catalog
  yield* catalog.putEntity({ id: "title-1", kind: "title", title: "The Test" })
  yield* catalog.putEntity({ id: "art-1", kind: "artwork", parentId: "title-1" })
  // reads, hashes (sha256 while reading), probes and stores; the same bytes again return the same asset
  const poster = yield* catalog.register({ entityId: "art-1", role: "poster", uri: "./media/poster.jpg" })
  const tensor = yield* Image.decode(poster, { resize: { width: 224, height: 224 }, dtype: "float32", layout: "chw" })
  console.log(`poster ${poster.id} (sha256 ${poster.sha256.slice(0, 12)}...): tensor ${tensor.shape.join("x")}`)

  const trailer = yield* catalog.register({ entityId: "title-1", role: "trailer", uri: "./media/trailer.mp4" })
  yield* Video.frames(trailer, { fps: 1, width: 256 }).pipe(
    Stream.runForEach((f) => Effect.sync(() => console.log(`frame at ${f.ptsNs} ns: ${f.data.length} bytes`)))
  )
  const shots = yield* Video.shots(trailer) // [{ startNs, endNs }, ...]
  console.log(`${shots.length} shots:`, shots)
})

const App = Jasper.layer({ roots: ["./media"], derivatives: "./derivatives" }).pipe(
  Layer.provide(SqliteStorage.layer({ filename: "media.db" }))
)
Effect.runPromise(program.pipe(Effect.provide(App)))
