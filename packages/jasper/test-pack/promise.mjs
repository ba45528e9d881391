// The Promise entry (@org/jasper/promise) from plain JavaScript: generates test media, opens Jasper on a SQLite
// file, registers a poster, a video and subtitles, decodes them (tensor, frames, shots, cues), stores a derivative,
// and checks that every rejection is the tagged error class itself (instanceof works, _tag is set; never a
// FiberFailure): AssetNotFoundError, DecodeError, ReadError (outside the roots), EntityNotFoundError, and
// StorageConfigError for bad storage options.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { StorageError } from "@org/storage"
import { Derivative, Jasper, JasperError, TestMedia } from "@org/jasper/promise"

const rejection = async (promise, what) => {
  try {
    const value = await promise
    throw new Error(`${what} resolved with ${JSON.stringify(value)?.slice(0, 200)} instead of rejecting`)
  } catch (error) {
    return error
  }
}
const expectTagged = async (promise, Class, what) => {
  const error = await rejection(promise, what)
  // a bundler may rename a class (`_StorageError`); its tag is the name it was declared with
  const tag = Class.name.replace(/^_+/, "")
  if (!(error instanceof Class) || error._tag !== tag || String(error.name).includes("FiberFailure")) {
    throw new Error(`${what}: expected ${tag}, got ${error?.constructor?.name} ${error?._tag} ${error}`)
  }
  return error
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-jasper-promise-"))
const media = path.join(dir, "media")
try {
  const fixtures = await TestMedia.generate(media)
  const jasper = await Jasper.open({
    sqlite: path.join(dir, "media.db"),
    roots: [media],
    derivatives: path.join(dir, "derivatives")
  })
  try {
    await jasper.putEntity({ id: "title-1", kind: "title", title: "The Test" })
    await jasper.putEntity({ id: "art-1", kind: "artwork", parentId: "title-1" })
    const poster = await jasper.register({ entityId: "art-1", role: "poster", uri: fixtures.poster })
    const again = await jasper.register({ entityId: "art-1", role: "poster", uri: fixtures.poster })
    if (again.id !== poster.id) throw new Error("the same bytes registered twice gave two assets")
    if ((await jasper.get(poster.id)).sha256 !== poster.sha256) throw new Error("get gave another asset")
    const tensor = await jasper.decodeImage(poster, {
      resize: { width: 64, height: 64 },
      dtype: "float32",
      layout: "chw"
    })
    if (tensor.shape.join() !== "3,64,64") throw new Error(`poster decoded to shape ${tensor.shape}`)

    const trailer = await jasper.register({ entityId: "title-1", role: "trailer", uri: fixtures.cuts })
    const frames = await jasper.frames(trailer, { fps: 1, width: 80 })
    if (frames.length < 3 || frames[0].width !== 80) throw new Error(`1 fps gave ${frames.length} frames`)
    const shots = await jasper.shots(trailer)
    if (shots.length !== 3) throw new Error(`expected 3 shots, found ${shots.length}`)
    const cues = await jasper.subtitles(fixtures.srt)
    if (cues.length === 0) throw new Error("no cues in the SRT fixture")
    const thumb = Derivative.imageTensor({ width: 32, height: 32 })
    const first = await jasper.derivative(poster, thumb)
    const second = await jasper.derivative(poster.id, thumb)
    if (first.data.length !== second.data.length) throw new Error("the stored derivative differs")
    const listed = await jasper.list({ entityId: "art-1" })
    const results = await jasper.registerAll([
      { entityId: "art-1", role: "still", uri: fixtures.poster },
      { entityId: "art-1", role: "broken", uri: fixtures.broken.truncatedJpeg }
    ])
    if (results[0]._tag !== undefined || !(results[1] instanceof JasperError.DecodeError)) {
      throw new Error(`registerAll: ${results.map((r) => r._tag ?? "asset").join(", ")}`)
    }

    // rejections are the tagged classes themselves
    const missing = await expectTagged(jasper.get("no-such-asset"), JasperError.AssetNotFoundError, "an unknown asset")
    await expectTagged(jasper.decodeImage(fixtures.broken.truncatedJpeg), JasperError.DecodeError, "a truncated JPEG")
    await expectTagged(
      jasper.register({ entityId: "art-1", role: "x", uri: path.join(os.tmpdir(), "elsewhere.jpg") }),
      JasperError.ReadError,
      "a file outside the roots"
    )
    await expectTagged(
      jasper.putEntity({ id: "art-2", kind: "artwork", parentId: "no-title" }),
      JasperError.EntityNotFoundError,
      "an unknown parent"
    )
    console.log(
      `jasper/promise: ${listed.length} asset(s) of art-1; poster -> ${tensor.shape.join("x")}; ${frames.length} frames; ${shots.length} shots; ${cues.length} cues; derivative stored once; rejects with ${missing._tag}, DecodeError, ReadError, EntityNotFoundError`
    )
  } finally {
    await jasper.close()
  }
  await expectTagged(
    Jasper.open({ sqlite: path.join(dir, "x.db"), postgres: "postgres://x", derivatives: dir }),
    StorageError.StorageConfigError,
    "both sqlite and postgres"
  )
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
