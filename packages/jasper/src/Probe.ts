/**
 * Probing: the metadata of a local media file (sharp for images, ffprobe for video
 * and audio, the subtitle parser for text), with tagged errors naming the source.
 *
 * @since 0.1.0
 */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as Image from "./Image.js"
import * as Process from "./internal/process.js"
import * as Timeline from "./internal/timeline.js"
import {
  DecodeError,
  type MediaKind,
  type PixelLimitError,
  type SubtitleError,
  UnsupportedMediaError
} from "./JasperError.js"
import type { AudioMetadata, MediaType, Metadata, TextMetadata, VideoMetadata } from "./Media.js"
import * as Subtitles from "./Subtitles.js"
import * as Time from "./Time.js"

/**
 * Names the source in errors: its URI and, when known, its asset id.
 *
 * @since 0.1.0
 * @category models
 */
export interface Label {
  readonly uri: string
  readonly assetId?: string | undefined
}

/**
 * Options of {@link probe}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProbeOptions {
  /** Largest accepted image `width * height` (default 100 megapixels). */
  readonly pixelLimit?: number
  /** The language of a text asset. */
  readonly language?: string | undefined
}

/**
 * Any error probing can give.
 *
 * @since 0.1.0
 * @category models
 */
export type ProbeError = DecodeError | PixelLimitError | UnsupportedMediaError | SubtitleError

const fail = (label: Label, media: MediaKind, message: string, cause?: unknown) =>
  new DecodeError({
    uri: label.uri,
    media,
    stage: "probe",
    message: `${label.uri}${label.assetId ? ` (asset ${label.assetId})` : ""}: ${message}`,
    ...(label.assetId ? { assetId: label.assetId } : {}),
    ...(cause !== undefined ? { cause } : {})
  })

/**
 * ffprobe's JSON for a file.
 *
 * @since 0.1.0
 * @category probing
 */
