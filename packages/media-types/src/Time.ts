/**
 * The one time model of the media packages (`@org/jasper` and `@org/marken` re-export it as their `Time`): exact
 * rational frame rates, times as integer nanoseconds, frame index <-> nanoseconds without float drift, timecodes
 * (including 29.97 and 59.94 drop-frame) and half-open time ranges.
 *
 * **Ranges are half-open**, `[startNs, endNs)`: back-to-back shots `[0, 1000)` and `[1000, 2000)` do not overlap.
 *
 * **The instant rule.** A range with `startNs === endNs` is an *instant*: the point `startNs`, covering its one
 * nanosecond. An instant at `t` overlaps every range that contains `t` (`start <= t < end`) and every instant at `t`,
 * and nothing else; an instant at a range's exclusive end does not overlap it. Its `duration` is 0; as frames it is the
 * one frame showing at `t`. {@link endOf} gives the exclusive end every operation uses (`max(endNs, startNs + 1)`).
 *
 * @since 0.1.0
 */
import { Either, Option, Schema } from "effect"
import { TimeError } from "./MediaTypesError.js"

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  TimeError
} from "./MediaTypesError.js"

/**
 * An exact rational number: integers, `den > 0`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Rational {
  readonly num: number
  readonly den: number
}

/**
 * Schema of a {@link Rational}: integers, `den > 0` (the numerator may be zero or negative).
 *
 * @since 0.1.0
 * @category schemas
 */
export const RationalSchema: Schema.Schema<Rational> = Schema.Struct({
  num: Schema.Int,
  den: Schema.Int.pipe(Schema.positive())
})

/**
 * A point in media time, in integer nanoseconds (non-negative, at most 2^53 - 1 so it
 * stays exact in JSON; `format: int64` in an OpenAPI document).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Nanos = Schema.Int.pipe(
  Schema.nonNegative(),
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER, {
    message: () => `must be at most ${Number.MAX_SAFE_INTEGER} (2^53 - 1, the largest exact integer in JSON)`
  }),
  Schema.annotations({
    identifier: "Nanos",
    title: "Nanos",
    description: "Integer nanoseconds of media time, from 0 to 2^53 - 1",
    jsonSchema: { format: "int64", maximum: Number.MAX_SAFE_INTEGER }
  })
)

/**
 * A frame rate as an exact rational with a positive numerator and denominator, such as
 * `{ num: 24000, den: 1001 }`. Build one with {@link frameRate}; every conversion that takes a
 * rate refuses a rate that is not positive.
 *
 * @since 0.1.0
 * @category models
 */
export const FrameRate = Schema.Struct({
  num: Schema.Int.pipe(Schema.positive()),
  den: Schema.Int.pipe(Schema.positive())
}).pipe(Schema.annotations({ identifier: "FrameRate" }))

/**
 * @since 0.1.0
 * @category models
 */
export type FrameRate = Schema.Schema.Type<typeof FrameRate>

/**
 * A half-open range `[startNs, endNs)` of integer nanoseconds, `startNs <= endNs`; when
 * they are equal the range is an instant (see the instant rule in the module's docs).
 *
 * @since 0.1.0
 * @category models
 */
export const TimeRange = Schema.Struct({ startNs: Nanos, endNs: Nanos }).pipe(
  Schema.filter((r) => r.startNs <= r.endNs || { path: ["endNs"], message: "endNs must not be before startNs" }),
  Schema.annotations({ identifier: "TimeRange" })
)

/**
 * @since 0.1.0
 * @category models
 */
export interface TimeRange {
  readonly startNs: number
  readonly endNs: number
}

/**
 * Schema of a {@link TimeRange} (the same schema as `TimeRange`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const TimeRangeSchema: Schema.Schema<TimeRange> = TimeRange

/**
 * Nanoseconds in a second.
 *
 * @since 0.1.0
 * @category constants
 */
export const NS_PER_SECOND = 1_000_000_000

const NS = 1_000_000_000n

