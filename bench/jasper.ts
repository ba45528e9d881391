/**
 * @org/jasper against raw sharp and a raw ffmpeg pipe, in one run, on media generated
 * into a temporary folder.
 * Run: npm run bench -- jasper
 */
import { Effect, Layer, ManagedRuntime, Stream } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import sharp from "sharp"
import { Catalog, Image, Reader, TestMedia, Video } from "@org/jasper"
import { SqliteStorage } from "@org/storage/sqlite"
import { report, row, type Row } from "./lib/report.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jasper-bench-"))
const runtime = ManagedRuntime.make(Reader.layer({ roots: [dir] }))
const run = <A, E>(effect: Effect.Effect<A, E, Reader.Reader>) => runtime.runPromise(effect)
const rows: Array<Row> = []
const mb = (bytes: number) => bytes / (1024 * 1024)

/** The ffmpeg Jasper uses (PATH first, then @ffmpeg-installer), so both sides run the same binary. */
const ffmpegBinary = async (): Promise<string> => {
  for (const d of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(d, "ffmpeg")
    if (d && fs.existsSync(candidate)) return candidate
  }
  const mod: any = await import("@ffmpeg-installer/ffmpeg")
  return (mod.default ?? mod).path
}

/**
 * Raw baseline: ffmpeg's fps filter piped as RGB and cut into frame buffers as they
 * arrive (what any consumer of the pipe has to do), without Effect, probing or back-pressure.
 */
const rawFrames = (bin: string, file: string, frameBytes: number) =>
  new Promise<number>((resolve, reject) => {
    const child = spawn(bin, [
      "-nostdin",
      "-loglevel",
      "error",
      "-i",
      file,
      "-an",
      "-vf",
      "fps=1",
      "-pix_fmt",
      "rgb24",
      "-f",
      "rawvideo",
      "pipe:1"
    ])
    let frames = 0
    let frame = Buffer.allocUnsafe(frameBytes)
    let offset = 0
    child.stdout.on("data", (c: Buffer) => {
      let at = 0
      while (at < c.length) {
        const n = Math.min(c.length - at, frameBytes - offset)
        c.copy(frame, offset, at, at + n)
        offset += n
        at += n
        if (offset === frameBytes) {
          frames++
          frame = Buffer.allocUnsafe(frameBytes)
          offset = 0
        }
      }
    })
    child.on("error", reject)
    child.on("close", (code) => (code === 0 ? resolve(frames) : reject(new Error(`ffmpeg exited ${code}`))))
  })

