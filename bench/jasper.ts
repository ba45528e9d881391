/**
 * @org/jasper against raw sharp and a raw ffmpeg pipe, in one run, on media generated
 * into a temporary folder (the 60 s 1080p clips are cached under .tmp/jasper-bench).
 * Each row prints its goal next to the ratio; notes give the CPU time of both sides
 * (this process and its ffmpeg children), which a loaded machine distorts less than
 * wall time, and the load average when the row was measured.
 *
 * Run: npm run bench -- jasper
 *      npm run bench -- jasper --only fps,at --gops 2 --rounds 1   (a quick subset)
 *      npm run bench -- jasper --quick                             (every row, 1 round, 2 s keyframes only)
 * Rows (--only): image, fps, at, every, bare, rss.
 */
import { Effect, Layer, ManagedRuntime, Stream } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import sharp from "sharp"
import * as crypto from "node:crypto"
import { Catalog, Image, Jasper, Reader, TestMedia, Video } from "@org/jasper"
import { SqliteStorage } from "@org/storage/sqlite"
import { report, row, type Row } from "./lib/report.js"

const argv = process.argv.slice(2)
const flag = (name: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const quick = argv.includes("--quick")
const SECTIONS = ["image", "fps", "at", "every", "bare", "rss"] as const
const only = new Set((flag("only") ?? SECTIONS.join(",")).split(",").map((x) => x.trim()))
for (const x of only) {
  if (!(SECTIONS as ReadonlyArray<string>).includes(x)) {
    console.error(`unknown row group ${x}; use --only ${SECTIONS.join(",")}`)
    process.exit(2)
  }
}
const ROUNDS = Number(flag("rounds") ?? (quick ? 1 : 3))
const GOPS = (flag("gops") ?? (quick ? "2" : "2,10")).split(",").map(Number)
const load = () => os.loadavg()[0]!.toFixed(1)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "jasper-bench-"))
/** The 60 s 1080p clips are generated once into a cache folder (not in git) and reused. */
const cacheDir = path.resolve(import.meta.dirname, "..", ".tmp", "jasper-bench")
fs.mkdirSync(cacheDir, { recursive: true })
const runtime = ManagedRuntime.make(Reader.layer({ roots: [dir, cacheDir] }))
const run = <A, E>(effect: Effect.Effect<A, E, Reader.Reader>) => runtime.runPromise(effect)
const rows: Array<Row> = []
const mb = (bytes: number) => bytes / (1024 * 1024)

/**
 * Raw baseline: ffmpeg's fps filter piped as RGB and cut into frame buffers as they
 * arrive (what any consumer of the pipe has to do), without Effect, probing or back-pressure.
 */
const rawFrames = (
  bin: string,
  file: string,
  frameBytes: number,
  options: { readonly filter?: string; readonly seek?: number; readonly one?: boolean } = {},
  onFrame?: (frame: Buffer) => void
) =>
  new Promise<number>((resolve, reject) => {
    const child = spawn(bin, [
      "-nostdin",
      "-loglevel",
      "error",
      ...(options.seek !== undefined ? ["-ss", String(options.seek)] : []),
      "-i",
      file,
      "-an",
      ...(options.filter ? ["-vf", options.filter] : []),
      ...(options.one ? ["-frames:v", "1"] : []),
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
          onFrame?.(frame)
          frames++
          frame = Buffer.allocUnsafe(frameBytes)
          offset = 0
        }
      }
    })
    child.on("error", reject)
    child.on("close", (code) => (code === 0 ? resolve(frames) : reject(new Error(`ffmpeg exited ${code}`))))
  })

/**
 * CPU time used so far, in ms: this process plus its children that have exited (the
 * ffmpeg processes; Linux's /proc/self/stat cutime and cstime, in 10 ms ticks).
 */
const cpuMs = () => {
  const u = process.cpuUsage()
  let children = 0
  try {
    const f = fs.readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ")
    children = (Number(f[13]) + Number(f[14])) * 10
  } catch {
    // not Linux: this process only
  }
  return (u.user + u.system) / 1000 + children
}

/** Runs the functions in turn (rotating which goes first); the median wall time and CPU time of each, in ms. */
const alternate = async (rounds: number, ...fs: ReadonlyArray<() => Promise<unknown>>) => {
  const times = fs.map(() => [] as Array<number>)
  const cpus = fs.map(() => [] as Array<number>)
  for (const f of fs) await f()
  for (let i = 0; i < rounds; i++) {
    for (let j = 0; j < fs.length; j++) {
      const k = (i + j) % fs.length
      const c = cpuMs()
      const t = performance.now()
      await fs[k]!()
      times[k]!.push(performance.now() - t)
      cpus[k]!.push(cpuMs() - c)
    }
  }
  const median = (xs: Array<number>) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
  /** The median over rounds of `b`'s time over `a`'s in the same round (a ratio >1: `a` faster), which load drifting between rounds weighs on less. */
  const paired = (a: number, b: number) => median(times[a]!.map((t, i) => times[b]![i]! / t))
  return { wall: times.map(median), cpu: cpus.map(median), paired }
}

