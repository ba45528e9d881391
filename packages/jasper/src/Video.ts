/**
 * Video decoding with ffmpeg: frames at a rate, at timestamps or every frame,
 * streamed as raw RGB without holding the video in memory, and shot boundaries
 * (scene-change detection) as time ranges. Interrupting a stream kills its ffmpeg.
 *
 * @since 0.1.0
 */
import { Effect, Either, Stream } from "effect"
import * as Process from "./internal/process.js"
import { DecodeError, InvalidInputError, type ReadError, type UnsupportedMediaError } from "./JasperError.js"
import type { VideoMetadata } from "./Media.js"
import * as Probe from "./Probe.js"
import * as Reader from "./Reader.js"
import * as Time from "./Time.js"

/**
 * One decoded frame: packed RGB (`width * height * 3` bytes), its presentation time
 * in nanoseconds, its position in the stream and, where known, its frame index in
 * the source.
 *
 * @since 0.1.0
 * @category models
 */
export interface Frame {
  readonly index: number
  readonly sourceFrame: number
  readonly ptsNs: number
  readonly width: number
  readonly height: number
  readonly data: Uint8Array
}

/**
 * Options of {@link frames}. Give `fps` (the frames showing at the times `k / fps`,
 * each frame once), or `at` (the frames showing at these times, in ns), or neither
 * (every frame). A frame's `ptsNs` is its own start time. `width`/`height` scale
 * the output (one of them keeps the aspect ratio); `range` limits the time span.
 *
 * @since 0.1.0
 * @category models
 */
export interface FrameOptions {
  readonly fps?: number | Time.Rational
  readonly at?: ReadonlyArray<number>
  readonly width?: number
  readonly height?: number
  readonly range?: Time.TimeRange
}

/**
 * Errors of the video functions.
 *
 * @since 0.1.0
 * @category models
 */
export type VideoError = ReadError | DecodeError | UnsupportedMediaError | InvalidInputError

interface Label {
  readonly uri: string
  readonly assetId?: string | undefined
}

const decodeError = (label: Label, message: string, cause?: unknown) =>
  new DecodeError({
    uri: label.uri,
    media: "video",
    stage: "decode",
    message: `${label.uri}${label.assetId ? ` (asset ${label.assetId})` : ""}: ${message}`,
    ...(label.assetId ? { assetId: label.assetId } : {}),
    ...(cause !== undefined ? { cause } : {})
  })

const invalid = (message: string) => new InvalidInputError({ subject: "Video options", message })

/**
 * The output size for a source size and requested width/height (even numbers when
 * one side is derived, at least 2).
 *
 * @since 0.1.0
 * @category helpers
 */
export const outputSize = (
  source: { readonly width: number; readonly height: number },
  options: { readonly width?: number | undefined; readonly height?: number | undefined }
): { readonly width: number; readonly height: number } => {
  const even = (x: number) => Math.max(2, Math.round(x / 2) * 2)
  if (options.width && options.height) return { width: options.width, height: options.height }
  if (options.width) return { width: options.width, height: even((options.width * source.height) / source.width) }
  if (options.height) return { width: even((options.height * source.width) / source.height), height: options.height }
  return { width: source.width, height: source.height }
}

const toRational = (fps: number | Time.Rational): Either.Either<Time.Rational, InvalidInputError> => {
  if (typeof fps !== "number") {
    return fps.num > 0 && fps.den > 0 && Number.isSafeInteger(fps.num) && Number.isSafeInteger(fps.den)
      ? Either.right(fps)
      : Either.left(invalid(`fps ${Time.formatRational(fps)} is not a positive rational`))
  }
  if (!(fps > 0) || !Number.isFinite(fps)) return Either.left(invalid(`fps ${fps} is not positive`))
  // decimals up to 1/1000 are kept exactly (e.g. 0.5 -> 1/2, 29.97 -> 2997/100)
  return Either.mapLeft(Time.rational(Math.round(fps * 1000), 1000), (e) => invalid(e.message))
}

const seconds = (ns: number) => Time.formatSeconds(Math.max(0, ns))

const base = ["-nostdin", "-hide_banner", "-loglevel", "error"]
const out = (w: number, h: number, src: VideoMetadata) =>
  w === src.width && h === src.height ? [] : [`scale=${w}:${h}:flags=bilinear`]

/**
 * Streams frames from a local video file whose metadata is known.
 *
 * @since 0.1.0
 * @category decoding
 */
