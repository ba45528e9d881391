/**
 * Video decoding with ffmpeg: frames at a rate, at timestamps or every frame,
 * streamed as raw RGB without holding the video in memory, and shot boundaries
 * (scene-change detection) as time ranges. Interrupting a stream kills its ffmpeg.
 *
 * @since 0.1.0
 */
import { Chunk, Effect, Either, Option, Queue, Stream, Take } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import * as Process from "./internal/process.js"
import * as Timeline from "./internal/timeline.js"
import { DecodeError, InvalidInputError, type ReadError, type UnsupportedMediaError } from "./JasperError.js"
import * as Media from "./Media.js"
import type { VideoMetadata } from "./Media.js"
import * as Probe from "./Probe.js"
import * as Reader from "./Reader.js"
import * as Time from "./Time.js"

/** Output of a decoding ffmpeg: every decoded frame as it comes (no frame-rate conversion), video only, raw RGB to stdout. */
const RAW_RGB_OUT = ["-vsync", "0", "-an", "-sn", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]

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
 * Options of {@link frames}. Give `fps` (the frames showing at the sample times
 * `startNs + k / fps`, each frame once), or `at` (the frames showing at these times,
 * in ns on the presentation timeline), or neither (every frame). A frame's `ptsNs`
 * is its own start time on that timeline. `range` keeps the frames showing in
 * `[startNs, endNs)` (the one already showing at `startNs` included; an instant keeps
 * the frame showing at it). `width`/`height` scale the output (one of them keeps the
 * aspect ratio of the display size).
 * `orientation` is `display` (default: the display matrix applied, so a phone video
 * shot upright is upright) or `stored` (the coded picture as stored).
 * `concurrency` bounds the ffmpeg processes decoding segments at once (default: the
 * number of cores); frames always come in order.
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
  readonly orientation?: "display" | "stored"
  readonly concurrency?: number
  /**
   * How `fps` and `at` samples are decoded. Sparse decoding drops, before the decoder,
   * every packet that no sample needs (a stream copy feeding the decoder; FFmpeg 5.0
   * or later), so only the runs from a keyframe to a sample are decoded (a single-stream
   * file by up to `concurrency` single-threaded ffmpegs side by side, each reading a
   * concat list of every `concurrency`-th run; others in up to `concurrency` pipelines). `true` uses it whenever the ffmpeg and the file allow,
   * `false` never; by default it is used when it saves more decoding than its extra
   * processes cost (long or large videos, samples far apart).
   */
  readonly sparse?: boolean
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

/** The display size of a video, or its stored size when asked for. */
const sourceSize = (meta: VideoMetadata, orientation: "display" | "stored") =>
  orientation === "stored" ? { width: meta.width, height: meta.height } : Media.displaySize(meta)

/**
 * The frame timeline of a local video: cached by file, built from the metadata for
 * a constant-rate stream (unless keyframes are needed), else scanned from the packets.
 */
const timelineFor = (
  file: string,
  meta: VideoMetadata,
  label: Label,
  needKeyframes: boolean
): Effect.Effect<Timeline.Timeline, DecodeError | UnsupportedMediaError> =>
  Effect.gen(function* () {
    const key = Timeline.keyOf(file)
    const hit = Timeline.cached(key)
    if (hit) return hit
    if (!needKeyframes && meta.constantRate === true && meta.startNs !== undefined && meta.frameCount) {
      return Timeline.constant(meta.startNs, meta.frameCount, meta.frameRate)
    }
    yield* Probe.video(file, label) // scans the packets and caches the timeline
    const scanned = Timeline.cached(key)
    if (scanned) return scanned
    return yield* decodeError(label, "no frame timeline")
  })

/** A run of frames decoded by one ffmpeg: it seeks to `from` and keeps `wanted` (ascending, >= from). */
interface Segment {
  readonly from: number
  readonly wanted: ReadonlyArray<number>
}

/** The keyframe at or before frame `i` (0 when keyframes are unknown). */
const keyframeOf = (t: Timeline.Timeline, i: number) => {
  let lo = 0
  let hi = t.keyframes.length - 1
  let best = 0
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (t.keyframes[mid]! <= i) {
      best = t.keyframes[mid]!
      lo = mid + 1
    } else hi = mid - 1
  }
  return best
}

