/**
 * Deterministic test media: posters drawn with sharp from SVG, videos with hard cuts
 * from ffmpeg's lavfi sources, tones, subtitle files, and deliberately broken files
 * (truncated JPEG and MP4, a zero-byte file, text named `.mp4`, an image header over
 * any sane pixel limit, a video with an unknown codec). Tests and the demo use it.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import sharp from "sharp"
import { StorageError } from "@org/storage"
import * as Process from "./internal/process.js"
import { TestMediaError } from "./JasperError.js"

/**
 * The files {@link generate} writes, by name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fixtures {
  readonly dir: string
  /** 240x360 JPEG poster. */
  readonly poster: string
  /** A second, different 240x360 JPEG poster (a new version of the same artwork). */
  readonly posterB: string
  /** 64x48 PNG with an alpha channel. */
  readonly logo: string
  /** 160x90 H.264 at 30000/1001 fps, 90 frames: hard cuts at frames 30 and 60; a 440 Hz mono sound track. */
  readonly cuts: string
  /** 128x72 H.264 at 24000/1001 fps, 48 frames of testsrc, no audio. */
  readonly ntsc24: string
  /** 1 s stereo WAV at 48 kHz: 440 Hz left, 880 Hz right. */
  readonly tone: string
  readonly srt: string
  readonly vtt: string
  /** 320x240 H.264 (10 frames at 25 fps), left half blue, right half red, with a display matrix turning it 90 degrees clockwise (shown 240x320, blue on top). */
  readonly rotated: string
  /** 160x90 H.264 at a variable rate: 1 s of red at 10 fps, then 2 s of blue at 30 fps (70 frames). */
  readonly vfr: string
  /** 160x90 H.264, 2 s of testsrc at 25 fps whose stream starts at 10 s, with a start timecode 01:00:00:00 (tmcd). */
  readonly offset: string
  /** MKV: 3 s of 160x90 H.264 at 25 fps that starts 25 ms after the container (the audio starts at 0). */
  readonly lagged: string
  /** 400x300 JPEG (left half blue, right half red) with EXIF orientation 6: shown 300x400, blue on top. */
  readonly exifRotated: string
  /** 64x48 animated GIF of 3 frames (red, green, blue). */
  readonly animated: string
  /** WebVTT with markup: italics, a voice span and entities. */
  readonly markup: string
  readonly broken: {
    /** The first half of `poster`. */
    readonly truncatedJpeg: string
    /** The first 60% of `cuts` (its index is lost). */
    readonly truncatedMp4: string
    /** Zero bytes. */
    readonly empty: string
    /** Plain text named `.mp4`. */
    readonly textAsMp4: string
    /** A PNG header claiming 40000x40000 pixels (a decompression bomb). */
    readonly pixelBomb: string
    /** `ntsc24` with its codec tag replaced by an unknown one. */
    readonly unknownCodec: string
    /** An SRT file with a malformed timing line. */
    readonly badSrt: string
  }
}

const fail = (file: string, cause: unknown) =>
  new TestMediaError({ file, message: `${file}: ${StorageError.messageOf(cause)}` })

const write = (file: string, data: Uint8Array | string) =>
  Effect.tryPromise({ try: () => fs.promises.writeFile(file, data), catch: (e) => fail(file, e) })

const ffmpeg = (file: string, args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const bin = yield* Effect.mapError(Process.ffmpeg, (e) => fail(file, e))
    const res = yield* Process.run(bin, [
      "-nostdin",
      "-hide_banner",
      "-loglevel",
      "error",
      "-y",
      ...args,
      "-map_metadata",
      "-1",
      "-fflags",
      "+bitexact",
      "-flags:v",
      "+bitexact",
      "-flags:a",
      "+bitexact",
      file
    ])
    if (res.code !== 0) return yield* fail(file, `ffmpeg failed: ${Process.summarize(res.stderr)}`)
  })

