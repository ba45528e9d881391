// Jasper from a service that does not use Effect: plain JavaScript and Promises.
// Run: node promise.mjs
import { Jasper, JasperError, TestMedia } from "@org/jasper/promise"

const fixtures = await TestMedia.generate("./fixtures") // a poster, videos with cuts, subtitles, broken files
const jasper = await Jasper.open({ sqlite: "catalog.db", roots: ["./fixtures"], derivatives: "./derivatives" })
try {
  await jasper.putEntity({ id: "title-1", kind: "title", title: "The Test" })
  const poster = await jasper.register({ entityId: "title-1", role: "poster", uri: fixtures.poster })
  const tensor = await jasper.decodeImage(poster, { resize: { width: 224, height: 224 }, dtype: "float32" })
  const trailer = await jasper.register({ entityId: "title-1", role: "trailer", uri: fixtures.cuts })
  const frames = await jasper.frames(trailer, { fps: 1, width: 128 })
  const shots = await jasper.shots(trailer)
  console.log(`poster ${tensor.shape.join("x")}, ${frames.length} frames, ${shots.length} shots`)

  // failures are the tagged errors of the Effect API: instanceof works, _tag names them
  await jasper.decodeImage(fixtures.broken.truncatedJpeg).catch((error) => {
    if (!(error instanceof JasperError.DecodeError)) throw error
    console.log(`${error._tag}: ${error.message}`)
  })
} finally {
  await jasper.close()
}
