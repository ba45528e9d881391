import { describe, expect, layer } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream } from "effect"
import * as fs from "node:fs"
import sharp from "sharp"
import { spawn } from "node:child_process"
import { Audio, Image, Jasper, Probe, Reader, Subtitles, TestMedia, Video } from "@org/jasper"
import { childDecoders, Fixtures, withReader, zeroCrossings } from "./fixtures.js"

const memory = new Reader.MemoryStore()

/** The build under test, in the suite's name (CI runs this file on Debian's ffmpeg and on the bundled fallback). */
const build = await Effect.runPromise(Jasper.diagnostics)
const buildName = `ffmpeg ${build.ffmpeg.version ?? "?"} (${build.ffmpeg.source}), ffprobe ${build.ffprobe.version ?? "?"}`

/** The mean RGB of a packed RGB frame. */
const mean = (data: Uint8Array) => {
  const m = [0, 0, 0]
  for (let i = 0; i < data.length; i += 3) for (let c = 0; c < 3; c++) m[c]! += data[i + c]!
  return m.map((x) => x / (data.length / 3))
}
const isRed = (data: Uint8Array) => {
  const [r, g, b] = mean(data)
  return r! > 200 && g! < 40 && b! < 40
}
const isBlue = (data: Uint8Array) => {
  const [r, g, b] = mean(data)
  return b! > 200 && r! < 40 && g! < 40
}
/** The rows `[from, to)` of a packed RGB picture `width` wide. */
const rows = (data: Uint8Array, width: number, from: number, to: number) =>
  data.subarray(from * width * 3, to * width * 3)
/** The columns `[from, to)` of a packed RGB picture. */
const columns = (data: Uint8Array, width: number, height: number, from: number, to: number) => {
  const out: Array<number> = []
  for (let y = 0; y < height; y++) out.push(...data.subarray((y * width + from) * 3, (y * width + to) * 3))
  return Uint8Array.from(out)
}
const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)