const gcd = (a: bigint, b: bigint): bigint => {
  a = a < 0n ? -a : a
  b = b < 0n ? -b : b
  while (b !== 0n) [a, b] = [b, a % b]
  return a
}

/** Floor division for bigints (rounds towards minus infinity). */
const floorDiv = (a: bigint, b: bigint): bigint => {
  const q = a / b
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q
}

const ceilDiv = (a: bigint, b: bigint): bigint => -floorDiv(-a, b)

const toSafe = (x: bigint, input: string): number => {
  if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new TimeError({ input, message: `${input}: result ${x} is outside the safe integer range` })
  }
  return Number(x)
}

/**
 * Builds a rational in lowest terms (`den > 0`), or fails with `TimeError` when the
 * parts are not integers or `den` is zero.
 *
 * @since 0.1.0
 * @category constructors
 */
export const rational = (num: number, den = 1): Either.Either<Rational, TimeError> => {
  if (!Number.isSafeInteger(num) || !Number.isSafeInteger(den) || den === 0) {
    return Either.left(new TimeError({ input: `${num}/${den}`, message: `${num}/${den} is not a rational number` }))
  }
  const g = gcd(BigInt(num), BigInt(den)) || 1n
  const sign = den < 0 ? -1n : 1n
  return Either.right({ num: Number((sign * BigInt(num)) / g), den: Number((sign * BigInt(den)) / g) })
}

/**
 * Parses `"24000/1001"`, `"25"` or `"25/1"` (ffprobe's notation) into a rational.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseRational = (text: string): Either.Either<Rational, TimeError> => {
  const m = /^\s*(-?\d+)\s*(?:\/\s*(\d+))?\s*$/.exec(text)
  if (!m) return Either.left(new TimeError({ input: text, message: `"${text}" is not a rational such as 24000/1001` }))
  return rational(Number(m[1]), m[2] === undefined ? 1 : Number(m[2]))
}

/**
 * Formats a rational as `"num/den"`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatRational = (r: Rational): string => `${r.num}/${r.den}`

/**
 * A rational as a float (for display only; never use it for frame arithmetic).
 *
 * @since 0.1.0
 * @category conversions
 */
export const toNumber = (r: Rational): number => r.num / r.den

/**
 * True when both rationals denote the same number.
 *
 * @since 0.1.0
 * @category predicates
 */
export const equals = (a: Rational, b: Rational): boolean =>
  BigInt(a.num) * BigInt(b.den) === BigInt(b.num) * BigInt(a.den)

const isFrameRate = (rate: Rational): boolean =>
  typeof rate === "object" &&
  rate !== null &&
  Number.isSafeInteger(rate.num) &&
  Number.isSafeInteger(rate.den) &&
  rate.num > 0 &&
  rate.den > 0

const notARate = (rate: Rational) => {
  const input = typeof rate === "object" && rate !== null ? formatRational(rate) : String(rate)
  return new TimeError({ input, message: `frame rate ${input} is not a positive rational (num > 0, den > 0)` })
}

const checkRate = (rate: FrameRate) => {
  if (!isFrameRate(rate)) throw notARate(rate)
}

/**
 * Builds a frame rate in lowest terms, failing with `TimeError` unless `num` and `den`
 * are positive integers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const frameRate = (num: number, den = 1): Either.Either<FrameRate, TimeError> =>
  isFrameRate({ num, den }) ? rational(num, den) : Either.left(notARate({ num, den }))

const checkFrame = (frame: number, input: string) => {
  if (!Number.isSafeInteger(frame)) {
    throw new TimeError({ input, message: `${input}: ${frame} is not an integer frame index` })
  }
}

/**
 * The start of frame `frame` in integer nanoseconds: the smallest integer
 * nanosecond at or after the exact start `frame * den / num` seconds, so that
 * `nsToFrame(frameToNs(f)) === f` for every frame. Exact for any video length.
 * Throws `TimeError` when the rate is not positive, the frame is not an integer or the
 * result is not a safe integer.
 *
 * @since 0.1.0
 * @category conversions
 */