/** Frames skipped before starting a new ffmpeg (with a seek) pays off. */
const SEEK_GAP = 24
/** The most frames a select expression names. */
const MAX_SELECT = 200
/** Contiguous runs longer than this are split at keyframes to decode concurrently. */
const SPLIT_RUN = 600

/**
 * Groups wanted frames (ascending, unique) into segments: a new segment (a new
 * ffmpeg seeking to the next frame) starts where a keyframe lies between two wanted
 * frames more than {@link SEEK_GAP} frames apart; long contiguous runs are cut at
 * keyframes into about `pieces` parts.
 */
const plan = (t: Timeline.Timeline, wanted: ReadonlyArray<number>, pieces: number, seek: boolean): Array<Segment> => {
  const segments: Array<Segment> = []
  let current: Array<number> = []
  for (const w of wanted) {
    const previous = current[current.length - 1]
    // a contiguous run names no frame in a select expression: it grows past MAX_SELECT (one
    // ffmpeg instead of one per MAX_SELECT frames, each paying its start and a seek)
    const continuesRun = previous === w - 1 && previous - current[0]! === current.length - 1
    if (
      previous !== undefined &&
      ((current.length >= MAX_SELECT && !continuesRun) ||
        (seek && keyframeOf(t, w) > previous && w - previous > SEEK_GAP))
    ) {
      segments.push({ from: current[0]!, wanted: current })
      current = []
    }
    current.push(w)
  }
  if (current.length > 0) segments.push({ from: current[0]!, wanted: current })
  if (pieces <= 1 || t.keyframes.length < 2) return segments
  return segments.flatMap((seg) => {
    const n = seg.wanted.length
    const contiguous = seg.wanted[n - 1]! - seg.wanted[0]! === n - 1
    if (!contiguous || n < SPLIT_RUN) return [seg]
    const target = Math.ceil(n / pieces)
    const cuts = t.keyframes.filter((k) => k > seg.wanted[0]! && k <= seg.wanted[n - 1]!)
    const out: Array<Segment> = []
    let start = seg.wanted[0]!
    for (const k of cuts) {
      if (k - start >= target) {
        out.push({ from: start, wanted: Array.from({ length: k - start }, (_, j) => start + j) })
        start = k
      }
    }
    const end = seg.wanted[n - 1]! + 1
    out.push({ from: start, wanted: Array.from({ length: end - start }, (_, j) => start + j) })
    return out
  })
}

/** The most packet ranges one sparse pipeline keeps (its drop expression is evaluated per packet). */
const MAX_RANGES = 48

/**
 * A sparse decoding pipeline: a stream copy seeking to `seekNs` and dropping every
 * packet outside `keep` (inclusive ranges of byte positions in the file) feeds a
 * decoder that keeps the frames `wanted` (ascending frame indices).
 */
interface SparsePipeline {
  readonly seekNs: number | undefined
  readonly keep: ReadonlyArray<readonly [number, number]>
  readonly wanted: ReadonlyArray<number>
  /** How many packets it keeps (decodes). */
  readonly packets: number
  /**
   * The same plan per keyframe run: the keyframe, the frames of the first and last packet
   * kept (decode order), the frame of the packet after the last (none at the end), and
   * the wanted frames.
   */
  readonly runs: ReadonlyArray<SparseRun>
}

interface SparseRun {
  readonly key: number
  readonly first: number
  readonly last: number
  readonly after: number | undefined
  readonly wanted: ReadonlyArray<number>
}

/**
 * Plans sparse decoding from the packets' positions (decode order): the wanted frames are grouped by the
 * keyframe before them; each group keeps the packets from that keyframe to the last
 * packet (in decode order) of any frame showing up to its last wanted frame, so
 * every reference a kept frame needs is kept, and nothing after it. Overlapping
 * ranges merge; the ranges are split into at least `pieces` pipelines (when there
 * are that many), each with at most {@link MAX_RANGES}.
 */