export const framesFromFile = (
  file: string,
  meta: VideoMetadata,
  options: FrameOptions = {},
  label: Label = { uri: file }
): Stream.Stream<Frame, DecodeError | InvalidInputError> =>
  Stream.unwrap(
    Effect.gen(function* () {
      if (options.fps !== undefined && options.at !== undefined) {
        return yield* invalid("give either fps or at, not both")
      }
      for (const v of [options.width, options.height]) {
        if (v !== undefined && (!Number.isSafeInteger(v) || v < 2))
          return yield* invalid(`size ${v} is not an integer >= 2`)
      }
      const bin = yield* Effect.mapError(Process.ffmpeg, (e) => decodeError(label, e.message, e))
      const { height, width } = outputSize(meta, options)
      const frameBytes = width * height * 3
      const onFailure = (exit: Process.Exit) => decodeError(label, `ffmpeg failed: ${Process.summarize(exit.stderr)}`)
      const raw = ["-an", "-sn", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
      const rate = meta.frameRate
      const range = options.range
      const startNs = range?.startNs ?? 0

      if (options.at !== undefined) {
        const at = options.at
        for (const t of at)
          if (!Number.isSafeInteger(t) || t < 0) return yield* invalid(`time ${t} ns is not a non-negative integer`)
        return Stream.fromIterable(at).pipe(
          Stream.mapEffect((t) => {
            const frame = Time.nsToFrame(t, rate)
            const frameStart = Time.frameToNs(frame, rate)
            // a little before the frame's start, so that the frame itself is the first kept
            const seek = Math.max(0, frameStart - 200_000)
            const filters = out(width, height, meta)
            return Process.stream({
              command: bin,
              args: [
                ...base,
                "-ss",
                seconds(seek),
                "-i",
                file,
                ...(filters.length ? ["-vf", filters.join(",")] : []),
                "-frames:v",
                "1",
                ...raw
              ],
              pieceBytes: frameBytes,
              keepPartial: false,
              onFailure
            }).pipe(
              Stream.runHead,
              Effect.flatMap((head) =>
                head._tag === "Some"
                  ? Effect.succeed({ data: head.value, sourceFrame: frame, ptsNs: frameStart })
                  : Effect.fail(decodeError(label, `no frame at ${Time.formatSeconds(t)} s`))
              )
            )
          }),
          Stream.zipWithIndex,
          Stream.map(([f, index]) => ({
            index,
            sourceFrame: f.sourceFrame,
            ptsNs: f.ptsNs,
            width,
            height,
            data: f.data
          }))
        )
      }

      // frames from `first` on; with fps, only the frames showing at the sample times k / fps
      const first = Time.nsToFrame(startNs, rate)
      const seekArgs = range
        ? [
            "-ss",
            seconds(Math.max(0, Time.frameToNs(first, rate) - 200_000)),
            "-i",
            file,
            "-t",
            seconds(range.endNs - Time.frameToNs(first, rate))
          ]
        : ["-i", file]
      const filters = out(width, height, meta)
      let next: () => number
      if (options.fps !== undefined) {
        const fps = yield* toRational(options.fps)
        // frame n holds a sample time k / fps  <=>  floor(k * R / fps) = n  <=>  ceil(n * C / D) < (n + 1) * C / D
        const C = BigInt(fps.num) * BigInt(rate.den)
        const D = BigInt(fps.den) * BigInt(rate.num)
        const g = gcdBig(C, D)
        const [c, d] = [C / g, D / g]
        filters.unshift(`select='lt(ceil((n+${first})*${c}/${d}),(n+${first + 1})*${c}/${d})'`)
        // the same frames, in order, computed exactly
        let k = (BigInt(first) * c + d - 1n) / d
        let last = first - 1
        next = () => {
          for (;;) {
            const frame = Number((k * d) / c)
            k++
            if (frame > last) {
              last = frame
              return frame
            }
          }
        }
      } else {
        let n = first
        next = () => n++
      }
      return Process.stream({
        command: bin,
        args: [...base, ...seekArgs, ...(filters.length ? ["-vf", filters.join(",")] : []), "-vsync", "0", ...raw],
        pieceBytes: frameBytes,
        keepPartial: false,
        onFailure
      }).pipe(
        Stream.zipWithIndex,
        Stream.map(([data, index]) => {
          const sourceFrame = next()
          return { index, sourceFrame, ptsNs: Time.frameToNs(sourceFrame, rate), width, height, data }
        })
      )
    })
  )

const gcdBig = (a: bigint, b: bigint): bigint => {
  while (b !== 0n) [a, b] = [b, a % b]
  return a
}

/** An asset's probed video metadata, so that decoding it skips ffprobe. */
const knownVideo = (source: Reader.Source): VideoMetadata | undefined => {
  const metadata = typeof source === "string" ? undefined : (source as { metadata?: { _tag?: string } }).metadata
  return metadata?._tag === "video" ? (metadata as VideoMetadata) : undefined
}

/**
 * Streams the frames of a video source (a URI, a path under the reader's roots, or
 * an asset) as raw RGB, pulling from ffmpeg only as fast as the stream is consumed.
 * An asset's probed metadata is used as is; other sources are probed first.
 *
 * @example
 * ```ts
 * yield* Video.frames(asset, { fps: 1, width: 224 }).pipe(Stream.runForEach((f) => embed(f.data)))
 * ```
 * @since 0.1.0
 * @category decoding
 */
export const frames = (
  source: Reader.Source,
  options: FrameOptions = {}
): Stream.Stream<Frame, VideoError, Reader.Reader> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const reader = yield* Reader.Reader
      const label = { uri: Reader.uriOf(source), assetId: Reader.assetIdOf(source) }
      const file = yield* reader.localPath(source)
      const meta = knownVideo(source) ?? (yield* Probe.video(file, label))
      return framesFromFile(file, meta, options, label)
    })
  )

