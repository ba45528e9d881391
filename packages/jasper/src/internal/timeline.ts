/**
 * The presentation timeline of a video stream: the time each frame starts showing,
 * in integer nanoseconds on the file's own clock (a stream that starts at 10 s has
 * its first frame at 10 s), read from the packets' timestamps (demuxing only, no
 * decoding). Constant-rate streams get the exact rational times
 * `startNs + frameToNs(i, rate)`; variable-rate streams keep their packets' times.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as Time from "../Time.js"
import * as Process from "./process.js"

/** @internal */
export interface Timeline {
  /** Frame start times in presentation order (strictly increasing). */
  readonly pts: ReadonlyArray<number>
  /** Indices (into `pts`) of the keyframes, ascending. */
  readonly keyframes: ReadonlyArray<number>
  /** Where the last frame stops showing. */
  readonly endNs: number
  readonly constantRate: boolean
  /**
   * The byte position of each frame's packet in the file (aligned with `pts`), when
   * every packet has one and the packets are stored in decode order (positions rising
   * as they are read): ascending `pos` is then decode order. Sparse decoding keeps
   * packets by position.
   */
  readonly pos?: ReadonlyArray<number> | undefined
  /**
   * The decode time of each frame's packet in nanoseconds (aligned with `pts`), when
   * `pos` is known and every packet has one.
   */
  readonly dts?: ReadonlyArray<number> | undefined
  /** How many streams the file holds (all kinds), when scanned from a probe. */
  readonly streams?: number | undefined
}

const NS = 1_000_000_000n

/** `ticks * tb` seconds in nanoseconds, rounded up (as `Time.frameToNs` rounds). */
export const ticksToNs = (ticks: bigint, tb: Time.Rational): number => {
  const num = ticks * BigInt(tb.num) * NS
  const den = BigInt(tb.den)
  const q = num / den
  return Number(num % den !== 0n && num > 0n ? q + 1n : q)
}

/**
 * Builds a timeline from the packets (`pts` in time-base ticks, keyframe flags) in
 * any order, the nominal rate and the stream's end (when known).
 */
export const build = (
  packets: ReadonlyArray<{
    readonly pts: bigint
    readonly dts?: bigint | undefined
    readonly pos?: number | undefined
    readonly key: boolean
  }>,
  tb: Time.Rational,
  rate: Time.Rational,
  streamEndNs: number | undefined
): Timeline => {
  const sorted = [...packets].sort((a, b) => (a.pts < b.pts ? -1 : a.pts > b.pts ? 1 : 0))
  const unique = sorted.filter((p, i) => i === 0 || p.pts !== sorted[i - 1]!.pts)
  let pts = unique.map((p) => ticksToNs(p.pts, tb))
  const keyframes = unique.flatMap((p, i) => (p.key ? [i] : []))
  // packets as read: positions rising and decode times not going back
  const inDecodeOrder = packets.every(
    (p, i) =>
      p.pos !== undefined &&
      (i === 0 ||
        (p.pos > packets[i - 1]!.pos! &&
          (p.dts === undefined || packets[i - 1]!.dts === undefined || p.dts >= packets[i - 1]!.dts!)))
  )
  const pos = inDecodeOrder ? unique.map((p) => p.pos!) : undefined
  const dts = pos && unique.every((p) => p.dts !== undefined) ? unique.map((p) => ticksToNs(p.dts!, tb)) : undefined
  if (pts.length === 0) return { pts, keyframes, endNs: streamEndNs ?? 0, constantRate: true }
  const start = pts[0]!
  // constant rate: every packet within half a tick (+1 ns) of the rational grid
  const tolerance = ticksToNs(1n, tb) / 2 + 1
  const constantRate = pts.every((t, i) => Math.abs(t - (start + Time.frameToNs(i, rate))) <= tolerance)
  if (constantRate) pts = pts.map((_, i) => start + Time.frameToNs(i, rate))
  const last = pts[pts.length - 1]!
  const lastDelta = pts.length > 1 ? last - pts[pts.length - 2]! : Time.frameToNs(1, rate)
  const endNs = constantRate
    ? start + Time.frameToNs(pts.length, rate)
    : streamEndNs !== undefined && streamEndNs > last
      ? streamEndNs
      : last + lastDelta
  return { pts, keyframes, endNs, constantRate, ...(pos ? { pos } : {}), ...(dts ? { dts } : {}) }
}

/** The timeline of a constant-rate stream from its metadata alone (keyframes unknown). */
export const constant = (startNs: number, frames: number, rate: Time.Rational): Timeline => ({
  pts: Array.from({ length: frames }, (_, i) => startNs + Time.frameToNs(i, rate)),
  keyframes: [],
  endNs: startNs + Time.frameToNs(frames, rate),
  constantRate: true
})

/**
 * Parses `ffprobe -show_entries packet=pts,dts,pos,flags -of csv=p=0` output (in the
 * order the packets are read; `pts,flags` is read too); discarded packets are
 * dropped, a missing dts or position is left out.
 */