export const frameToNs = (frame: number, rate: FrameRate): number => {
  checkRate(rate)
  checkFrame(frame, `frame ${frame}`)
  return toSafe(ceilDiv(BigInt(frame) * BigInt(rate.den) * NS, BigInt(rate.num)), `frame ${frame}`)
}

/**
 * The start of frame `index` (a non-negative integer) at `rate` as {@link Nanos}: as
 * {@link frameToNs}, failing with `TimeError` when the rate is not positive, the index is
 * negative or not an integer, or the start is past 2^53 - 1 nanoseconds.
 *
 * @since 0.1.0
 * @category conversions
 */
export const frameToNanos = (index: number, rate: FrameRate): Either.Either<number, TimeError> =>
  Either.try({
    try: () => {
      checkRate(rate)
      if (!Number.isSafeInteger(index) || index < 0) {
        throw new TimeError({ input: String(index), message: `frame ${index} is not a non-negative integer` })
      }
      return frameToNs(index, rate)
    },
    catch: (e) => asTimeError(e, `frame ${index}`)
  })

/**
 * The frame showing at `ns`: `floor(ns * num / (den * 1e9))`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const nsToFrame = (ns: number, rate: FrameRate): number => {
  checkRate(rate)
  return toSafe(floorDiv(BigInt(Math.trunc(ns)) * BigInt(rate.num), BigInt(rate.den) * NS), `${ns} ns`)
}

/**
 * The duration of `frames` frames in nanoseconds (rounded up to a whole nanosecond).
 *
 * @since 0.1.0
 * @category conversions
 */
export const framesDurationNs = (frames: number, rate: FrameRate): number => frameToNs(frames, rate)

/**
 * Seconds (a float, e.g. from ffprobe) to integer nanoseconds, rounded to nearest.
 *
 * @since 0.1.0
 * @category conversions
 */
export const secondsToNs = (seconds: number): number => Math.round(seconds * NS_PER_SECOND)

/**
 * A decimal string of seconds (`"1.001"`, `"12.5"`) to integer nanoseconds, exactly
 * (no float on the way), rounded to nearest nanosecond past 9 decimals.
 *
 * @since 0.1.0
 * @category conversions
 */
export const decimalSecondsToNs = (text: string): Either.Either<number, TimeError> => {
  const m = /^\s*(-)?(\d+)(?:\.(\d+))?\s*$/.exec(text)
  if (!m) return Either.left(new TimeError({ input: text, message: `"${text}" is not a decimal number of seconds` }))
  const frac = (m[3] ?? "").padEnd(10, "0")
  let ns = BigInt(m[2]!) * NS + BigInt(frac.slice(0, 9))
  if (Number(frac[9]) >= 5) ns += 1n
  return Either.right(Number(m[1] ? -ns : ns))
}

/**
 * Nanoseconds to seconds as a float (for display and for decoder command lines).
 *
 * @since 0.1.0
 * @category conversions
 */
export const nsToSeconds = (ns: number): number => ns / NS_PER_SECOND

/**
 * Milliseconds to nanoseconds.
 *
 * @since 0.1.0
 * @category conversions
 */
export const msToNs = (ms: number): number => Math.round(ms * 1_000_000)

/**
 * Nanoseconds as a decimal string of seconds with 9 digits (`"1.001000000"`), exact.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatSeconds = (ns: number): string => {
  const sign = ns < 0 ? "-" : ""
  const a = BigInt(Math.abs(Math.trunc(ns)))
  return `${sign}${a / NS}.${(a % NS).toString().padStart(9, "0")}`
}

// ---------------------------------------------------------------------------
// timecodes

/**
 * True for the NTSC rates that use drop-frame timecode: 30000/1001 and 60000/1001.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isDropFrameRate = (rate: FrameRate): boolean =>
  equals(rate, { num: 30000, den: 1001 }) || equals(rate, { num: 60000, den: 1001 })

const nominal = (rate: FrameRate) => Math.round(rate.num / rate.den)

/**
 * Options of timecode formatting and parsing. `dropFrame` defaults to true for
 * 29.97 and 59.94 and must be false for other rates.
 *
 * @since 0.1.0
 * @category models
 */