/** The CPU note of a row: both sides' CPU time and their ratio (raw / ours), and the load. */
const cpuNote = (ours: number, raw: number) =>
  `CPU ours ${(ours / 1000).toFixed(2)} s, raw ${(raw / 1000).toFixed(2)} s (CPU ratio ${(raw / ours).toFixed(2)}x); load ${load()}`

const clip60 = async (keyframeSeconds: number) => {
  const file = path.join(cacheDir, `clip-60s-1080p-gop${keyframeSeconds}s.mp4`)
  if (!fs.existsSync(file)) {
    fs.mkdirSync(cacheDir, { recursive: true })
    const t = performance.now()
    await run(
      TestMedia.video(`${file}.part.mp4`, {
        width: 1920,
        height: 1080,
        rate: "25/1",
        segments: ["testsrc2", "testsrc", "testsrc2", "smptehdbars", "testsrc2"],
        segmentFrames: 300,
        preset: "ultrafast",
        keyframeInterval: keyframeSeconds * 25
      })
    )
    fs.renameSync(`${file}.part.mp4`, file)
    console.log(`generated ${file} in ${((performance.now() - t) / 1000).toFixed(1)} s`)
  }
  return file
}

const sha = (b: Uint8Array) => crypto.createHash("sha1").update(b).digest("hex")