layer(withReader(memory), { timeout: 60_000 })(`decoders on generated fixtures, ${buildName}`, (it) => {
  describe("Image", () => {
    it.effect("decodes to Uint8 HWC and normalized Float32 CHW that agree pixel for pixel", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const hwc = yield* Image.decode(fx.poster)
        expect(hwc.shape).toEqual([360, 240, 3])
        expect(hwc.data).toBeInstanceOf(Uint8Array)
        const chw = yield* Image.decode(fx.poster, { dtype: "float32", layout: "chw" })
        expect(chw.shape).toEqual([3, 360, 240])
        expect(chw.data).toBeInstanceOf(Float32Array)
        const n = 360 * 240
        for (const p of [0, 1234, n - 1]) {
          for (let c = 0; c < 3; c++) expect(chw.data[c * n + p]).toBeCloseTo(hwc.data[p * 3 + c]! / 255, 6)
        }
        const { data: raw } = yield* Effect.promise(() => sharp(fx.poster).raw().toBuffer({ resolveWithObject: true }))
        expect(Buffer.from(hwc.data).equals(raw)).toBe(true)
      })
    )

    it.effect("resizes with fit, crops first, and keeps or adds alpha", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const cover = yield* Image.decode(fx.poster, { resize: { width: 224, height: 224 } })
        expect(cover.shape).toEqual([224, 224, 3])
        // contain letterboxes a tall poster: the left and right columns are the background
        const contain = yield* Image.decode(fx.poster, {
          resize: { width: 224, height: 224, fit: "contain", background: { r: 0, g: 255, b: 0 } }
        })
        expect(Array.from(contain.data.subarray(0, 3))).toEqual([0, 255, 0])
        const inside = yield* Image.decode(fx.poster, { resize: { width: 100, height: 100, fit: "inside" } })
        expect([inside.width, inside.height]).toEqual([67, 100])
        const crop = yield* Image.decode(fx.poster, { crop: { left: 10, top: 20, width: 50, height: 40 } })
        expect(crop.shape).toEqual([40, 50, 3])
        const rgba = yield* Image.decode(fx.logo, { channels: 4 })
        expect(rgba.shape).toEqual([48, 64, 4])
        expect(Array.from(rgba.data).some((v, i) => i % 4 === 3 && v === 0)).toBe(true)
        const bad = yield* Effect.flip(Image.decode(fx.poster, { resize: { width: 0, height: 10 } }))
        expect(bad._tag).toBe("InvalidInputError")
      })
    )

    it.effect("decodes from memory bytes and from a pixel limit that fits", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const uri = memory.put("poster.jpg", fs.readFileSync(fx.poster))
        const t = yield* Image.decode(uri, { resize: { width: 32, height: 32 }, pixelLimit: 240 * 360 })
        expect(t.shape).toEqual([32, 32, 3])
      })
    )

    it.effect("refuses a decompression bomb before decoding, naming the URI and the size", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const error = yield* Effect.flip(Image.decode(fx.broken.pixelBomb))
        expect(error._tag).toBe("PixelLimitError")
        if (error._tag !== "PixelLimitError") return
        expect(error).toMatchObject({ width: 40_000, height: 40_000, limit: Image.DEFAULT_PIXEL_LIMIT })
        expect(error.uri).toContain("broken-bomb.png")
        const small = yield* Effect.flip(Image.decode(fx.poster, { pixelLimit: 1000 }))
        expect(small._tag).toBe("PixelLimitError")
      })
    )

    it.effect("fails truncated, empty and non-image files with a DecodeError naming the source", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        for (const [file, hint] of [
          [fx.broken.truncatedJpeg, "premature end"],
          [fx.broken.empty, ""],
          [fx.broken.textAsMp4, ""]
        ] as const) {
          const error = yield* Effect.flip(Image.decode(file))
          expect(error._tag).toBe("DecodeError")
          expect(error.message).toContain(file.split("/").pop())
          if (hint) expect(error.message.toLowerCase()).toContain(hint)
        }
        const asset = yield* Effect.flip(Image.decode({ uri: fx.broken.truncatedJpeg, id: "asset_x" }))
        expect(asset).toMatchObject({ _tag: "DecodeError", assetId: "asset_x" })
      })
    )
  })

  describe("Video", () => {
    it.effect("streams every frame with exact timestamps at 30000/1001", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const frames = Chunk.toArray(yield* Stream.runCollect(Video.frames(fx.cuts)))
        expect(frames.length).toBe(90)
        expect(frames[30]!.ptsNs).toBe(1_001_000_000)
        expect(frames[89]!.ptsNs).toBe(2_969_633_334)
        expect(frames.every((f, i) => f.sourceFrame === i && f.data.length === 160 * 90 * 3)).toBe(true)
        expect(isRed(frames[29]!.data)).toBe(true)
        expect(isRed(frames[30]!.data)).toBe(false)
        expect(isBlue(frames[60]!.data)).toBe(true)
      })
    )

    it.effect("samples at a rate: the frames showing at k / fps, scaled with the aspect ratio kept", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const frames = Chunk.toArray(yield* Stream.runCollect(Video.frames(fx.cuts, { fps: 1, width: 80 })))
        expect(frames.map((f) => f.sourceFrame)).toEqual([0, 29, 59, 89])
        expect(frames.map((f) => [f.width, f.height])).toEqual(Array(4).fill([80, 46]))
        expect(isRed(frames[1]!.data)).toBe(true) // t = 1 s still shows the red segment (it ends at 1.001 s)
        expect(isBlue(frames[3]!.data)).toBe(true)
        const half = yield* Stream.runCollect(Video.frames(fx.ntsc24, { fps: { num: 1, den: 2 } }))
        // samples at 0 s and 2 s; the 48 frames of 24000/1001 last 2.002 s, so 2 s shows frame 47
        expect(Chunk.toArray(half).map((f) => f.sourceFrame)).toEqual([0, 47])
        const many = yield* Stream.runCollect(Video.frames(fx.ntsc24, { fps: 10 }))
        expect(many.length).toBe(21) // t = 0, 0.1, ..., 2.0 s within 2.002 s
      })
    )

    it.effect(
      "sparse sampling (fps, at) gives the frames of a full decode and of raw ffmpeg -vf fps=1:round=up, bit for bit",
      () =>
        Effect.gen(function* () {
          const fx = yield* Fixtures
          // B-frames (veryfast) and a keyframe every 10 frames, as streaming renditions are encoded
          const file = `${fx.dir}/sparse-gop10.mp4`
          yield* TestMedia.video(file, {
            width: 96,
            height: 64,
            rate: "25/1",
            segments: ["testsrc", "testsrc2", "smptebars"],
            segmentFrames: 25,
            keyframeInterval: 10
          }).pipe(Effect.orDie)
          const every = yield* collect(Video.frames(file, { concurrency: 1 }))
          expect(every.length).toBe(75)
          const hex = (d: Uint8Array) => Buffer.from(d).toString("base64")
          for (const concurrency of [1, 2]) {
            const sampled = yield* collect(Video.frames(file, { fps: 3, concurrency, sparse: true }))
            expect(sampled.map((f) => f.sourceFrame)).toEqual([0, 8, 16, 25, 33, 41, 50, 58, 66])
            for (const f of sampled) expect(hex(f.data)).toBe(hex(every[f.sourceFrame]!.data))
            const at = yield* collect(
              Video.frames(file, { at: [2_960_000_000, 400_000_000, 1_000_000_000], concurrency, sparse: true })
            )
            expect(at.map((f) => f.sourceFrame)).toEqual([74, 10, 25])
            for (const f of at) expect(hex(f.data)).toBe(hex(every[f.sourceFrame]!.data))
          }
          // a name the concat list has to quote, and a file with a sound track (packets of two streams)
          const quoted = `${fx.dir}/it's sparse.mp4`
          fs.copyFileSync(file, quoted)
          const fromQuoted = yield* collect(Video.frames(quoted, { fps: 3, concurrency: 2, sparse: true }))
          expect(fromQuoted.map((f) => hex(f.data))).toEqual(
            [0, 8, 16, 25, 33, 41, 50, 58, 66].map((i) => hex(every[i]!.data))
          )
          const cutsEvery = yield* collect(Video.frames(fx.cuts, { concurrency: 1 }))
          const cutsSampled = yield* collect(Video.frames(fx.cuts, { fps: 2, concurrency: 2, sparse: true }))
          expect(cutsSampled.length).toBeGreaterThan(4)
          for (const f of cutsSampled) expect(hex(f.data)).toBe(hex(cutsEvery[f.sourceFrame]!.data))
          // the raw fps filter rounding up picks the frame showing at k s (round=near, its default, does not)
          const perSecond = yield* collect(Video.frames(file, { fps: 1, sparse: true }))
          const raw = yield* Effect.promise(
            () =>
              new Promise<Buffer>((resolve, reject) => {
                const child = spawn(build.ffmpeg.path, [
                  ...["-nostdin", "-v", "error", "-i", file, "-an", "-vf", "fps=1:round=up"],
                  ...["-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
                ])
                const chunks: Array<Buffer> = []
                child.stdout.on("data", (c: Buffer) => chunks.push(c))
                child.on("error", reject)
                child.on("close", () => resolve(Buffer.concat(chunks)))
              })
          )
          expect(raw.length).toBe(perSecond.length * 96 * 64 * 3)
          perSecond.forEach((f, i) =>
            expect(hex(f.data)).toBe(hex(raw.subarray(i * 96 * 64 * 3, (i + 1) * 96 * 64 * 3)))
          )
        }),
      240_000
    )

    it.effect(
      "many samples: keyframe runs dealt to lanes of lists decode side by side, in order; over 100 samples in one select",
      () =>
        Effect.gen(function* () {
          const fx = yield* Fixtures
          // a keyframe every 2 frames and 150 samples 2 frames apart: 150 runs, more than the 48 of
          // one list in every lane (1, 2 or 3 lanes)
          const file = `${fx.dir}/sparse-many-runs.mp4`
          yield* TestMedia.video(file, {
            width: 64,
            height: 48,
            rate: "25/1",
            segments: ["testsrc", "testsrc2", "smptebars"],
            segmentFrames: 100,
            keyframeInterval: 2
          }).pipe(Effect.orDie)
          const every = yield* collect(Video.frames(file, { concurrency: 1 }))
          expect(every.length).toBe(300)
          const hex = (d: Uint8Array) => Buffer.from(d).toString("base64")
          const wanted = Array.from({ length: 150 }, (_, k) => 2 * k + 1)
          const times = wanted.map((i) => i * 40_000_000 + 20_000_000)
          for (const concurrency of [1, 2, 3]) {
            const at = yield* collect(Video.frames(file, { at: times, sparse: true, concurrency }))
            expect(at.map((f) => f.sourceFrame)).toEqual(wanted)
            for (const f of at) expect(hex(f.data)).toBe(hex(every[f.sourceFrame]!.data))
          }
          // more samples than ffmpeg's expression parser takes in one flat sum (about 100), without
          // sparse decoding: every other frame of one segment
          for (const concurrency of [1, 2]) {
            const half = yield* collect(Video.frames(file, { fps: 12.5, sparse: false, concurrency }))
            expect(half.map((f) => f.sourceFrame)).toEqual(Array.from({ length: 150 }, (_, k) => 2 * k))
            for (const f of half) expect(hex(f.data)).toBe(hex(every[f.sourceFrame]!.data))
          }
          // reading a few frames and stopping ends every lane's ffmpeg
          const few = yield* collect(Stream.take(Video.frames(file, { at: times, sparse: true, concurrency: 2 }), 5))
          expect(few.map((f) => f.sourceFrame)).toEqual(wanted.slice(0, 5))
        }),
      240_000
    )

    it.effect("decodes the frames showing at given timestamps and within a range", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const at = Chunk.toArray(
          yield* Stream.runCollect(Video.frames(fx.cuts, { at: [0, 1_000_000_000, 1_001_000_000, 2_500_000_000] }))
        )
        expect(at.map((f) => f.sourceFrame)).toEqual([0, 29, 30, 74])
        expect(at.map((f) => f.ptsNs)).toEqual([0, 967_633_334, 1_001_000_000, 2_469_133_334])
        expect(isRed(at[1]!.data)).toBe(true)
        expect(isRed(at[2]!.data)).toBe(false)
        const ranged = Chunk.toArray(
          yield* Stream.runCollect(Video.frames(fx.cuts, { range: { startNs: 2_002_000_000, endNs: 2_502_000_000 } }))
        )
        expect(ranged[0]!.sourceFrame).toBe(60)
        expect(isBlue(ranged[0]!.data)).toBe(true)
        expect(ranged.length).toBeGreaterThanOrEqual(14)
        expect(ranged.length).toBeLessThanOrEqual(16)
        const late = yield* Effect.flip(Stream.runCollect(Video.frames(fx.cuts, { at: [60_000_000_000] })))
        expect(late._tag).toBe("DecodeError")
      })
    )

    it.effect("finds the hard cuts as shot ranges snapped to frames", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const shots = yield* Video.shots(fx.cuts)
        expect(shots).toEqual([
          { startNs: 0, endNs: 1_001_000_000 },
          { startNs: 1_001_000_000, endNs: 2_002_000_000 },
          { startNs: 2_002_000_000, endNs: 3_003_000_000 }
        ])
        const one = yield* Video.shots(fx.ntsc24)
        expect(one).toEqual([{ startNs: 0, endNs: 2_002_000_000 }])
      })
    )

    it.effect("kills ffmpeg when a frame stream is interrupted or ends early", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        expect(childDecoders()).toEqual([])
        const two = yield* Stream.runCollect(Stream.take(Video.frames(fx.cuts), 2))
        expect(two.length).toBe(2)
        expect(childDecoders()).toEqual([])
        // a consumer that stops pulling: ffmpeg blocks on the pipe (back-pressure) until interrupted
        const fiber = yield* Effect.fork(Stream.runForEach(Video.frames(fx.cuts), () => Effect.never))
        let seen: Array<number> = []
        for (let i = 0; i < 100 && seen.length === 0; i++) {
          yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
          seen = childDecoders(/^ffmpeg$/)
        }
        expect(seen.length).toBe(1)
        // unthrottled, this ffmpeg would be done in a few ms; it is still there, blocked on the full pipe
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 500)))
        expect(childDecoders()).toEqual(seen)
        yield* Fiber.interrupt(fiber)
        expect(childDecoders()).toEqual([])
      })
    )

    it.effect("fails broken videos with tagged errors naming the source", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const cases = [
          [fx.broken.truncatedMp4, "DecodeError", "moov atom not found"],
          [fx.broken.empty, "DecodeError", ""],
          [fx.broken.textAsMp4, "DecodeError", "Invalid data"],
          [fx.broken.unknownCodec, "UnsupportedMediaError", "unsupported video codec"]
        ] as const
        for (const [file, tag, text] of cases) {
          const error = yield* Effect.flip(Stream.runCollect(Video.frames(file)))
          expect(error._tag).toBe(tag)
          expect(error.message).toContain(file.split("/").pop())
          expect(error.message).toContain(text)
          const shots = yield* Effect.flip(Video.shots(file))
          expect(shots._tag).toBe(tag)
        }
        const options = yield* Effect.flip(Stream.runCollect(Video.frames(fx.cuts, { fps: 1, at: [0] })))
        expect(options._tag).toBe("InvalidInputError")
      })
    )
  })

  describe("real-world time and geometry", () => {
    it.effect("a video with a 90 degree display matrix: stored size, rotation, display size, frames upright", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const meta = yield* Probe.video(fx.rotated, { uri: fx.rotated })
        expect(meta).toMatchObject({ width: 320, height: 240, rotation: 90, displayWidth: 240, displayHeight: 320 })
        const [upright] = yield* collect(Video.frames(fx.rotated, { at: [0] }))
        expect([upright!.width, upright!.height, upright!.data.length]).toEqual([240, 320, 240 * 320 * 3])
        // the left (blue) half of the stored picture is on top once turned clockwise
        expect(isBlue(rows(upright!.data, 240, 0, 150))).toBe(true)
        expect(isRed(rows(upright!.data, 240, 170, 320))).toBe(true)
        const [scaled] = yield* collect(Video.frames(fx.rotated, { at: [0], width: 120 }))
        expect([scaled!.width, scaled!.height, scaled!.data.length]).toEqual([120, 160, 120 * 160 * 3])
        expect(isBlue(rows(scaled!.data, 120, 0, 70))).toBe(true)
        const stored = yield* collect(Video.frames(fx.rotated, { orientation: "stored" }))
        expect(stored.length).toBe(10)
        expect([stored[0]!.width, stored[0]!.height]).toEqual([320, 240])
        expect(isBlue(columns(stored[0]!.data, 320, 240, 0, 150))).toBe(true)
        expect(isRed(columns(stored[0]!.data, 320, 240, 170, 320))).toBe(true)
      })
    )

    it.effect("a bare path is probed once while the file is unchanged, and again once it changes", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const file = `${fx.dir}/probe-cache.mp4`
        fs.copyFileSync(fx.ntsc24, file)
        const first = yield* Probe.video(file, { uri: file })
        expect(first.frameCount).toBe(48)
        // the same object: answered from the cache, no second ffprobe
        expect(yield* Probe.video(file, { uri: file })).toBe(first)
        expect((yield* collect(Video.frames(file))).length).toBe(48)
        fs.copyFileSync(fx.cuts, file)
        const changed = yield* Probe.video(file, { uri: file })
        expect(changed).not.toBe(first)
        expect(changed.frameCount).toBe(90)
        expect((yield* collect(Video.frames(file))).length).toBe(90)
      })
    )

    it.effect("a JPEG with EXIF orientation 6: the probe's display size is what decode returns", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const meta = yield* Probe.probe(fx.exifRotated, "image", { uri: fx.exifRotated })
        expect(meta).toMatchObject({ width: 400, height: 300, orientation: 6, displayWidth: 300, displayHeight: 400 })
        const shown = yield* Image.decode(fx.exifRotated)
        expect(shown.shape).toEqual([400, 300, 3])
        expect(isBlue(rows(shown.data as Uint8Array, 300, 0, 190))).toBe(true)
        const raw = yield* Image.decode(fx.exifRotated, { autoOrient: false })
        expect(raw.shape).toEqual([300, 400, 3])
        const plain = yield* Probe.probe(fx.poster, "image", { uri: fx.poster })
        expect(plain).toMatchObject({ width: 240, height: 360, displayWidth: 240, displayHeight: 360 })
      })
    )

    it.effect("variable frame rate: real timestamps for every frame, fps, at, ranges and shots", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const meta = yield* Probe.video(fx.vfr, { uri: fx.vfr })
        expect(meta).toMatchObject({ constantRate: false, frameCount: 70, startNs: 0 })
        expect(meta.endNs).toBeGreaterThanOrEqual(2_990_000_000)
        const all = yield* collect(Video.frames(fx.vfr))
        expect(all.length).toBe(70)
        expect(all.slice(0, 11).map((f) => f.ptsNs)).toEqual(Array.from({ length: 11 }, (_, i) => i * 100_000_000))
        expect(Math.abs(all[11]!.ptsNs - 1_033_333_333)).toBeLessThanOrEqual(1)
        expect(Math.abs(all[69]!.ptsNs - 2_966_666_667)).toBeLessThanOrEqual(1)
        expect(isRed(all[9]!.data) && isBlue(all[10]!.data)).toBe(true)
        const sampled = yield* collect(Video.frames(fx.vfr, { fps: 1 }))
        expect(sampled.slice(0, 3).map((f) => [f.sourceFrame, f.ptsNs])).toEqual([
          [0, 0],
          [10, 1_000_000_000],
          [40, 2_000_000_000]
        ])
        // the 2018 muxer gives the last frame a longer duration, so 3 s is still inside the video there
        expect(sampled.map((f) => f.sourceFrame).slice(3)).toEqual(meta.endNs! > 3_000_000_000 ? [69] : [])
        const at = yield* collect(Video.frames(fx.vfr, { at: [950_000_000, 1_500_000_000] }))
        expect(at.map((f) => [f.sourceFrame, f.ptsNs])).toEqual([
          [9, 900_000_000],
          [25, 1_500_000_000]
        ])
        expect(isRed(at[0]!.data) && isBlue(at[1]!.data)).toBe(true)
        const ranged = yield* collect(Video.frames(fx.vfr, { range: { startNs: 500_000_000, endNs: 1_100_000_000 } }))
        expect(ranged.map((f) => f.sourceFrame)).toEqual([5, 6, 7, 8, 9, 10, 11, 12])
        ranged.forEach((f) => expect(Buffer.from(f.data).equals(Buffer.from(all[f.sourceFrame]!.data))).toBe(true))
        const shots = yield* Video.shots(fx.vfr)
        expect(shots).toEqual([
          { startNs: 0, endNs: 1_000_000_000 },
          { startNs: 1_000_000_000, endNs: meta.endNs }
        ])
      })
    )

    it.effect(
      "a stream that starts at 10 s: frames on the presentation timeline, start time, time base, timecode",
      () =>
        Effect.gen(function* () {
          const fx = yield* Fixtures
          const meta = yield* Probe.video(fx.offset, { uri: fx.offset })
          expect(meta).toMatchObject({
            startNs: 10_000_000_000,
            containerStartNs: 10_000_000_000,
            timeBase: { num: 1, den: 12800 },
            constantRate: true,
            frameCount: 50,
            endNs: 12_000_000_000,
            timecode: "01:00:00:00"
          })
          const all = yield* collect(Video.frames(fx.offset))
          expect(all.length).toBe(50)
          expect([all[0]!.ptsNs, all[49]!.ptsNs]).toEqual([10_000_000_000, 11_960_000_000])
          const at = yield* collect(Video.frames(fx.offset, { at: [10_500_000_000, 10_000_000_000] }))
          expect(at.map((f) => f.sourceFrame)).toEqual([12, 0])
          expect(Buffer.from(at[0]!.data).equals(Buffer.from(all[12]!.data))).toBe(true)
          const before = yield* Effect.flip(Stream.runCollect(Video.frames(fx.offset, { at: [5_000_000_000] })))
          expect(before.message).toContain("no frame at 5.000000000 s")
          const ranged = yield* collect(
            Video.frames(fx.offset, { range: { startNs: 11_000_000_000, endNs: 11_200_000_000 } })
          )
          expect(ranged.map((f) => f.sourceFrame)).toEqual([25, 26, 27, 28, 29])
          const sampled = yield* collect(Video.frames(fx.offset, { fps: 1 }))
          expect(sampled.map((f) => f.ptsNs)).toEqual([10_000_000_000, 11_000_000_000])
          const shots = yield* Video.shots(fx.offset)
          expect(shots[0]!.startNs).toBe(10_000_000_000)
          expect(shots[shots.length - 1]!.endNs).toBe(12_000_000_000)
        })
    )

    it.effect("an MKV whose video starts 25 ms in: a range holds every frame showing in it, exactly", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const meta = yield* Probe.video(fx.lagged, { uri: fx.lagged })
        expect(meta).toMatchObject({ startNs: 25_000_000, containerStartNs: 0, timeBase: { num: 1, den: 1000 } })
        const all = yield* collect(Video.frames(fx.lagged))
        expect(all.length).toBe(75)
        expect(all[0]!.ptsNs).toBe(25_000_000)
        const ranged = yield* collect(
          Video.frames(fx.lagged, { range: { startNs: 1_000_000_000, endNs: 1_500_000_000 } })
        )
        // 0.985 s (already showing at 1.0 s) to 1.465 s
        expect(ranged.length).toBe(13)
        expect([ranged[0]!.ptsNs, ranged[12]!.ptsNs]).toEqual([985_000_000, 1_465_000_000])
        ranged.forEach((f) => expect(Buffer.from(f.data).equals(Buffer.from(all[f.sourceFrame]!.data))).toBe(true))
        // the sound track is on the same timeline: it starts at 0, and a range cuts it exactly
        const sound = yield* collect(
          Audio.pcm(fx.lagged, { sampleRate: 8000, range: { startNs: 1_000_000_000, endNs: 1_500_000_000 } })
        )
        expect(sound[0]!.startNs).toBe(1_000_000_000)
        expect(sound.reduce((n, c) => n + c.frames, 0)).toBe(4000)
        const at = yield* collect(Video.frames(fx.lagged, { at: [10_000_000, 2_000_000_000] }))
        expect(at.length).toBe(1)
      }).pipe(
        Effect.flip,
        Effect.map((e) => expect(e.message).toContain("no frame at 0.010000000 s"))
      )
    )

    it.effect("GIF pages, one empty-file message, subtitle markup kept raw and given plain", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const meta = yield* Probe.probe(fx.animated, "image", { uri: fx.animated })
        expect(meta).toMatchObject({ format: "gif", pages: 3 })
        const first = yield* Image.decode(fx.animated)
        const last = yield* Image.decode(fx.animated, { page: 2 })
        expect(isRed(first.data as Uint8Array)).toBe(true)
        expect(isBlue(last.data as Uint8Array)).toBe(true)
        const decodeEmpty = yield* Effect.flip(Image.decode(fx.broken.empty))
        const probeEmpty = yield* Effect.flip(Probe.probe(fx.broken.empty, "image", { uri: fx.broken.empty }))
        const videoEmpty = yield* Effect.flip(Stream.runCollect(Video.frames(fx.broken.empty)))
        for (const e of [decodeEmpty, probeEmpty, videoEmpty]) expect(e.message).toContain("empty file (0 bytes)")
        const cues = yield* Subtitles.decode(fx.markup)
        expect(cues.map((c) => c.text)).toEqual([
          "<v Narrator>It was <i>dark</i> &amp; stormy</v>",
          "<c.loud>Thunder</c> &lt;boom&gt;"
        ])
        expect(cues.map((c) => c.plain)).toEqual(["It was dark & stormy", "Thunder <boom>"])
      })
    )
  })

  describe("Audio", () => {
    it.effect("decodes per channel at a chosen rate in chunks: 440 Hz left, 880 Hz right", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const chunks = Chunk.toArray(
          yield* Stream.runCollect(Audio.pcm(fx.tone, { sampleRate: 16_000, mono: false, chunkFrames: 4000 }))
        )
        expect(chunks.map((c) => [c.index, c.startNs, c.frames, c.channels.length])).toEqual([
          [0, 0, 4000, 2],
          [1, 250_000_000, 4000, 2],
          [2, 500_000_000, 4000, 2],
          [3, 750_000_000, 4000, 2]
        ])
        const left = new Float32Array(16_000)
        const right = new Float32Array(16_000)
        chunks.forEach((c, i) => {
          left.set(c.channels[0]!, i * 4000)
          right.set(c.channels[1]!, i * 4000)
        })
        expect(Math.abs(zeroCrossings(left) - 880)).toBeLessThan(4)
        expect(Math.abs(zeroCrossings(right) - 1760)).toBeLessThan(4)
        expect(Math.max(...left)).toBeLessThanOrEqual(1)
      })
    )

    it.effect("mixes down to mono with a short last chunk, and reads a video's sound track", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const mono = Chunk.toArray(
          yield* Stream.runCollect(Audio.pcm(fx.tone, { sampleRate: 8000, chunkFrames: 3000 }))
        )
        expect(mono.map((c) => c.frames)).toEqual([3000, 3000, 2000])
        expect(mono.every((c) => c.channels.length === 1)).toBe(true)
        const track = Chunk.toArray(yield* Stream.runCollect(Audio.pcm(fx.cuts, { sampleRate: 8000 })))
        const samples = track.reduce((n, c) => n + c.frames, 0)
        expect(Math.abs(samples - 3.003 * 8000)).toBeLessThan(400)
        const none = yield* Effect.flip(Stream.runCollect(Audio.pcm(fx.ntsc24)))
        expect(none).toMatchObject({ _tag: "DecodeError", media: "audio" })
        expect(none.message).toContain("no audio stream")
        for (const file of [fx.broken.empty, fx.broken.textAsMp4, fx.broken.truncatedMp4]) {
          const error = yield* Effect.flip(Stream.runCollect(Audio.pcm(file)))
          expect(error._tag).toBe("DecodeError")
          expect(error.message).toContain(file.split("/").pop())
        }
      })
    )
  })

  describe("Subtitles", () => {
    it.effect("parses SRT and WebVTT into the same cues", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const srt = yield* Subtitles.decode(fx.srt)
        const vtt = yield* Subtitles.decode(fx.vtt)
        const strip = (cs: ReadonlyArray<Subtitles.Cue>) =>
          cs.map(({ endNs, startNs, text }) => ({ startNs, endNs, text }))
        expect(strip(srt)).toEqual(strip(vtt))
        expect(strip(srt)).toEqual([
          { startNs: 0, endNs: 1_001_000_000, text: "Red." },
          { startNs: 1_001_000_000, endNs: 2_002_000_000, text: "A test pattern,\non two lines." },
          { startNs: 2_002_000_000, endNs: 3_003_000_000, text: "Blue." }
        ])
        expect(vtt.map((c) => c.id)).toEqual(["red", "pattern", undefined])
        const fromMemory = yield* Subtitles.decode(memory.put("s.vtt", "WEBVTT\n\n01:02:03.004 --> 01:02:04.000\nhi\n"))
        expect(fromMemory[0]!.startNs).toBe(((1 * 60 + 2) * 60 + 3) * 1e9 + 4e6)
      })
    )

    it.effect("fails malformed, empty and non-UTF-8 subtitles with the URI and line", () =>
      Effect.gen(function* () {
        const fx = yield* Fixtures
        const bad = yield* Effect.flip(Subtitles.decode(fx.broken.badSrt))
        expect(bad).toMatchObject({ _tag: "SubtitleError", line: 2 })
        expect(bad.message).toContain("broken.srt:2")
        const backwards = yield* Effect.flip(
          Subtitles.decode(memory.put("b.srt", "1\n00:00:02,000 --> 00:00:01,000\nx\n"))
        )
        expect(backwards.message).toContain("before it starts")
        const empty = yield* Effect.flip(Subtitles.decode(memory.put("e.srt", "")))
        expect(empty).toMatchObject({ _tag: "DecodeError", media: "text" })
        const latin1 = yield* Effect.flip(Subtitles.decode(memory.put("l.srt", new Uint8Array([0xff, 0xfe, 0x41]))))
        expect(latin1.message).toContain("not UTF-8")
        const noHeader = yield* Effect.flip(Subtitles.decode(memory.put("n.vtt", "00:00.000 --> 00:01.000\nx\n")))
        expect(noHeader.message).toContain("WEBVTT")
      })
    )
  })
})