const planSparse = (
  t: Timeline.Timeline & { readonly pos: ReadonlyArray<number> },
  wanted: ReadonlyArray<number>,
  pieces: number
): Array<SparsePipeline> => {
  const n = t.pts.length
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => t.pos[a]! - t.pos[b]!)
  const pos = new Array<number>(n)
  order.forEach((frame, p) => (pos[frame] = p))
  // the last decode position among frames 0..i
  const reach = new Array<number>(n)
  for (let i = 0, m = -1; i < n; i++) reach[i] = m = Math.max(m, pos[i]!)
  const groups: Array<{ from: number; to: number; key: number; wanted: Array<number> }> = []
  for (const w of wanted) {
    const key = keyframeOf(t, w)
    const from = Math.min(pos[key]!, pos[w]!)
    const last = groups[groups.length - 1]
    if (last && from <= last.to + 1) {
      last.to = Math.max(last.to, reach[w]!)
      last.wanted.push(w)
    } else groups.push({ from, to: reach[w]!, key, wanted: [w] })
  }
  const cost = groups.reduce((sum, g) => sum + g.to - g.from + 1, 0)
  const target = Math.max(1, Math.ceil(cost / Math.max(1, pieces)))
  const out: Array<SparsePipeline> = []
  let current: typeof groups = []
  let size = 0
  const flush = () => {
    if (current.length === 0) return
    const key = current[0]!.key
    out.push({
      // half way from the frame before the keyframe: the seek lands on it or an earlier keyframe,
      // whose packets are dropped before the decoder
      seekNs: key > 0 ? Math.floor((t.pts[key - 1]! + t.pts[key]!) / 2) : undefined,
      keep: current.map((g) => [t.pos[order[g.from]!]!, t.pos[order[g.to]!]!] as const),
      wanted: current.flatMap((g) => g.wanted),
      packets: current.reduce((sum, g) => sum + g.to - g.from + 1, 0),
      runs: current.map((g) => ({
        key: g.key,
        first: order[g.from]!,
        last: order[g.to]!,
        after: g.to + 1 < n ? order[g.to + 1]! : undefined,
        wanted: g.wanted
      }))
    })
    current = []
    size = 0
  }
  for (const g of groups) {
    if (current.length > 0 && (size >= target || current.length >= MAX_RANGES)) flush()
    current.push(g)
    size += g.to - g.from + 1
  }
  flush()
  return out
}

/**
 * The sum of expressions for ffmpeg's expression parser, which refuses a flat sum of more
 * than about a hundred terms: nested in parenthesised groups of at most 32.
 */
const anyOf = (terms: ReadonlyArray<string>): string =>
  terms.length <= 32
    ? terms.join("+")
    : anyOf(
        Array.from(
          { length: Math.ceil(terms.length / 32) },
          (_, i) => `(${terms.slice(32 * i, 32 * i + 32).join("+")})`
        )
      )

/** Microseconds as decimal seconds (`-1.500000`), as the concat demuxer reads times. */
const micros = (us: number) => {
  const a = Math.abs(us)
  return `${us < 0 ? "-" : ""}${Math.floor(a / 1e6)}.${String(a % 1e6).padStart(6, "0")}`
}

/** The closest two packet or frame times may be for a time between them to be written in microseconds. */
const MIN_GAP_NS = 4_000

/**
 * A sparse pipeline as one ffmpeg reading the file through a concat list (one entry per
 * keyframe run: `inpoint` seeks to its keyframe, `outpoint` ends it after its last packet
 * in decode order), so no packet outside the runs is read into the decoder and no second
 * process copies packets. Each entry gets its own stretch of the output timeline (a
 * `duration` of twice the video's length), so a frame is picked by its time there even
 * if a seek lands on an earlier keyframe. Only for files with this one stream (the
 * demuxer ends an entry at the first packet of any stream past `outpoint`) and packet
 * times far enough apart; undefined otherwise.
 */