/**
 * Options of {@link shots}: the scene-change score above which a frame starts a new
 * shot (0 to 1, default 0.3), and the shortest shot kept (shorter ones merge).
 *
 * @since 0.1.0
 * @category models
 */
export interface ShotOptions {
  readonly threshold?: number
  readonly minShotNs?: number
}

/**
 * Detects shot boundaries in a local video file: contiguous half-open ranges, cut
 * times snapped to frame starts, covering the whole video.
 *
 * @since 0.1.0
 * @category decoding
 */
export const shotsFromFile = (
  file: string,
  meta: VideoMetadata,
  options: ShotOptions = {},
  label: Label = { uri: file }
): Effect.Effect<ReadonlyArray<Time.TimeRange>, DecodeError | InvalidInputError> =>
  Effect.gen(function* () {
    const threshold = options.threshold ?? 0.3
    if (!(threshold > 0 && threshold < 1)) return yield* invalid(`threshold ${threshold} is not between 0 and 1`)
    const bin = yield* Effect.mapError(Process.ffmpeg, (e) => decodeError(label, e.message, e))
    const res = yield* Process.run(
      bin,
      [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-i",
        file,
        "-an",
        "-sn",
        "-vf",
        `select='gt(scene,${threshold})',showinfo`,
        "-f",
        "null",
        "-"
      ],
      64 * 1024 * 1024
    )
    if (res.code !== 0) return yield* decodeError(label, `ffmpeg failed: ${Process.summarize(res.stderr)}`)
    const rate = meta.frameRate
    const half = Math.floor(Time.frameToNs(1, rate) / 2)
    const end = meta.frameCount ? Time.frameToNs(meta.frameCount, rate) : meta.durationNs
    const cuts: Array<number> = []
    for (const m of res.stderr.matchAll(/Parsed_showinfo.*?pts_time:\s*([0-9.]+)/g)) {
      const ns = Time.decimalSecondsToNs(m[1]!)
      if (Either.isLeft(ns)) continue
      const at = Time.frameToNs(Time.nsToFrame(ns.right + half, rate), rate)
      const previous = cuts.length ? cuts[cuts.length - 1]! : 0
      if (at > previous && at < end && at - previous >= (options.minShotNs ?? 0)) cuts.push(at)
    }
    const bounds = [0, ...cuts, end]
    const ranges: Array<Time.TimeRange> = []
    for (let i = 0; i + 1 < bounds.length; i++) {
      if (bounds[i + 1]! > bounds[i]!) ranges.push({ startNs: bounds[i]!, endNs: bounds[i + 1]! })
    }
    return ranges
  })

/**
 * Detects the shots of a video source (scene-change detection).
 *
 * @since 0.1.0
 * @category decoding
 */
export const shots = (
  source: Reader.Source,
  options: ShotOptions = {}
): Effect.Effect<ReadonlyArray<Time.TimeRange>, VideoError, Reader.Reader> =>
  Effect.scoped(
    Effect.gen(function* () {
      const reader = yield* Reader.Reader
      const label = { uri: Reader.uriOf(source), assetId: Reader.assetIdOf(source) }
      const file = yield* reader.localPath(source)
      const meta = knownVideo(source) ?? (yield* Probe.video(file, label))
      return yield* shotsFromFile(file, meta, options, label)
    })
  )