/**
 * Draws a poster-like image from SVG (gradient, shapes; no fonts, so the pixels do
 * not depend on the fonts installed) and writes it as JPEG or PNG by extension.
 *
 * @since 0.1.0
 * @category generators
 */
export const poster = (
  file: string,
  options: { readonly width?: number; readonly height?: number; readonly seed?: number; readonly alpha?: boolean } = {}
): Effect.Effect<string, TestMediaError> => {
  const width = options.width ?? 240
  const height = options.height ?? 360
  const seed = options.seed ?? 1
  const hue = (seed * 67) % 360
  const shapes = Array.from({ length: 6 }, (_, i) => {
    const x = ((seed * 37 + i * 53) % 100) / 100
    const y = ((seed * 17 + i * 29) % 100) / 100
    const r = (0.05 + ((i * 13 + seed) % 10) / 50) * Math.min(width, height)
    return `<circle cx="${(x * width).toFixed(1)}" cy="${(y * height).toFixed(1)}" r="${r.toFixed(1)}" fill="hsl(${(hue + i * 40) % 360},70%,55%)" fill-opacity="0.8"/>`
  }).join("")
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="hsl(${hue},60%,20%)"/><stop offset="1" stop-color="hsl(${(hue + 180) % 360},60%,70%)"/></linearGradient></defs>
<rect width="100%" height="100%" fill="${options.alpha ? "none" : "url(#g)"}"/>${shapes}
<rect x="${width * 0.1}" y="${height * 0.75}" width="${width * 0.8}" height="${height * 0.1}" fill="white"/></svg>`
  return Effect.tryPromise({
    try: async () => {
      const img = sharp(Buffer.from(svg))
      await (file.endsWith(".png") ? img.png() : img.jpeg({ quality: 90 })).toFile(file)
      return file
    },
    catch: (e) => fail(file, e)
  })
}

/**
 * Writes an H.264 MP4 of `segments` (lavfi sources: `color=c=red`, `testsrc`, ...)
 * concatenated with hard cuts, each `segmentSeconds` long, optionally with a sine
 * sound track.
 *
 * @since 0.1.0
 * @category generators
 */
export const video = (
  file: string,
  options: {
    readonly width?: number
    readonly height?: number
    /** Exact frame rate as `num/den` (default `30000/1001`). */
    readonly rate?: string
    readonly segments?: ReadonlyArray<string>
    /** Frames per segment (default 30). */
    readonly segmentFrames?: number
    readonly audioHz?: number
    /** x264 preset (default `veryfast`; `ultrafast` for big bench files). */
    readonly preset?: string
    /** Frames between keyframes, fixed (no extra keyframes at scene cuts), as streaming renditions are encoded. */
    readonly keyframeInterval?: number
  } = {}
): Effect.Effect<string, TestMediaError> => {
  const width = options.width ?? 160
  const height = options.height ?? 90
  const rate = options.rate ?? "30000/1001"
  const segments = options.segments ?? ["color=c=red", "testsrc", "color=c=blue"]
  const frames = options.segmentFrames ?? 30
  const inputs = segments.flatMap((s) => [
    "-f",
    "lavfi",
    "-i",
    `${s}${s.includes("=") ? ":" : "="}s=${width}x${height}:r=${rate}`
  ])
  const trims = segments.map((_, i) => `[${i}:v]trim=end_frame=${frames},setpts=PTS-STARTPTS[v${i}]`).join(";")
  const concat = `${trims};${segments.map((_, i) => `[v${i}]`).join("")}concat=n=${segments.length}:v=1:a=0[v]`
  const [num, den] = rate.split("/").map(Number) as [number, number]
  const seconds = (segments.length * frames * (den ?? 1)) / num
  const audio = options.audioHz
    ? ["-f", "lavfi", "-i", `sine=frequency=${options.audioHz}:sample_rate=48000:duration=${seconds.toFixed(6)}`]
    : []
  return ffmpeg(file, [
    ...inputs,
    ...audio,
    "-filter_complex",
    concat,
    "-map",
    "[v]",
    ...(options.audioHz ? ["-map", `${segments.length}:a`, "-c:a", "aac", "-b:a", "64k", "-ac", "1"] : []),
    "-c:v",
    "libx264",
    "-preset",
    options.preset ?? "veryfast",
    "-threads",
    "1",
    "-pix_fmt",
    "yuv420p",
    ...(options.keyframeInterval
      ? ["-g", String(options.keyframeInterval), "-keyint_min", String(options.keyframeInterval), "-sc_threshold", "0"]
      : ["-g", String(frames)])
  ]).pipe(Effect.as(file))
}

/**
 * Writes a WAV of sine tones, one frequency per channel.
 *
 * @since 0.1.0
 * @category generators
 */
export const tone = (
  file: string,
  options: {
    readonly frequencies?: ReadonlyArray<number>
    readonly seconds?: number
    readonly sampleRate?: number
  } = {}
): Effect.Effect<string, TestMediaError> => {
  const freqs = options.frequencies ?? [440, 880]
  const sr = options.sampleRate ?? 48000
  const d = options.seconds ?? 1
  const sources = freqs.map((f, i) => `sine=frequency=${f}:sample_rate=${sr}:duration=${d}[s${i}]`).join(";")
  const graph =
    freqs.length === 1
      ? `${sources};[s0]anull[a]`
      : `${sources};${freqs.map((_, i) => `[s${i}]`).join("")}amerge=inputs=${freqs.length}[a]`
  return ffmpeg(file, ["-filter_complex", graph, "-map", "[a]", "-c:a", "pcm_s16le"]).pipe(Effect.as(file))
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

const crc32 = (bytes: Uint8Array) => {
  let c = 0xffffffff
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const chunk = (type: string, data: Buffer) => {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, "ascii")
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0)
  return Buffer.concat([head, data, crc])
}

/**
 * A PNG whose header claims `width x height` pixels but carries almost no data.
 *
 * @since 0.1.0
 * @category generators
 */
export const pixelBomb = (width = 40_000, height = 40_000): Buffer => {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr.set([8, 2, 0, 0, 0], 8)
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    chunk("IEND", Buffer.alloc(0))
  ])
}

/**
 * The SRT text {@link generate} writes (three cues).
 *
 * @since 0.1.0
 * @category constants
 */
export const SRT = `1
00:00:00,000 --> 00:00:01,001
Red.

2
00:00:01,001 --> 00:00:02,002
A test pattern,
on two lines.

3
00:00:02,002 --> 00:00:03,003
Blue.
`

/**
 * The WebVTT text {@link generate} writes (same cues as {@link SRT}, with a NOTE and ids).
 *
 * @since 0.1.0
 * @category constants
 */
export const VTT = `WEBVTT - generated

NOTE made by TestMedia

red
00:00.000 --> 00:01.001
Red.

pattern
00:00:01.001 --> 00:00:02.002 align:start
A test pattern,
on two lines.

00:02.002 --> 00:03.003
Blue.
`

/**
 * Sets the display matrix of the first track of an MP4 (its `tkhd` box) to a
 * clockwise rotation of 0, 90, 180 or 270 degrees, as phones record upright video.
 *
 * @since 0.2.0
 * @category generators
 */
export const setRotation = (mp4: Uint8Array, degrees: 0 | 90 | 180 | 270): Buffer => {
  const b = Buffer.from(mp4)
  const at = b.indexOf("tkhd")
  if (at < 0) throw new Error("no tkhd box")
  const matrix = at + 8 + (b[at + 4] === 1 ? 32 : 20) + 16
  const [cos, sin] = ({ 0: [1, 0], 90: [0, 1], 180: [-1, 0], 270: [0, -1] } as const)[degrees]
  const values = [cos * 65536, sin * 65536, 0, -sin * 65536, cos * 65536, 0, 0, 0, 0x40000000]
  values.forEach((v, k) => b.writeInt32BE(v, matrix + 4 * k))
  return b
}

/**
 * The WebVTT text with markup {@link generate} writes.
 *
 * @since 0.2.0
 * @category constants
 */
export const MARKUP_VTT = `WEBVTT

00:00.000 --> 00:01.000
<v Narrator>It was <i>dark</i> &amp; stormy</v>

00:01.000 --> 00:02.000
<c.loud>Thunder</c> &lt;boom&gt;
`

const halves = (width: number, height: number, rate: number) =>
  `color=c=red:s=${width}x${height}:r=${rate},drawbox=x=0:y=0:w=${width / 2}:h=${height}:c=blue:t=fill`

const x264 = ["-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-pix_fmt", "yuv420p"]

/**
 * Writes the fixtures of odd but ordinary media: rotated, variable-rate, offset,
 * lagged, EXIF-rotated, animated, subtitles with markup.
 */
const oddities = (p: (name: string) => string, fixtures: Fixtures) =>
  Effect.gen(function* () {
    const scratch = p("scratch-rotated.mp4")
    const stored = p("scratch-lagged.mp4")
    yield* Effect.all(
      [
        ffmpeg(scratch, ["-f", "lavfi", "-i", halves(320, 240, 25), "-frames:v", "10", ...x264]),
        ffmpeg(fixtures.vfr, [
          "-f",
          "lavfi",
          "-i",
          "color=c=red:s=160x90:r=10:d=1",
          "-f",
          "lavfi",
          "-i",
          "color=c=blue:s=160x90:r=30:d=2",
          "-filter_complex",
          "[0:v][1:v]concat=n=2:v=1[v]",
          "-map",
          "[v]",
          "-r",
          "30",
          "-vsync",
          "vfr",
          ...x264,
          "-g",
          "30"
        ]),
        ffmpeg(fixtures.offset, [
          "-f",
          "lavfi",
          "-i",
          "testsrc=s=160x90:r=25:d=2",
          "-output_ts_offset",
          "10",
          "-timecode",
          "01:00:00:00",
          ...x264
        ]),
        ffmpeg(stored, ["-f", "lavfi", "-i", "testsrc=s=160x90:r=25:d=3", ...x264, "-bf", "0", "-g", "25"]),
        Effect.tryPromise({
          try: () => {
            const [w, h] = [64, 48]
            const pages = Buffer.alloc(w * h * 3 * 3)
            const colours = [
              [255, 0, 0],
              [0, 255, 0],
              [0, 0, 255]
            ]
            colours.forEach((c, p) => {
              for (let i = 0; i < w * h; i++) pages.set(c, (p * w * h + i) * 3)
            })
            return sharp(pages, { raw: { width: w, height: h * 3, channels: 3, pageHeight: h } })
              .gif({ delay: [200, 200, 200], loop: 0 })
              .toFile(fixtures.animated)
          },
          catch: (e) => fail(fixtures.animated, e)
        }),
        Effect.tryPromise({
          try: () =>
            sharp({ create: { width: 400, height: 300, channels: 3, background: "red" } })
              .composite([
                {
                  input: { create: { width: 200, height: 300, channels: 3, background: "blue" } },
                  left: 0,
                  top: 0
                }
              ])
              .jpeg({ quality: 90 })
              .withMetadata({ orientation: 6 })
              .toFile(fixtures.exifRotated),
          catch: (e) => fail(fixtures.exifRotated, e)
        }),
        write(fixtures.markup, MARKUP_VTT)
      ],
      { concurrency: 2 }
    )
    yield* ffmpeg(fixtures.lagged, [
      "-itsoffset",
      "0.025",
      "-i",
      stored,
      "-f",
      "lavfi",
      "-i",
      "sine=frequency=440:sample_rate=8000:duration=3",
      "-map",
      "0:v",
      "-map",
      "1:a",
      "-c:v",
      "copy",
      "-c:a",
      "pcm_s16le"
    ])
    const rotated = yield* Effect.tryPromise({
      try: async () => setRotation(await fs.promises.readFile(scratch), 90),
      catch: (e) => fail(fixtures.rotated, e)
    })
    yield* write(fixtures.rotated, rotated)
    yield* Effect.tryPromise({
      try: () => Promise.all([scratch, stored].map((f) => fs.promises.rm(f, { force: true }))),
      catch: (e) => fail(scratch, e)
    })
  })

/**
 * Writes every fixture into `dir` (created if missing) and returns their paths.
 * The same inputs give the same bytes (bit-exact encoders, one thread).
 *
 * @since 0.1.0
 * @category generators
 */
export const generate = (dir: string): Effect.Effect<Fixtures, TestMediaError> =>
  Effect.gen(function* () {
    yield* Effect.tryPromise({ try: () => fs.promises.mkdir(dir, { recursive: true }), catch: (e) => fail(dir, e) })
    const p = (name: string) => path.join(dir, name)
    const fixtures: Fixtures = {
      dir,
      poster: p("poster.jpg"),
      posterB: p("poster-b.jpg"),
      logo: p("logo.png"),
      cuts: p("cuts.mp4"),
      ntsc24: p("ntsc24.mp4"),
      tone: p("tone.wav"),
      srt: p("subtitles.srt"),
      vtt: p("subtitles.vtt"),
      rotated: p("rotated.mp4"),
      vfr: p("vfr.mp4"),
      offset: p("offset.mp4"),
      lagged: p("lagged.mkv"),
      exifRotated: p("exif-rotated.jpg"),
      animated: p("animated.gif"),
      markup: p("subtitles-markup.vtt"),
      broken: {
        truncatedJpeg: p("broken-truncated.jpg"),
        truncatedMp4: p("broken-truncated.mp4"),
        empty: p("broken-empty.mp4"),
        textAsMp4: p("broken-text.mp4"),
        pixelBomb: p("broken-bomb.png"),
        unknownCodec: p("broken-codec.mp4"),
        badSrt: p("broken.srt")
      }
    }
    yield* Effect.all(
      [
        poster(fixtures.poster, { seed: 1 }),
        poster(fixtures.posterB, { seed: 2 }),
        poster(fixtures.logo, { width: 64, height: 48, seed: 3, alpha: true }),
        video(fixtures.cuts, { audioHz: 440 }),
        video(fixtures.ntsc24, {
          width: 128,
          height: 72,
          rate: "24000/1001",
          segments: ["testsrc"],
          segmentFrames: 48
        }),
        tone(fixtures.tone),
        write(fixtures.srt, SRT),
        write(fixtures.vtt, VTT)
      ],
      { concurrency: 2 }
    )
    yield* oddities(p, fixtures)
    const read = (f: string) => Effect.tryPromise({ try: () => fs.promises.readFile(f), catch: (e) => fail(f, e) })
    const jpeg = yield* read(fixtures.poster)
    const mp4 = yield* read(fixtures.cuts)
    const ntsc = yield* read(fixtures.ntsc24)
    const patched = Buffer.from(ntsc)
    for (let i = patched.indexOf("avc1"); i >= 0; i = patched.indexOf("avc1", i + 4)) patched.write("zzz9", i, "ascii")
    for (let i = patched.indexOf("avcC"); i >= 0; i = patched.indexOf("avcC", i + 4)) patched.write("zzzC", i, "ascii")
    yield* Effect.all([
      write(fixtures.broken.truncatedJpeg, jpeg.subarray(0, Math.floor(jpeg.length / 2))),
      write(fixtures.broken.truncatedMp4, mp4.subarray(0, Math.floor(mp4.length * 0.6))),
      write(fixtures.broken.empty, new Uint8Array(0)),
      write(fixtures.broken.textAsMp4, "This is not a video, it is a text file with a misleading name.\n".repeat(20)),
      write(fixtures.broken.pixelBomb, pixelBomb()),
      write(fixtures.broken.unknownCodec, patched),
      write(fixtures.broken.badSrt, "1\n00:00:01,000 -> 00:00:02,000\nbroken arrow\n")
    ])
    return fixtures
  })