const concatPlan = (
  file: string,
  t: Timeline.Timeline,
  runs: ReadonlyArray<SparseRun>,
  window: (w: number, offsetNs: number) => string
): { readonly list: string; readonly select: string } | undefined => {
  const dts = t.dts
  const n = t.pts.length
  if (t.streams !== 1 || dts === undefined || /[\r\n]/.test(file)) return undefined
  const span = 2 * Math.ceil((t.endNs - t.pts[0]!) / 1000) + 2_000_000
  const lines = ["ffconcat version 1.0"]
  const windows: Array<string> = []
  const quoted = `'${`file:${path.resolve(file)}`.replace(/'/g, "'\\''")}'`
  for (const [i, run] of runs.entries()) {
    if (run.first !== run.key) return undefined
    const a = t.pts[run.key]!
    const b = run.key + 1 < n ? t.pts[run.key + 1]! : t.endNs
    if (b - a < MIN_GAP_NS) return undefined
    const inpoint = Math.round((a + b) / 2000)
    lines.push(`file ${quoted}`, `inpoint ${micros(inpoint)}`)
    if (run.after !== undefined) {
      const [d1, d2] = [dts[run.last]!, dts[run.after]!]
      if (d2 - d1 < MIN_GAP_NS) return undefined
      // with B-frames a keyframe decodes before it shows: an outpoint before the inpoint (refused by the
      // demuxer) becomes the inpoint, which only decodes a few more packets
      lines.push(`outpoint ${micros(Math.max(inpoint, Math.round((d1 + d2) / 2000)))}`)
    }
    lines.push(`duration ${micros(span)}`)
    const offsetNs = (i * span - inpoint) * 1000
    for (const w of run.wanted) windows.push(window(w, offsetNs))
  }
  return { list: `${lines.join("\n")}\n`, select: anyOf(windows) }
}

/** What starting one more ffmpeg costs, as decoding this many pixels (about 20 frames of 1080p). */
const PROCESS_PIXELS = 40_000_000

/**
 * Whether sparse pipelines (`processes` ffmpegs in all) decode less than the segments
 * would (one process each, from the keyframe before each segment to its last frame),
 * counting each process as {@link PROCESS_PIXELS}.
 */
const sparseSaves = (
  t: Timeline.Timeline,
  segments: ReadonlyArray<Segment>,
  pipelines: ReadonlyArray<SparsePipeline>,
  pixels: number,
  processes: number
) => {
  const sequential = segments.reduce(
    (sum, s) => sum + (s.wanted[s.wanted.length - 1]! - (t.keyframes.length ? keyframeOf(t, s.from) : 0) + 1) * pixels,
    segments.length * PROCESS_PIXELS
  )
  const sparse = pipelines.reduce((sum, p) => sum + p.packets * pixels, processes * PROCESS_PIXELS)
  return sparse < sequential
}

/** The filters turning a stored picture the way a display matrix asks (as ffmpeg's autorotate does). */
const rotationFilters = (rotation: number | undefined): Array<string> =>
  rotation === 90
    ? ["transpose=clock"]
    : rotation === 180
      ? ["hflip", "vflip"]
      : rotation === 270
        ? ["transpose=cclock"]
        : []

/**
 * A concat lane: the keyframe runs one ffmpeg reads, one list after another (each of at
 * most {@link MAX_RANGES} runs), and the frames they keep.
 */
interface ConcatList {
  readonly runs: ReadonlyArray<SparseRun>
  readonly wanted: ReadonlyArray<number>
}

/**
 * Deals the keyframe runs round-robin into up to `lanes` lanes (run i to lane i mod
 * lanes), so the lanes decode side by side on one thread each and, read in order, the
 * next run's frames are being decoded while this run's are read; `schedule` names the
 * lane of each wanted frame, in order.
 */
const dealRuns = (
  runs: ReadonlyArray<SparseRun>,
  lanes: number
): { readonly lanes: ReadonlyArray<ReadonlyArray<ConcatList>>; readonly schedule: ReadonlyArray<number> } => {
  const n = Math.max(1, Math.min(lanes, runs.length))
  const byLane = Array.from({ length: n }, () => [] as Array<SparseRun>)
  const schedule: Array<number> = []
  runs.forEach((run, i) => {
    byLane[i % n]!.push(run)
    for (let k = 0; k < run.wanted.length; k++) schedule.push(i % n)
  })
  return {
    lanes: byLane.map((laneRuns) => {
      const lists: Array<ConcatList> = []
      for (let i = 0; i < laneRuns.length; i += MAX_RANGES) {
        const chunk = laneRuns.slice(i, i + MAX_RANGES)
        lists.push({ runs: chunk, wanted: chunk.flatMap((r) => r.wanted) })
      }
      return lists
    }),
    schedule
  }
}

