// The installed @org/jasper on a SQLite file: generates test media with TestMedia (sharp, ffmpeg), registers a poster
// and a video in the catalog, decodes the poster (sharp) into a normalized CHW tensor, pulls frames of the video at
// 1 fps and finds its shots (ffmpeg), and gets a tagged DecodeError for a truncated JPEG.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Stream } from "effect"
import { SqliteStorage } from "@org/storage/sqlite"
import { Catalog, Image, Jasper, TestMedia, Video } from "@org/jasper"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-jasper-"))
const media = path.join(dir, "media")

const program = Effect.gen(function* () {
  const fixtures = yield* TestMedia.generate(media)
  const catalog = yield* Catalog.Catalog
  yield* catalog.putEntity({ id: "title-1", kind: "title", title: "The Test" })
  yield* catalog.putEntity({ id: "art-1", kind: "artwork", parentId: "title-1" })
  const poster = yield* catalog.register({ entityId: "art-1", role: "poster", uri: fixtures.poster })
  const trailer = yield* catalog.register({ entityId: "title-1", role: "trailer", uri: fixtures.cuts })

  const tensor = yield* Image.decode(poster, { resize: { width: 224, height: 224 }, dtype: "float32", layout: "chw" })
  if (tensor.shape.join() !== "3,224,224" || tensor.data.length !== 3 * 224 * 224) {
    throw new Error(`poster decoded to shape ${tensor.shape}`)
  }
  let lo = Infinity
  let hi = -Infinity
  for (const x of tensor.data) {
    lo = Math.min(lo, x)
    hi = Math.max(hi, x)
  }
  if (!(lo >= 0 && hi <= 1 && hi > lo)) throw new Error(`poster values span [${lo}, ${hi}], expected within [0, 1]`)

  const frames = yield* Stream.runCollect(Video.frames(trailer, { fps: 1, width: 80 }))
  const list = Array.from(frames)
  if (list.length < 3) throw new Error(`1 fps over a 3 s video gave ${list.length} frames`)
  for (const f of list) {
    if (f.width !== 80 || f.data.length !== f.width * f.height * 3) {
      throw new Error(`frame ${f.index}: ${f.width}x${f.height} with ${f.data.length} bytes`)
    }
  }
  const shots = yield* Video.shots(trailer)
  if (shots.length !== 3) throw new Error(`the video has hard cuts at frames 30 and 60, found ${shots.length} shots`)

  const broken = yield* Effect.flip(Image.decode(fixtures.broken.truncatedJpeg))
  if (broken._tag !== "DecodeError") throw new Error(`a truncated JPEG gave ${broken._tag}`)
  return `poster -> float32 chw ${tensor.shape.join("x")} in [${lo.toFixed(2)}, ${hi.toFixed(2)}]; ${list.length} frames at 1 fps (${list[0].width}x${list[0].height} RGB); ${shots.length} shots; truncated JPEG -> DecodeError`
})

const App = Jasper.layer({ roots: [media], derivatives: path.join(dir, "derivatives") }).pipe(
  Layer.provide(SqliteStorage.layer({ filename: path.join(dir, "media.db") }))
)
console.log(`jasper: ${await Effect.runPromise(program.pipe(Effect.provide(App)))}`)
fs.rmSync(dir, { recursive: true, force: true })