export interface TimecodeOptions {
  readonly dropFrame?: boolean
}

const dropFrameFor = (rate: FrameRate, options: TimecodeOptions | undefined, input: string) => {
  const df = options?.dropFrame ?? isDropFrameRate(rate)
  if (df && !isDropFrameRate(rate)) {
    throw new TimeError({
      input,
      message: `drop-frame timecode needs 30000/1001 or 60000/1001, not ${formatRational(rate)}`
    })
  }
  return df
}

const pad = (n: number) => String(n).padStart(2, "0")

const frameToTimecodeUnsafe = (frame: number, rate: FrameRate, options?: TimecodeOptions): string => {
  checkRate(rate)
  if (!Number.isSafeInteger(frame) || frame < 0) {
    throw new TimeError({ input: String(frame), message: `frame ${frame} is not a non-negative integer` })
  }
  const fps = nominal(rate)
  const df = dropFrameFor(rate, options, String(frame))
  let f = frame
  if (df) {
    const drop = fps === 30 ? 2 : 4
    const per10 = fps * 600 - drop * 9
    const perMinute = fps * 60 - drop
    const tens = Math.floor(f / per10)
    const rem = f % per10
    f += drop * 9 * tens + (rem > drop ? drop * Math.floor((rem - drop) / perMinute) : 0)
  }
  const ff = f % fps
  const totalSeconds = Math.floor(f / fps)
  const ss = totalSeconds % 60
  const mm = Math.floor(totalSeconds / 60) % 60
  const hh = Math.floor(totalSeconds / 3600)
  return `${pad(hh)}:${pad(mm)}:${pad(ss)}${df ? ";" : ":"}${pad(ff)}`
}

/**
 * Formats a frame index as a timecode `HH:MM:SS:FF` (non-drop) or `HH:MM:SS;FF`
 * (drop-frame, for 29.97 and 59.94). Hours do not wrap at 24.
 *
 * @since 0.1.0
 * @category timecode
 */
export const frameToTimecode = (
  frame: number,
  rate: FrameRate,
  options?: TimecodeOptions
): Either.Either<string, TimeError> =>
  Either.try({ try: () => frameToTimecodeUnsafe(frame, rate, options), catch: (e) => asTimeError(e, String(frame)) })

/**
 * Parses a timecode into a frame index. `;` (or `.`) before the frames field marks
 * drop-frame; frame labels that drop-frame skips (`;00` and `;01` at minutes not
 * divisible by 10) are refused.
 *
 * @since 0.1.0
 * @category timecode
 */
export const timecodeToFrame = (timecode: string, rate: FrameRate): Either.Either<number, TimeError> =>
  Either.try({
    try: () => {
      checkRate(rate)
      const m = /^(\d{2,}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$/.exec(timecode.trim())
      if (!m) throw new TimeError({ input: timecode, message: `"${timecode}" is not a timecode HH:MM:SS:FF` })
      const [hh, mm, ss, ff] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[5])]
      const df = m[4] === ";" || m[4] === "."
      if (df) dropFrameFor(rate, { dropFrame: true }, timecode)
      const fps = nominal(rate)
      if (mm > 59 || ss > 59 || ff >= fps) {
        throw new TimeError({ input: timecode, message: `timecode ${timecode} has a field out of range at ${fps} fps` })
      }
      const totalMinutes = hh * 60 + mm
      let frame = (totalMinutes * 60 + ss) * fps + ff
      if (df) {
        const drop = fps === 30 ? 2 : 4
        if (ss === 0 && ff < drop && mm % 10 !== 0) {
          throw new TimeError({
            input: timecode,
            message: `timecode ${timecode} does not exist in drop-frame timecode`
          })
        }
        frame -= drop * (totalMinutes - Math.floor(totalMinutes / 10))
      }
      return frame
    },
    catch: (e) => asTimeError(e, timecode)
  })

/**
 * The timecode of the frame showing at `ns`.
 *
 * @since 0.1.0
 * @category timecode
 */