/** Runs the functions in turn (rotating which goes first) and returns the median time of each. */
const alternate = async (rounds: number, ...fs: ReadonlyArray<() => Promise<unknown>>) => {
  const times = fs.map(() => [] as Array<number>)
  for (const f of fs) await f()
  for (let i = 0; i < rounds; i++) {
    for (let j = 0; j < fs.length; j++) {
      const k = (i + j) % fs.length
      const t = performance.now()
      await fs[k]!()
      times[k]!.push(performance.now() - t)
    }
  }
  return times.map((xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!)
}

const main = async () => {
  const t0 = performance.now()
  const bin = await ffmpegBinary()
  const poster = path.join(dir, "poster-1080p.jpg")
  const hd = path.join(dir, "video-1080p.mp4")
  const long = path.join(dir, "video-long.mp4")
  const HD_SECONDS = 10
  const LONG_SECONDS = 300
  await run(
    Effect.all(
      [
        TestMedia.poster(poster, { width: 1920, height: 1080, seed: 7 }),
        TestMedia.video(hd, {
          width: 1920,
          height: 1080,
          rate: "25/1",
          segments: ["testsrc", "color=c=red", "testsrc2", "color=c=blue", "smptebars"],
          segmentFrames: (HD_SECONDS * 25) / 5,
          preset: "ultrafast"
        }),
        TestMedia.video(long, {
          width: 320,
          height: 180,
          rate: "30/1",
          segments: ["testsrc", "testsrc2", "smptebars", "color=c=green"],
          segmentFrames: (LONG_SECONDS * 30) / 4,
          preset: "ultrafast"
        })
      ],
      { concurrency: 3 }
    )
  )
  console.log(`generated bench media in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`)

  // 1. 1080p JPEG -> 224x224 RGB tensor
  const IMAGES = 40
  const rawImage = async () => {
    for (let i = 0; i < IMAGES; i++) await sharp(poster).resize(224, 224).removeAlpha().raw().toBuffer()
  }
  const jasperImage = () =>
    run(
      Effect.forEach(
        Array.from({ length: IMAGES }),
        () => Image.decode(poster, { resize: { width: 224, height: 224 } }),
        {
          discard: true
        }
      )
    )
  const [tOurs, tRaw] = (await alternate(11, jasperImage, rawImage)) as [number, number]
  rows.push(
    row(
      "1080p JPEG -> 224x224 RGB (throughput)",
      (IMAGES * 1000) / tOurs,
      "img/s",
      (IMAGES * 1000) / tRaw,
      "ours: Image.decode via the file reader; raw: sharp(path).resize().raw(); median of 11 alternating rounds"
    )
  )

  // 2. frames at 1 fps from a 1080p video: a catalog asset (metadata probed at registration,
  //    the way pipelines decode), a bare path (probed on every call), and the raw pipe
  const frameBytes = 1920 * 1080 * 3
  const asset = await run(
    Effect.gen(function* () {
      const catalog = yield* Catalog.Catalog
      yield* catalog.putEntity({ id: "bench", kind: "video" })
      return yield* catalog.register({ entityId: "bench", role: "source", uri: hd })
    }).pipe(Effect.provide(Catalog.layer().pipe(Layer.provide(SqliteStorage.layer({ filename: ":memory:" })))))
  )
  const counts = { asset: 0, path: 0, raw: 0 }
  const [tAsset, tPath, tRawFrames] = await alternate(
    11,
    () => run(Effect.map(Stream.runCount(Video.frames(asset, { fps: 1 })), (n) => void (counts.asset = n))),
    () => run(Effect.map(Stream.runCount(Video.frames(hd, { fps: 1 })), (n) => void (counts.path = n))),
    async () => void (counts.raw = await rawFrames(bin, hd, frameBytes))
  )
  const rawRate = (counts.raw * 1000) / tRawFrames!
  rows.push(
    row(
      `1080p video -> RGB frames at 1 fps (${HD_SECONDS} s video, catalog asset)`,
      (counts.asset * 1000) / tAsset!,
      "frames/s",
      rawRate,
      `ours: Video.frames(asset) (${counts.asset} frames); raw: ffmpeg -vf fps=1 pipe cut into frames (${counts.raw}); median of 11 rotating rounds`
    ),
    row(
      `1080p video -> RGB frames at 1 fps (${HD_SECONDS} s video, bare path)`,
      (counts.path * 1000) / tPath!,
      "frames/s",
      rawRate,
      "ours: Video.frames(path), which runs ffprobe first on every call"
    )
  )

  // 3. RSS while streaming every frame of a long video
  const samples: Array<number> = []
  global.gc?.()
  const before = process.memoryUsage().rss
  const sampler = setInterval(() => samples.push(process.memoryUsage().rss), 100)
  let frames = 0
  let checksum = 0
  const byFrames: Array<string> = []
  const tLong = performance.now()
  await run(
    Stream.runForEach(Video.frames(long), (f) =>
      Effect.sync(() => {
        frames++
        checksum = (checksum + f.data[(frames * 997) % f.data.length]!) % 65521
        if (frames % 1500 === 0) byFrames.push(`${frames}: ${mb(process.memoryUsage().rss).toFixed(0)}`)
      })
    )
  )
  const secondsLong = (performance.now() - tLong) / 1000
  clearInterval(sampler)
  const third = Math.max(1, Math.floor(samples.length / 3))
  const early = Math.max(...samples.slice(0, third))
  const late = Math.max(...samples.slice(-third))
  const peak = Math.max(...samples)
  const streamed = mb(frames * 320 * 180 * 3)
  rows.push(
    row(
      `peak RSS streaming ${frames} frames (${LONG_SECONDS} s, ${streamed.toFixed(0)} MiB of RGB)`,
      mb(peak),
      "MiB",
      null,
      `RSS before ${mb(before).toFixed(0)} MiB; max of first third ${mb(early).toFixed(0)}, of last third ${mb(late).toFixed(0)} MiB (${samples.length} samples, ${(frames / secondsLong).toFixed(0)} frames/s, checksum ${checksum})`
    )
  )
  rows.push(
    row(
      "RSS growth last third vs first third while streaming",
      mb(late - early),
      "MiB",
      null,
      `flat when close to 0; RSS (MiB) after N frames: ${byFrames.join(", ")}`
    )
  )

  report("jasper", rows)
  await runtime.dispose()
  fs.rmSync(dir, { recursive: true, force: true })
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`)
}

main().catch((e) => {
  console.error(e)
  fs.rmSync(dir, { recursive: true, force: true })
  process.exit(1)
})