const main = async () => {
  const t0 = performance.now()
  const diagnostics = await Effect.runPromise(Jasper.diagnostics)
  const bin = diagnostics.ffmpeg.path
  console.log(
    `ffmpeg ${diagnostics.ffmpeg.version} (${diagnostics.ffmpeg.source}), ffprobe ${diagnostics.ffprobe.version}; ${os.availableParallelism()} cores, load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}; rows ${[...only].join(",")}, ${ROUNDS} round(s), keyframes every ${GOPS.join(", ")} s`
  )
  const poster = path.join(dir, "poster-1080p.jpg")
  const hd = path.join(dir, "video-1080p.mp4")
  const long = path.join(dir, "video-long.mp4")
  const HD_SECONDS = 10
  const LONG_SECONDS = 300
  await run(
    Effect.all(
      [
        only.has("image") ? TestMedia.poster(poster, { width: 1920, height: 1080, seed: 7 }) : Effect.void,
        only.has("every") || only.has("bare")
          ? TestMedia.video(hd, {
              width: 1920,
              height: 1080,
              rate: "25/1",
              segments: ["testsrc", "color=c=red", "testsrc2", "color=c=blue", "smptebars"],
              segmentFrames: (HD_SECONDS * 25) / 5,
              preset: "ultrafast"
            })
          : Effect.void,
        only.has("rss")
          ? TestMedia.video(long, {
              width: 320,
              height: 180,
              rate: "30/1",
              segments: ["testsrc", "testsrc2", "smptebars", "color=c=green"],
              segmentFrames: (LONG_SECONDS * 30) / 4,
              preset: "ultrafast"
            })
          : Effect.void
      ],
      { concurrency: 3 }
    )
  )
  const clips: Array<{ readonly gop: number; readonly file: string }> = []
  if (only.has("fps") || only.has("at")) for (const gop of GOPS) clips.push({ gop, file: await clip60(gop) })
  console.log(`bench media ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir}, ${cacheDir})`)

  // 1. 1080p JPEG -> 224x224 RGB tensor, and what EXIF auto-orient and the sRGB conversion cost
  if (only.has("image")) {
    const IMAGES = 40
    const rawImage = async () => {
      for (let i = 0; i < IMAGES; i++) await sharp(poster).resize(224, 224).removeAlpha().raw().toBuffer()
    }
    const jasperImage = (options: Image.DecodeOptions) => () =>
      run(
        Effect.forEach(
          Array.from({ length: IMAGES }),
          () => Image.decode(poster, { resize: { width: 224, height: 224 }, ...options }),
          { discard: true }
        )
      )
    const rounds = Math.max(3, ROUNDS * 6 + 2)
    const { cpu, wall, paired } = await alternate(
      rounds,
      jasperImage({}),
      jasperImage({ autoOrient: false, colourspace: "keep" }),
      jasperImage({ autoOrient: true, colourspace: "keep" }),
      jasperImage({ autoOrient: false }),
      rawImage
    )
    const [tOurs, tPlain, tOrient, tSrgb, tRaw] = wall as [number, number, number, number, number]
    const perImage = (ms: number) => `${((ms / IMAGES) * 1000).toFixed(0)} us`
    rows.push(
      row(
        "1080p JPEG -> 224x224 RGB tensor (throughput)",
        (IMAGES * 1000) / tOurs,
        "img/s",
        (IMAGES * 1000) / tRaw,
        `ours: Image.decode (EXIF auto-orient and sRGB on, the defaults) via the file reader; raw: sharp(path).resize(224, 224).removeAlpha().raw(); median of ${rounds} rotating rounds (the median of the rounds' own ratios: ${paired(0, 4).toFixed(3)}x); ${cpuNote(cpu[0]!, cpu[4]!)}`,
        ">= 0.95x"
      ),
      row(
        "  the same without auto-orient and sRGB conversion",
        (IMAGES * 1000) / tPlain,
        "img/s",
        (IMAGES * 1000) / tRaw,
        `autoOrient: false, colourspace: "keep"; cost an image of auto-orient alone ${perImage(tOrient - tPlain)}, of sRGB alone ${perImage(tSrgb - tPlain)}, of both ${perImage(tOurs - tPlain)}; the median of the rounds' own ratios: ${paired(1, 4).toFixed(3)}x; ${cpuNote(cpu[1]!, cpu[4]!)}`,
        ">= 0.95x"
      )
    )
  }

  // 2. catalog assets (probed once at registration, as pipelines decode)
  const catalogLayer = Catalog.layer().pipe(Layer.provide(SqliteStorage.layer({ filename: ":memory:" })))
  const files = [...clips.map((c) => c.file), ...(only.has("every") ? [hd] : [])]
  const assets = await run(
    Effect.gen(function* () {
      const catalog = yield* Catalog.Catalog
      yield* catalog.putEntity({ id: "bench", kind: "video" })
      return yield* Effect.forEach(files, (uri, i) => catalog.register({ entityId: "bench", role: `source-${i}`, uri }))
    }).pipe(Effect.provide(catalogLayer))
  )
  const assetOf = (file: string) => assets[files.indexOf(file)] as any
  const frameBytes = 1920 * 1080 * 3

  // 2a. frames at 1 fps: sparse decoding (only the keyframe-to-sample runs are decoded, in
  // pipelines on all cores) vs the raw fps filter pipe that picks the same frames
  // (`fps=1:round=up`: the frame showing at k s; the default round=near picks the one
  // nearest to k s, often the frame before)
  if (only.has("fps")) {
    for (const { file, gop } of clips) {
      const asset = assetOf(file)
      const ours: Array<string> = []
      const raw: Array<string> = []
      await run(Stream.runForEach(Video.frames(asset, { fps: 1 }), (f) => Effect.sync(() => ours.push(sha(f.data)))))
      await rawFrames(bin, file, frameBytes, { filter: "fps=1:round=up" }, (f) => raw.push(sha(f)))
      const same = ours.length === raw.length && ours.every((h, i) => h === raw[i])
      const counts = { ours: 0, raw: 0 }
      const { cpu, wall } = await alternate(
        ROUNDS,
        () => run(Effect.map(Stream.runCount(Video.frames(asset, { fps: 1 })), (n) => void (counts.ours = n))),
        async () => void (counts.raw = await rawFrames(bin, file, frameBytes, { filter: "fps=1:round=up" }))
      )
      rows.push(
        row(
          `60 s 1080p H.264 (keyframe every ${gop} s) -> RGB frames at 1 fps`,
          (counts.ours * 1000) / wall[0]!,
          "frames/s",
          (counts.raw * 1000) / wall[1]!,
          `ours: Video.frames(asset, { fps: 1 }) (${counts.ours} frames); raw: ffmpeg -vf fps=1:round=up pipe (${counts.raw}); same frames bit for bit: ${same ? "yes" : `NO (${ours.filter((h, i) => h !== raw[i]).length} differ of ${ours.length}/${raw.length})`}; median of ${ROUNDS} rotating rounds; ${cpuNote(cpu[0]!, cpu[1]!)}`,
          gop === 2 ? ">= 1.5x" : "report"
        )
      )
    }
  }

  // 2b. ten timestamps: one call vs one raw ffmpeg (input seeking) per timestamp
  if (only.has("at")) {
    const stamps = Array.from({ length: 10 }, (_, i) => Math.round((1.3 + i * 5.9) * 1e9))
    for (const { file, gop } of clips) {
      const asset = assetOf(file)
      const { cpu, wall } = await alternate(
        ROUNDS,
        () => run(Stream.runDrain(Video.frames(asset, { at: stamps }))),
        async () => {
          for (const t of stamps) await rawFrames(bin, file, frameBytes, { seek: t / 1e9, one: true })
        }
      )
      rows.push(
        row(
          `60 s 1080p H.264 (keyframe every ${gop} s) -> 10 frames at timestamps (calls/s)`,
          1000 / wall[0]!,
          "calls/s",
          1000 / wall[1]!,
          `ours: Video.frames(asset, { at: [10 times] }); raw: ffmpeg -ss t -i clip -frames:v 1, one after another; ${cpuNote(cpu[0]!, cpu[1]!)}`,
          ">= 3x"
        )
      )
    }
  }

  // 2c. every frame of a 10 s 1080p clip
  if (only.has("every")) {
    const counts = { ours: 0, raw: 0 }
    const hdAsset = assetOf(hd)
    const { cpu, wall } = await alternate(
      ROUNDS,
      () => run(Effect.map(Stream.runCount(Video.frames(hdAsset)), (n) => void (counts.ours = n))),
      async () => void (counts.raw = await rawFrames(bin, hd, frameBytes))
    )
    rows.push(
      row(
        `${HD_SECONDS} s 1080p H.264 -> every frame as RGB`,
        (counts.ours * 1000) / wall[0]!,
        "frames/s",
        (counts.raw * 1000) / wall[1]!,
        `ours: Video.frames(asset) (${counts.ours}); raw: ffmpeg pipe of every frame (${counts.raw}); ${cpuNote(cpu[0]!, cpu[1]!)}`,
        ">= 0.95x"
      )
    )
  }

  // 2d. a bare path (probed on the first call, then from the cache by file)
  if (only.has("bare")) {
    const counts = { ours: 0, raw: 0 }
    const { cpu, wall } = await alternate(
      ROUNDS,
      () => run(Effect.map(Stream.runCount(Video.frames(hd, { fps: 1 })), (n) => void (counts.ours = n))),
      async () => void (counts.raw = await rawFrames(bin, hd, frameBytes, { filter: "fps=1:round=up" }))
    )
    rows.push(
      row(
        `${HD_SECONDS} s 1080p H.264 -> RGB frames at 1 fps (bare path)`,
        (counts.ours * 1000) / wall[0]!,
        "frames/s",
        (counts.raw * 1000) / wall[1]!,
        `ours: Video.frames(path) (${counts.ours}); raw: ffmpeg -vf fps=1:round=up pipe (${counts.raw}); ${cpuNote(cpu[0]!, cpu[1]!)}`
      )
    )
  }

  // 3. RSS while streaming every frame of a long video
  if (only.has("rss")) {
    // RSS every 100 ms with the frames streamed so far: the thirds are thirds of the frames, so the
    // start (probe, spawn, first buffers) counts as the start of the stream, not as growth
    const samples: Array<{ readonly frames: number; readonly rss: number }> = []
    global.gc?.()
    const before = process.memoryUsage().rss
    const sampler = setInterval(() => samples.push({ frames, rss: process.memoryUsage().rss }), 100)
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
    const maxRss = (xs: ReadonlyArray<{ readonly rss: number }>) => Math.max(...xs.map((x) => x.rss))
    const early = maxRss(samples.filter((x) => x.frames > 0 && x.frames <= frames / 3))
    const late = maxRss(samples.filter((x) => x.frames >= (2 * frames) / 3))
    const peak = maxRss(samples)
    const streamed = mb(frames * 320 * 180 * 3)
    rows.push(
      row(
        `peak RSS streaming ${frames} frames (${LONG_SECONDS} s, ${streamed.toFixed(0)} MiB of RGB)`,
        mb(peak),
        "MiB",
        null,
        `RSS before ${mb(before).toFixed(0)} MiB; max over the first third of the frames ${mb(early).toFixed(0)}, over the last third ${mb(late).toFixed(0)} MiB (${samples.length} samples, ${(frames / secondsLong).toFixed(0)} frames/s, checksum ${checksum})`
      ),
      row(
        "RSS growth last third vs first third of the frames while streaming",
        mb(late - early),
        "MiB",
        null,
        `flat when close to 0; RSS (MiB) after N frames: ${byFrames.join(", ")}`,
        "flat (about 0)"
      )
    )
  }

  report("jasper", rows)
  await runtime.dispose()
  fs.rmSync(dir, { recursive: true, force: true })
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s, load ${load()}`)
}

main().catch((e) => {
  console.error(e)
  fs.rmSync(dir, { recursive: true, force: true })
  process.exit(1)
})
