// The installed @org/jasper reports the ffmpeg/ffprobe pair it uses: both binaries run, have a version and a
// source, and sameBuild agrees with the versions; then a 1 s video made with that ffmpeg is decoded at 1 fps.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Stream } from "effect"
import { Jasper, Reader, TestMedia, Video } from "@org/jasper"

const d = await Effect.runPromise(Jasper.diagnostics)
for (const [name, b] of [
  ["ffmpeg", d.ffmpeg],
  ["ffprobe", d.ffprobe]
]) {
  if (!b.path || !fs.existsSync(b.path))
    throw new Error(`${name}: no binary at ${JSON.stringify(b.path)} (${d.notes.join("; ")})`)
  if (!["env", "path", "bundled"].includes(b.source)) throw new Error(`${name}: source ${b.source}`)
  if (!b.version) throw new Error(`${name} at ${b.path} reports no version (${d.notes.join("; ")})`)
}
if (d.sameBuild !== (d.ffmpeg.version === d.ffprobe.version))
  throw new Error(`sameBuild ${d.sameBuild} disagrees with the versions`)
if (!Array.isArray(d.notes)) throw new Error("notes is not a list")

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-jasper-diag-"))
const clip = path.join(dir, "clip.mp4")
const frames = await Effect.runPromise(
  Effect.gen(function* () {
    yield* TestMedia.video(clip, { width: 64, height: 36, rate: "25/1", segments: ["testsrc"], segmentFrames: 50 })
    return yield* Stream.runCollect(Video.frames(clip, { fps: 1 }))
  }).pipe(Effect.provide(Reader.layer({ roots: [dir] })))
)
fs.rmSync(dir, { recursive: true, force: true })
if (frames.length !== 2) throw new Error(`1 fps over 2 s gave ${frames.length} frames`)
console.log(
  `jasper diagnostics: ffmpeg ${d.ffmpeg.version} (${d.ffmpeg.source}), ffprobe ${d.ffprobe.version} (${d.ffprobe.source}), same build: ${d.sameBuild}${d.notes.length ? `; notes: ${d.notes.join("; ")}` : ""}; ${frames.length} frames at 1 fps`
)