export const nsToTimecode = (
  ns: number,
  rate: FrameRate,
  options?: TimecodeOptions
): Either.Either<string, TimeError> =>
  Either.flatMap(Either.try({ try: () => nsToFrame(ns, rate), catch: (e) => asTimeError(e, `${ns} ns`) }), (frame) =>
    frameToTimecode(frame, rate, options)
  )

/**
 * The start, in nanoseconds, of the frame a timecode names.
 *
 * @since 0.1.0
 * @category timecode
 */
export const timecodeToNs = (timecode: string, rate: FrameRate): Either.Either<number, TimeError> =>
  Either.flatMap(timecodeToFrame(timecode, rate), (frame) =>
    Either.try({ try: () => frameToNs(frame, rate), catch: (e) => asTimeError(e, timecode) })
  )

const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

const asTimeError = (e: unknown, input: string): TimeError =>
  e instanceof TimeError ? e : new TimeError({ input, message: messageOf(e) })

// ---------------------------------------------------------------------------
// ranges

/**
 * Builds a range, failing when an end is not an integer or `startNs > endNs`.
 *
 * @since 0.1.0
 * @category ranges
 */
export const range = (startNs: number, endNs: number): Either.Either<TimeRange, TimeError> =>
  !Number.isSafeInteger(startNs) || !Number.isSafeInteger(endNs) || startNs > endNs
    ? Either.left(
        new TimeError({ input: `[${startNs}, ${endNs})`, message: `[${startNs}, ${endNs}) is not a time range` })
      )
    : Either.right({ startNs, endNs })

/**
 * The length of a range in nanoseconds.
 *
 * @since 0.1.0
 * @category ranges
 */
export const duration = (r: TimeRange): number => r.endNs - r.startNs

/**
 * The exclusive end of a range under the instant rule: `endNs`, or `startNs + 1` for an
 * instant (an instant covers its one nanosecond).
 *
 * @since 0.1.0
 * @category ranges
 */
export const endOf = (r: TimeRange): number => Math.max(r.endNs, r.startNs + 1)

/**
 * True when `ns` lies in `[startNs, endNs)`; an instant contains only its own nanosecond.
 *
 * @since 0.1.0
 * @category ranges
 */
export const contains = (r: TimeRange, ns: number): boolean => ns >= r.startNs && ns < endOf(r)

/**
 * True when two ranges share at least one nanosecond. Touching ends do not overlap; an
 * instant at `t` overlaps the ranges that contain `t` and the instants at `t`.
 *
 * @since 0.1.0
 * @category ranges
 */
export const overlaps = (a: TimeRange, b: TimeRange): boolean => a.startNs < endOf(b) && b.startNs < endOf(a)

/**
 * The common part of two ranges, or `None` when they do not overlap (an instant
 * within a range intersects it in that instant).
 *
 * @since 0.1.0
 * @category ranges
 */
export const intersection = (a: TimeRange, b: TimeRange): Option.Option<TimeRange> =>
  overlaps(a, b)
    ? Option.some({ startNs: Math.max(a.startNs, b.startNs), endNs: Math.min(a.endNs, b.endNs) })
    : Option.none()

/**
 * The frames a range covers: `[first, end)` where `first` is the frame at
 * `startNs` and `end` the first frame starting at or after the range's end
 * ({@link endOf}: an instant covers the one frame showing at it).
 *
 * @since 0.1.0
 * @category ranges
 */
export const rangeToFrames = (r: TimeRange, rate: FrameRate): { readonly first: number; readonly end: number } => {
  const endNs = endOf(r)
  const first = nsToFrame(r.startNs, rate)
  const last = nsToFrame(endNs, rate)
  return { first, end: frameToNs(last, rate) === endNs ? last : last + 1 }
}

/**
 * The range `[frameToNs(first), frameToNs(end))` of frames `first` to `end - 1`.
 *
 * @since 0.1.0
 * @category ranges
 */
export const framesToRange = (first: number, end: number, rate: FrameRate): TimeRange => ({
  startNs: frameToNs(first, rate),
  endNs: frameToNs(end, rate)
})