export const parsePackets = (
  csv: string
): Array<{ pts: bigint; dts?: bigint; pos?: number; key: boolean }> | undefined => {
  const out: Array<{ pts: bigint; dts?: bigint; pos?: number; key: boolean }> = []
  const int = (x: string | undefined) => x !== undefined && /^-?\d+$/.test(x)
  for (const line of csv.split("\n")) {
    const fields = line.trim().split(",")
    const pts = fields[0]
    if (!pts) continue
    if (!int(pts)) return undefined // no timestamps (a raw elementary stream)
    const flags = fields[fields.length - 1]
    if (flags?.includes("D")) continue
    const dts = fields.length >= 4 && int(fields[1]) ? BigInt(fields[1]!) : undefined
    const pos = fields.length >= 4 && int(fields[2]) && Number(fields[2]) >= 0 ? Number(fields[2]) : undefined
    out.push({
      pts: BigInt(pts),
      ...(dts !== undefined ? { dts } : {}),
      ...(pos !== undefined ? { pos } : {}),
      key: flags?.includes("K") ?? false
    })
  }
  return out
}

/** The index of the frame showing at `ns` (the last one starting at or before it), or -1. */
export const showing = (t: Timeline, ns: number): number => {
  if (t.pts.length === 0 || ns < t.pts[0]! || ns >= t.endNs) return -1
  let lo = 0
  let hi = t.pts.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (t.pts[mid]! <= ns) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** When frame `i` stops showing. */
export const frameEnd = (t: Timeline, i: number): number => (i + 1 < t.pts.length ? t.pts[i + 1]! : t.endNs)

/** The frames showing in `[startNs, endNs)`: `[first, end)` (an instant: the frame showing at it). */
export const framesIn = (t: Timeline, range: Time.TimeRange): { first: number; end: number } => {
  const endNs = Time.endOf(range)
  if (range.endNs < range.startNs || t.pts.length === 0) return { first: 0, end: 0 }
  if (range.startNs >= t.endNs || endNs <= t.pts[0]!) return { first: 0, end: 0 }
  const first = showing(t, Math.max(range.startNs, t.pts[0]!))
  let end = first
  while (end < t.pts.length && t.pts[end]! < endNs) end++
  return { first, end }
}

/** The frames showing at the sample times `startNs + k / fps` within `range`, each once, ascending. */
export const sampled = (t: Timeline, fps: Time.Rational, range?: Time.TimeRange): Array<number> => {
  if (t.pts.length === 0) return []
  const start = t.pts[0]!
  const from = Math.max(start, range?.startNs ?? start)
  const to = Math.min(t.endNs, range ? Time.endOf(range) : t.endNs)
  const num = BigInt(fps.den) * NS
  const den = BigInt(fps.num)
  // the first k with start + k / fps >= from
  let k = ((BigInt(from - start) * den + num - 1n) / num) as bigint
  const out: Array<number> = []
  for (;;) {
    const at = start + Number((k * num + den - 1n) / den)
    if (at >= to) break
    const i = showing(t, at)
    if (i >= 0 && out[out.length - 1] !== i) out.push(i)
    k++
  }
  return out
}

/** A small cache of timelines by file (path, size and modification time). */
const cache = new Map<string, Timeline>()

/** The cache key of a local file, or undefined when it cannot be stat'ed. */
export const keyOf = (file: string): string | undefined => {
  try {
    const s = fs.statSync(file)
    return `${file}\u0000${s.size}\u0000${s.mtimeMs}`
  } catch {
    return undefined
  }
}

export const cached = (key: string | undefined): Timeline | undefined => (key ? cache.get(key) : undefined)

export const remember = (key: string | undefined, timeline: Timeline): void => {
  if (!key) return
  cache.delete(key)
  cache.set(key, timeline)
  while (cache.size > 64) cache.delete(cache.keys().next().value!)
}

/**
 * Scans the packets of video stream `index` (demuxing only) into a timeline; the
 * stream's end is `streamEndNs` when known, `streams` how many streams the file has.
 * Cached by file.
 */
export const scan = (
  ffprobe: string,
  file: string,
  index: number,
  tb: Time.Rational,
  rate: Time.Rational,
  streamEndNs: number | undefined,
  streams?: number
): Effect.Effect<Timeline, Error> =>
  Effect.gen(function* () {
    const key = keyOf(file)
    const hit = cached(key)
    if (hit) return hit
    const out = yield* Process.run(
      ffprobe,
      [
        "-v",
        "error",
        "-select_streams",
        String(index),
        "-show_entries",
        "packet=pts,dts,pos,flags",
        "-of",
        "csv=p=0",
        file
      ],
      16 * 1024
    )
    if (out.code !== 0) return yield* Effect.fail(new Error(`ffprobe failed: ${Process.summarize(out.stderr)}`))
    const packets = parsePackets(out.stdout.toString("utf8"))
    const built = packets ? build(packets, tb, rate, streamEndNs) : undefined
    if (!built) return yield* Effect.fail(new Error("the video stream has no timestamps"))
    const timeline = streams !== undefined ? { ...built, streams } : built
    remember(key, timeline)
    return timeline
  })