export const ffprobe = (
  file: string,
  label: Label,
  media: "video" | "audio"
): Effect.Effect<{ readonly streams: ReadonlyArray<any>; readonly format: any }, DecodeError> =>
  Effect.gen(function* () {
    const bin = yield* Effect.mapError(Process.ffprobe, (e) => fail(label, media, e.message, e))
    const out = yield* Process.run(bin, ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", file])
    if (out.code !== 0) return yield* fail(label, media, `ffprobe failed: ${Process.summarize(out.stderr)}`)
    return yield* Effect.try({
      try: () => {
        const json = JSON.parse(out.stdout.toString("utf8"))
        return { streams: json.streams ?? [], format: json.format ?? {} }
      },
      catch: (cause) => fail(label, media, "ffprobe printed no JSON", cause)
    })
  })

/** Fails a file of zero bytes with the one message every decoder gives. */
const nonEmpty = (file: string, label: Label, media: MediaKind) =>
  Effect.flatMap(
    Effect.tryPromise({
      try: () => fs.promises.stat(file),
      catch: (cause) => fail(label, media, "cannot stat", cause)
    }),
    (stat) => (stat.size === 0 ? Effect.fail(fail(label, media, Image.EMPTY_FILE)) : Effect.void)
  )

const durationOf = (stream: any, format: any): number => {
  for (const d of [stream?.duration, format?.duration]) {
    if (typeof d === "string") {
      const ns = Time.decimalSecondsToNs(d)
      if (Either.isRight(ns)) return ns.right
    }
  }
  return 0
}

const known = (codec: unknown) => typeof codec === "string" && codec !== "" && codec !== "none" && codec !== "unknown"

const decimalNs = (value: unknown): number | undefined => {
  if (typeof value !== "string") return undefined
  const ns = Time.decimalSecondsToNs(value)
  return Either.isRight(ns) ? ns.right : undefined
}

/**
 * The clockwise rotation a video stream asks for on display: from its display
 * matrix (ffprobe reports it counter-clockwise) or an old `rotate` tag.
 */
const rotationOf = (v: any): 0 | 90 | 180 | 270 => {
  const matrix = (v.side_data_list ?? []).find(
    (d: any) => typeof d?.rotation === "number" && /display matrix/i.test(String(d.side_data_type))
  )
  const clockwise = matrix !== undefined ? -Number(matrix.rotation) : Number(v.tags?.rotate ?? 0)
  if (!Number.isFinite(clockwise)) return 0
  const r = (((Math.round(clockwise / 90) * 90) % 360) + 360) % 360
  return r as 0 | 90 | 180 | 270
}

/** The video stream ffmpeg decodes by default: the first that is not cover art. */
const videoStream = (streams: ReadonlyArray<any>) =>
  streams.find((s) => s.codec_type === "video" && s.disposition?.attached_pic !== 1)

/**
 * Video metadata from ffprobe: exact frame rate, duration, stored and display size,
 * rotation, codec, audio, the presentation timeline (start time, time base, whether
 * the rate is constant, where it ends) and the start timecode.
 *
 * @since 0.1.0
 * @category probing
 */
export const video = (file: string, label: Label): Effect.Effect<VideoMetadata, DecodeError | UnsupportedMediaError> =>
  Effect.map(videoWithTimeline(file, label), ([meta]) => meta)

/**
 * Probed videos by file (path, size and modification time, as timelines are cached):
 * a bare path decoded again is not probed again (an asset carries its metadata).
 */
const probed = new Map<string, readonly [VideoMetadata, Timeline.Timeline]>()

/** The metadata and the frame timeline it was computed from, cached by file. */
const videoWithTimeline = (
  file: string,
  label: Label
): Effect.Effect<readonly [VideoMetadata, Timeline.Timeline], DecodeError | UnsupportedMediaError> =>
  Effect.suspend(() => {
    const key = Timeline.keyOf(file)
    const hit = key !== undefined ? probed.get(key) : undefined
    if (hit) return Effect.succeed(hit)
    return Effect.tap(probeVideo(file, label), (result) => {
      if (key === undefined) return
      probed.set(key, result)
      while (probed.size > 64) probed.delete(probed.keys().next().value!)
    })
  })

const probeVideo = (
  file: string,
  label: Label
): Effect.Effect<readonly [VideoMetadata, Timeline.Timeline], DecodeError | UnsupportedMediaError> =>
  Effect.gen(function* () {
    yield* nonEmpty(file, label, "video")
    const { format, streams } = yield* ffprobe(file, label, "video")
    const v = videoStream(streams)
    if (!v) return yield* fail(label, "video", "no video stream")
    if (!known(v.codec_name)) {
      return yield* new UnsupportedMediaError({
        uri: label.uri,
        message: `${label.uri}: unsupported video codec (tag ${v.codec_tag_string ?? "?"})`
      })
    }
    const rate = [v.r_frame_rate, v.avg_frame_rate]
      .map((r) => (typeof r === "string" ? Time.parseRational(r) : undefined))
      .find((r) => r !== undefined && Either.isRight(r) && r.right.num > 0)
    if (!rate || Either.isLeft(rate)) return yield* fail(label, "video", "no frame rate")
    const tbParsed = typeof v.time_base === "string" ? Time.parseRational(v.time_base) : undefined
    const timeBase = tbParsed && Either.isRight(tbParsed) && tbParsed.right.num > 0 ? tbParsed.right : undefined
    if (!timeBase) return yield* fail(label, "video", "no time base")
    const streamStart = decimalNs(v.start_time) ?? decimalNs(format.start_time) ?? 0
    const streamDuration = decimalNs(v.duration)
    const streamEnd = streamDuration !== undefined ? streamStart + streamDuration : undefined
    const bin = yield* Effect.mapError(Process.ffprobe, (e) => fail(label, "video", e.message, e))
    const timeline = yield* Effect.mapError(
      Timeline.scan(bin, file, Number(v.index), timeBase, rate.right, streamEnd, streams.length),
      (e) => fail(label, "video", e.message, e)
    )
    if (timeline.pts.length === 0) return yield* fail(label, "video", "the video stream has no frames")
    const a = streams.find((s) => s.codec_type === "audio")
    const rotation = rotationOf(v)
    const [width, height] = [Number(v.width), Number(v.height)]
    const turned = rotation === 90 || rotation === 270
    const tmcd = streams.find((s) => s.codec_tag_string === "tmcd")
    const timecode = [v.tags?.timecode, tmcd?.tags?.timecode, format.tags?.timecode].find(
      (t) => typeof t === "string" && t !== ""
    )
    const meta: VideoMetadata = {
      _tag: "video" as const,
      durationNs: durationOf(v, format),
      frameRate: rate.right,
      width,
      height,
      codec: String(v.codec_name),
      frameCount: timeline.pts.length,
      ...(a && known(a.codec_name)
        ? {
            audio: {
              sampleRate: Number(a.sample_rate),
              channels: Number(a.channels),
              codec: String(a.codec_name),
              ...(decimalNs(a.start_time) !== undefined ? { startNs: decimalNs(a.start_time)! } : {})
            }
          }
        : {}),
      rotation,
      displayWidth: turned ? height : width,
      displayHeight: turned ? width : height,
      startNs: timeline.pts[0]!,
      containerStartNs: decimalNs(format.start_time) ?? 0,
      timeBase,
      constantRate: timeline.constantRate,
      endNs: timeline.endNs,
      ...(timecode ? { timecode } : {})
    }
    return [meta, timeline] as const
  })

/**
 * Audio metadata from ffprobe (the first audio stream; a video's sound track works too).
 *
 * @since 0.1.0
 * @category probing
 */
export const audio = (file: string, label: Label): Effect.Effect<AudioMetadata, DecodeError | UnsupportedMediaError> =>
  Effect.gen(function* () {
    yield* nonEmpty(file, label, "audio")
    const { format, streams } = yield* ffprobe(file, label, "audio")
    const a = streams.find((s) => s.codec_type === "audio")
    if (!a) return yield* fail(label, "audio", "no audio stream")
    if (!known(a.codec_name)) {
      return yield* new UnsupportedMediaError({ uri: label.uri, message: `${label.uri}: unsupported audio codec` })
    }
    return {
      _tag: "audio" as const,
      durationNs: durationOf(a, format),
      sampleRate: Number(a.sample_rate),
      channels: Number(a.channels),
      codec: String(a.codec_name),
      startNs: decimalNs(a.start_time) ?? decimalNs(format.start_time) ?? 0,
      containerStartNs: decimalNs(format.start_time) ?? 0
    }
  })

/**
 * The largest text asset probed (32 MiB): subtitles are far smaller.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_TEXT_BYTES = 32 * 1024 * 1024

/**
 * Text metadata: the subtitle format and cue count (plain text has no cues).
 *
 * @since 0.1.0
 * @category probing
 */
export const text = (
  file: string,
  label: Label,
  language?: string
): Effect.Effect<TextMetadata, DecodeError | SubtitleError> =>
  Effect.gen(function* () {
    const { size } = yield* Effect.tryPromise({
      try: () => fs.promises.stat(file),
      catch: (cause) => fail(label, "text", "cannot stat", cause)
    })
    if (size > MAX_TEXT_BYTES)
      return yield* fail(label, "text", `${size} bytes is over the text limit of ${MAX_TEXT_BYTES}`)
    const bytes = yield* Effect.tryPromise({
      try: () => fs.promises.readFile(file),
      catch: (cause) => fail(label, "text", "cannot read", cause)
    })
    const body = yield* Subtitles.text(bytes, label.uri, label.assetId)
    const format = Subtitles.detect(body, label.uri)
    const cues = format === "plain" ? [] : yield* Subtitles.parse(body, { format, uri: label.uri })
    return { _tag: "text" as const, format, cues: cues.length, ...(language ? { language } : {}) }
  })

/**
 * Probes a local file as the given media type. Empty files fail at once.
 *
 * @since 0.1.0
 * @category probing
 */
export const probe = (
  file: string,
  mediaType: MediaType,
  label: Label,
  options: ProbeOptions = {}
): Effect.Effect<Metadata, ProbeError> =>
  Effect.gen(function* () {
    const stat = yield* Effect.tryPromise({
      try: () => fs.promises.stat(file),
      catch: (cause) => fail(label, mediaType, "cannot stat", cause)
    })
    if (stat.size === 0) return yield* fail(label, mediaType, Image.EMPTY_FILE)
    switch (mediaType) {
      case "image":
        return yield* Image.probe(file, label, { ...(options.pixelLimit ? { pixelLimit: options.pixelLimit } : {}) })
      case "video":
        return yield* video(file, label)
      case "audio":
        return yield* audio(file, label)
      case "text":
        return yield* text(file, label, options.language)
    }
  })