/**
 * Runs every lane at once (each buffering a couple of elements ahead) and streams their
 * elements in the order `schedule` names the lanes; a lane that ends before its turn
 * fails with `ended`.
 */
const interleave = <A, E>(
  lanes: ReadonlyArray<Stream.Stream<A, E>>,
  schedule: ReadonlyArray<number>,
  ended: () => E
): Stream.Stream<A, E> =>
  lanes.length === 1
    ? lanes[0]!
    : Stream.unwrapScoped(
        Effect.gen(function* () {
          const queues = yield* Effect.forEach(lanes, () => Queue.bounded<Take.Take<A, E>>(1))
          yield* Effect.forEach(lanes, (s, i) => Effect.forkScoped(Stream.runIntoQueue(s, queues[i]!)), {
            discard: true
          })
          const held = lanes.map(() => ({ items: [] as ReadonlyArray<A>, at: 0 }))
          const next = (lane: number): Effect.Effect<A, E> =>
            Effect.suspend(() => {
              const h = held[lane]!
              if (h.at < h.items.length) return Effect.succeed(h.items[h.at++]!)
              return Queue.take(queues[lane]!).pipe(
                Effect.flatMap((take) =>
                  Effect.mapError(Take.done(take), (e) => (Option.isSome(e) ? e.value : ended()))
                ),
                Effect.flatMap((chunk) => {
                  held[lane] = { items: Chunk.toReadonlyArray(chunk), at: 0 }
                  return next(lane)
                })
              )
            })
          return Stream.mapEffect(Stream.fromIterable(schedule), next)
        })
      )

/**
 * Streams several streams' elements in order while up to `concurrency` of them run
 * at once (each buffering a couple of elements ahead). Permits are taken in order,
 * so the stream being read always runs.
 */
const ordered = <A, E>(streams: ReadonlyArray<Stream.Stream<A, E>>, concurrency: number): Stream.Stream<A, E> =>
  streams.length === 1 || concurrency <= 1
    ? Stream.concatAll(Chunk.fromIterable(streams))
    : Stream.unwrapScoped(
        Effect.gen(function* () {
          const permits = yield* Effect.makeSemaphore(concurrency)
          const queues = yield* Effect.forEach(streams, () => Queue.bounded<Take.Take<A, E>>(2))
          yield* Effect.forkScoped(
            Effect.forEach(
              streams,
              (s, i) =>
                Effect.zipRight(
                  permits.take(1),
                  Effect.forkScoped(Effect.ensuring(Stream.runIntoQueue(s, queues[i]!), permits.release(1)))
                ),
              { discard: true }
            )
          )
          return Stream.concatAll(Chunk.fromIterable(queues.map((q) => Stream.flattenTake(Stream.fromQueue(q)))))
        })
      )

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
      const orientation = options.orientation ?? "display"
      if (orientation !== "display" && orientation !== "stored") {
        return yield* invalid(`orientation ${String(orientation)} is neither display nor stored`)
      }
      const concurrency = options.concurrency ?? Math.max(1, os.availableParallelism())
      if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
        return yield* invalid(`concurrency ${concurrency} is not a positive integer`)
      }
      for (const t of options.at ?? [])
        if (!Number.isSafeInteger(t)) return yield* invalid(`time ${t} ns is not an integer`)
      const fps = options.fps !== undefined ? yield* toRational(options.fps) : undefined
      const bin = yield* Effect.mapError(Process.ffmpeg, (e) => decodeError(label, e.message, e))
      const sparse = fps !== undefined || options.at !== undefined
      const timeline = yield* Effect.catchTag(
        timelineFor(file, meta, label, sparse || concurrency > 1),
        "UnsupportedMediaError",
        (e) => Effect.fail(decodeError(label, e.message, e))
      )
      const { height, width } = outputSize(sourceSize(meta, orientation), options)
      const frameBytes = width * height * 3
      const onFailure = (exit: Process.Exit) => decodeError(label, `ffmpeg failed: ${Process.summarize(exit.stderr)}`)

      // the frames wanted, ascending and unique; `order` maps them back to the order asked for
      let wanted: Array<number>
      let order: Array<number> | undefined
      if (options.at !== undefined) {
        const indices: Array<number> = []
        for (const t of options.at) {
          const i = Timeline.showing(timeline, t)
          if (i < 0) {
            return yield* decodeError(
              label,
              `no frame at ${Time.formatSeconds(t)} s (frames show from ${Time.formatSeconds(timeline.pts[0] ?? 0)} s to ${Time.formatSeconds(timeline.endNs)} s)`
            )
          }
          indices.push(i)
        }
        wanted = [...new Set(indices)].sort((a, b) => a - b)
        order = indices
      } else if (fps !== undefined) {
        wanted = Timeline.sampled(timeline, fps, options.range)
      } else {
        const { end, first } = options.range
          ? Timeline.framesIn(timeline, options.range)
          : { first: 0, end: timeline.pts.length }
        wanted = Array.from({ length: Math.max(0, end - first) }, (_, j) => first + j)
      }
      if (wanted.length === 0) return Stream.empty

      /** Fails when a decoder gives fewer frames than asked for. */
      const counted =
        (expected: number, from: number) =>
        (frames: Stream.Stream<Buffer, DecodeError>): Stream.Stream<Buffer, DecodeError> =>
          Stream.suspend(() => {
            let count = 0
            const short = Effect.suspend(() =>
              count < expected
                ? Effect.fail(
                    decodeError(
                      label,
                      `ffmpeg gave ${count} of ${expected} frames from ${Time.formatSeconds(timeline.pts[from]!)} s`
                    )
                  )
                : Effect.void
            )
            return Stream.concat(
              Stream.tap(frames, () => Effect.sync(() => count++)),
              Stream.drain(Stream.fromEffect(short))
            )
          })
      /** The decoded pictures (the wanted frames, ascending) as frames, in the order asked for. */
      const deliver = (pictures: Stream.Stream<Buffer, DecodeError>): Stream.Stream<Frame, DecodeError> => {
        const decoded = pictures.pipe(
          Stream.zipWithIndex,
          Stream.map(([data, j]) => ({ data, sourceFrame: wanted[Number(j)]! }))
        )
        const frame = (index: number, f: { data: Buffer; sourceFrame: number }): Frame => ({
          index,
          sourceFrame: f.sourceFrame,
          ptsNs: timeline.pts[f.sourceFrame]!,
          width,
          height,
          data: f.data
        })
        if (order === undefined) return Stream.map(Stream.zipWithIndex(decoded), ([f, i]) => frame(i, f))
        const asked = order
        const ascending = asked.every((x, i) => i === 0 || x >= asked[i - 1]!)
        if (ascending) {
          // the same frame may be asked for several times in a row
          const counts = new Map<number, number>()
          for (const i of asked) counts.set(i, (counts.get(i) ?? 0) + 1)
          return decoded.pipe(
            Stream.flatMap((f) => Stream.fromIterable(Array.from({ length: counts.get(f.sourceFrame)! }, () => f))),
            Stream.zipWithIndex,
            Stream.map(([f, i]) => frame(i, f))
          )
        }
        return Stream.unwrap(
          Effect.map(Stream.runCollect(decoded), (chunk) => {
            const byFrame = new Map(Chunk.toArray(chunk).map((f) => [f.sourceFrame, f]))
            return Stream.fromIterable(asked.map((i, k) => frame(k, byFrame.get(i)!)))
          })
        )
      }
      const containerStart = meta.containerStartNs ?? 0
      const scaled = width !== sourceSize(meta, orientation).width || height !== sourceSize(meta, orientation).height
      const scale = scaled ? [`scale=${width}:${height}:flags=bilinear`] : []
      const pos = timeline.pos
      // `at` seeks per keyframe range; regular `fps` samples decode in one pass
      const segments = plan(timeline, wanted, concurrency, options.at !== undefined)
      const indexed =
        sparse && options.sparse !== false && pos !== undefined && timeline.keyframes.length > 0
          ? { ...timeline, pos }
          : undefined
      const sec = (ns: number) => Time.formatSeconds(ns)
      // each wanted frame is the one whose time (moved by `offsetNs`) falls between the midpoints to its neighbours
      const window = (w: number, offsetNs = 0) => {
        const lo = w > 0 ? Math.floor((timeline.pts[w - 1]! + timeline.pts[w]!) / 2) : timeline.pts[w]! - 1_000_000_000
        const hi = Math.floor((timeline.pts[w]! + Timeline.frameEnd(timeline, w)) / 2)
        return `between(t,${sec(lo + offsetNs)},${sec(hi + offsetNs)})`
      }
      // a single-stream file is read through concat lists of its keyframe runs, dealt round-robin
      // to one lane per core (a single-threaded ffmpeg each, lists of at most MAX_RANGES runs one
      // after another): the lanes decode side by side and, read in order, the next run is being
      // decoded while this one's frames are read. Other files: stream-copy pipelines split the
      // runs across the cores.
      const listed = indexed ? planSparse(indexed, wanted, 1) : []
      const dealt = dealRuns(
        listed.flatMap((p) => p.runs),
        concurrency
      )
      const lanePlans = dealt.lanes.map((lists) => lists.map((l) => concatPlan(file, timeline, l.runs, window)))
      const concat = listed.length > 0 && lanePlans.every((lane) => lane.every((c) => c !== undefined))
      const pipelines = concat ? listed : indexed ? planSparse(indexed, wanted, concurrency) : []
      const processes = concat ? dealt.lanes.reduce((n, lane) => n + lane.length, 0) : 2 * pipelines.length
      if (
        pipelines.length > 0 &&
        (options.sparse === true || sparseSaves(timeline, segments, pipelines, width * height, processes)) &&
        (yield* Process.canDropPackets(bin))
      ) {
        // sparse: only the packets a sample needs reach the decoder, so only the keyframe-to-sample
        // runs are decoded; the decoder keeps the wanted frames by their timestamps. A file with one
        // stream is read through concat lists of the runs; otherwise stream copies with a drop
        // expression by packet position feed decoders, several at once.
        const threads =
          (concat ? dealt.lanes.length > 1 : pipelines.length > 1) && concurrency > 1 ? ["-threads", "1"] : []
        const turn = orientation === "display" ? rotationFilters(meta.rotation) : []
        /**
         * One decoding ffmpeg reading its input from stdin (`format`: the demuxer's arguments):
         * the frames `select` keeps (the `wanted` ones, counted), turned and scaled.
         */
        const decodeStdin = (
          format: ReadonlyArray<string>,
          select: string,
          wanted: ReadonlyArray<number>,
          feed: { readonly stdinText: string } | { readonly input: { command: string; args: Array<string> } }
        ): Stream.Stream<Buffer, DecodeError> =>
          Process.stream({
            command: bin,
            args: [
              ...base,
              ...threads,
              "-copyts",
              "-noautorotate",
              ...format,
              "-i",
              "pipe:0",
              "-vf",
              [`select='${select}'`, ...turn, ...scale].join(","),
              "-frames:v",
              String(wanted.length),
              ...RAW_RGB_OUT
            ],
            ...feed,
            pieceBytes: frameBytes,
            keepPartial: false,
            onFailure
          }).pipe(counted(wanted.length, wanted[0]!))
        const decodeList = (l: ConcatList, listed: { readonly list: string; readonly select: string }) =>
          decodeStdin(["-f", "concat", "-safe", "0", "-protocol_whitelist", "file,pipe"], listed.select, l.wanted, {
            stdinText: listed.list
          })
        const decodePipeline = (p: SparsePipeline): Stream.Stream<Buffer, DecodeError> => {
          // keep a packet when its position in the file is in a range
          const keep = p.keep.map(([lo, hi]) => `between(pos\\,${lo}\\,${hi})`).join("+")
          const copy = [
            ...base,
            "-copyts",
            ...(p.seekNs !== undefined ? ["-ss", seconds(p.seekNs - containerStart)] : []),
            "-i",
            file,
            "-an",
            "-sn",
            "-dn",
            "-c:v",
            "copy",
            "-bsf:v",
            `noise=drop=not(${keep})`,
            "-avoid_negative_ts",
            "disabled",
            "-f",
            "nut",
            "pipe:1"
          ]
          return decodeStdin(["-f", "nut"], anyOf(p.wanted.map((w) => window(w))), p.wanted, {
            input: { command: bin, args: copy }
          })
        }
        if (concat) {
          const lanes = dealt.lanes.map((lists, j) =>
            Stream.concatAll(Chunk.fromIterable(lists.map((l, k) => decodeList(l, lanePlans[j]![k]!))))
          )
          return deliver(
            interleave(lanes, dealt.schedule, () => decodeError(label, "ffmpeg ended a sparse decoding lane early"))
          )
        }
        return deliver(ordered(pipelines.map(decodePipeline), concurrency))
      }
      // several ffmpegs at once each decode on one thread; a single one uses its own threads
      const threads = segments.length > 1 && concurrency > 1 ? ["-threads", "1"] : []
      const decodeSegment = (seg: Segment): Stream.Stream<Buffer, DecodeError> => {
        // seek half way between the frame before `from` and `from`: exact whatever the rounding
        const seek =
          seg.from > 0 ? Math.floor((timeline.pts[seg.from - 1]! + timeline.pts[seg.from]!) / 2) - containerStart : 0
        const last = seg.wanted[seg.wanted.length - 1]!
        const contiguous = last - seg.from === seg.wanted.length - 1
        const filters = [
          ...(contiguous ? [] : [`select='${anyOf(seg.wanted.map((w) => `eq(n,${w - seg.from})`))}'`]),
          ...scale
        ]
        return Process.stream({
          command: bin,
          args: [
            ...base,
            ...threads,
            ...(orientation === "stored" ? ["-noautorotate"] : []),
            ...(seg.from > 0 ? ["-ss", seconds(seek)] : []),
            "-i",
            file,
            ...(filters.length ? ["-vf", filters.join(",")] : []),
            "-frames:v",
            String(seg.wanted.length),
            ...RAW_RGB_OUT
          ],
          pieceBytes: frameBytes,
          keepPartial: false,
          onFailure
        }).pipe(counted(seg.wanted.length, seg.from))
      }
      return deliver(ordered(segments.map(decodeSegment), concurrency))
    })
  )

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
    const timeline = yield* Effect.catchTag(timelineFor(file, meta, label, false), "UnsupportedMediaError", (e) =>
      Effect.fail(decodeError(label, e.message, e))
    )
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
    if (timeline.pts.length === 0) return []
    // showinfo prints integer pts in the filter's time base, counted from the container's start
    const tbMatch = /Parsed_showinfo.*?time_base:\s*(\d+)\/(\d+)/.exec(res.stderr)
    const tb = tbMatch ? { num: Number(tbMatch[1]), den: Number(tbMatch[2]) } : meta.timeBase
    const containerStart = meta.containerStartNs ?? 0
    const start = timeline.pts[0]!
    const end = timeline.endNs
    const cuts: Array<number> = []
    for (const m of res.stderr.matchAll(/Parsed_showinfo.*?\bpts:\s*(-?\d+)\s+pts_time:\s*(-?[0-9.]+)/g)) {
      let ns: number
      if (tb) ns = Timeline.ticksToNs(BigInt(m[1]!), tb)
      else {
        const parsed = Time.decimalSecondsToNs(m[2]!)
        if (Either.isLeft(parsed)) continue
        ns = parsed.right
      }
      // the frame that starts nearest to the reported time
      const t = ns + containerStart
      const i = Timeline.showing(timeline, t)
      if (i < 0) continue
      const next = i + 1 < timeline.pts.length ? timeline.pts[i + 1]! : Infinity
      const at = next - t < t - timeline.pts[i]! ? next : timeline.pts[i]!
      const previous = cuts.length ? cuts[cuts.length - 1]! : start
      if (at > previous && at < end && at - previous >= (options.minShotNs ?? 0)) cuts.push(at)
    }
    const bounds = [start, ...cuts, end]
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
