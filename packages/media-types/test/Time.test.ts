import { describe, expect, it } from "@effect/vitest"
import { Either, Option, Schema } from "effect"
import { Time } from "@org/media-types"

const ntsc = { num: 30000, den: 1001 }
const film = { num: 24000, den: 1001 }
const right = <A, E>(e: Either.Either<A, E>): A => {
  if (Either.isLeft(e)) throw new Error(`expected Right, got ${String(e.left)}`)
  return e.right
}

describe("Time (the one time model of jasper and marken)", () => {
  it("converts frame indices to nanoseconds and back exactly, without drift over long videos", () => {
    expect(Time.frameToNs(1, film)).toBe(41_708_334)
    expect(Time.frameToNs(24_000, film)).toBe(1001 * 1_000_000_000)
    // ten hours of 23.976: a float computation would drift; the rational one is exact
    const frames = 10 * 3600 * 24
    const ns = Time.frameToNs(frames, film)
    expect(ns).toBe(Math.ceil((frames * 1001 * 1e9) / 24000))
    for (const f of [0, 1, 2, 1000, 86_313, 863_136, 10_000_000, 123_456_789]) {
      for (const rate of [film, ntsc, { num: 25, den: 1 }, { num: 60000, den: 1001 }]) {
        const start = Time.frameToNs(f, rate)
        expect(Time.nsToFrame(start, rate)).toBe(f)
        expect(Time.nsToFrame(start - 1, rate)).toBe(f - 1)
        expect(Time.nsToFrame(Time.frameToNs(f + 1, rate) - 1, rate)).toBe(f)
      }
    }
  })

  it("parses and normalizes rationals, refusing a zero denominator", () => {
    expect(right(Time.parseRational("24000/1001"))).toEqual(film)
    expect(right(Time.parseRational("50/2"))).toEqual({ num: 25, den: 1 })
    expect(right(Time.rational(3, -6))).toEqual({ num: -1, den: 2 })
    expect(Either.isLeft(Time.parseRational("1/0"))).toBe(true)
    expect(Either.isLeft(Time.parseRational("abc"))).toBe(true)
    expect(Time.equals({ num: 2, den: 4 }, { num: 1, den: 2 })).toBe(true)
  })

  it("formats and parses non-drop timecodes", () => {
    expect(right(Time.frameToTimecode(0, { num: 25, den: 1 }))).toBe("00:00:00:00")
    expect(right(Time.frameToTimecode(25 * 3661 + 7, { num: 25, den: 1 }))).toBe("01:01:01:07")
    expect(right(Time.timecodeToFrame("01:01:01:07", { num: 25, den: 1 }))).toBe(25 * 3661 + 7)
    // 23.976 counts 24 labels a second
    expect(right(Time.frameToTimecode(24 * 60, film))).toBe("00:01:00:00")
    expect(Either.isLeft(Time.timecodeToFrame("00:00:00:25", { num: 25, den: 1 }))).toBe(true)
  })

  it("handles 29.97 drop-frame timecode (HH:MM:SS;FF)", () => {
    const tc = (f: number) => right(Time.frameToTimecode(f, ntsc))
    expect(tc(0)).toBe("00:00:00;00")
    expect(tc(1799)).toBe("00:00:59;29")
    expect(tc(1800)).toBe("00:01:00;02") // ;00 and ;01 are dropped at minute 1
    expect(tc(17982)).toBe("00:10:00;00") // not dropped at minute 10
    expect(tc(107892)).toBe("01:00:00;00") // one hour of 29.97 = 107892 frames
    for (const f of [0, 1, 1799, 1800, 1801, 17981, 17982, 17983, 107891, 107892, 1_000_000]) {
      expect(right(Time.timecodeToFrame(tc(f), ntsc))).toBe(f)
    }
    expect(Either.isLeft(Time.timecodeToFrame("00:01:00;00", ntsc))).toBe(true)
    expect(Either.isLeft(Time.frameToTimecode(10, { num: 25, dein: 1 } as any))).toBe(true)
    expect(Either.isLeft(Time.frameToTimecode(10, { num: 25, den: 1 }, { dropFrame: true }))).toBe(true)
    // drop-frame timecode tracks wall-clock time: "01:00:00;00" is 3599.9964 s of real time
    expect(right(Time.timecodeToNs("01:00:00;00", ntsc))).toBe(3_599_996_400_000)
    expect(right(Time.nsToTimecode(3_599_996_400_000, ntsc))).toBe("01:00:00;00")
    // 59.94 drops 4
    expect(right(Time.frameToTimecode(3600, { num: 60000, den: 1001 }))).toBe("00:01:00;04")
  })

  it("computes range overlap and intersection with exclusive ends", () => {
    const a = right(Time.range(0, 1_000))
    const b = right(Time.range(500, 1_500))
    const c = right(Time.range(1_000, 2_000))
    expect(Time.overlaps(a, b)).toBe(true)
    expect(Time.overlaps(a, c)).toBe(false)
    expect(Time.intersection(a, b)).toEqual(Option.some({ startNs: 500, endNs: 1_000 }))
    expect(Option.isNone(Time.intersection(a, c))).toBe(true)
    expect(Time.contains(a, 999)).toBe(true)
    expect(Time.contains(a, 1_000)).toBe(false)
    expect(Either.isLeft(Time.range(5, 4))).toBe(true)
    expect(Either.isLeft(Time.range(0.5, 4))).toBe(true)
    expect(Time.rangeToFrames(Time.framesToRange(30, 60, ntsc), ntsc)).toEqual({ first: 30, end: 60 })
  })

  it("converts decimal seconds exactly", () => {
    expect(right(Time.decimalSecondsToNs("1.001"))).toBe(1_001_000_000)
    expect(right(Time.decimalSecondsToNs("0.0417083335"))).toBe(41_708_334)
    expect(Time.formatSeconds(1_001_000_000)).toBe("1.001000000")
    expect(Either.isLeft(Time.decimalSecondsToNs("1e3"))).toBe(true)
  })

  it("applies the instant rule: an instant at t is the point t", () => {
    const shot = { startNs: 1_000, endNs: 2_000 }
    const at = (t: number) => ({ startNs: t, endNs: t })
    expect(Time.overlaps(shot, { startNs: 2_000, endNs: 3_000 })).toBe(false) // back to back
    expect(Time.overlaps(shot, { startNs: 1_999, endNs: 3_000 })).toBe(true)
    expect(Time.overlaps(shot, at(1_000))).toBe(true) // instant at the start
    expect(Time.overlaps(at(1_500), shot)).toBe(true) // symmetric
    expect(Time.overlaps(shot, at(1_999))).toBe(true)
    expect(Time.overlaps(shot, at(2_000))).toBe(false) // instant at the exclusive end
    expect(Time.overlaps(shot, at(999))).toBe(false)
    expect(Time.overlaps(at(5), at(5))).toBe(true)
    expect(Time.overlaps(at(5), at(6))).toBe(false)
    expect(Time.contains(at(5), 5)).toBe(true)
    expect(Time.contains(at(5), 6)).toBe(false)
    expect(Time.duration(at(5))).toBe(0)
    expect(Time.endOf(at(5))).toBe(6)
    expect(Time.endOf(shot)).toBe(2_000)
    expect(Time.intersection(shot, at(1_500))).toEqual(Option.some(at(1_500)))
    expect(Option.isNone(Time.intersection(shot, at(2_000)))).toBe(true)
    // as frames, an instant is the one frame showing at it
    const pal = { num: 25, den: 1 }
    expect(Time.rangeToFrames(at(0), pal)).toEqual({ first: 0, end: 1 })
    expect(Time.rangeToFrames(at(40_000_001), pal)).toEqual({ first: 1, end: 2 })
    expect(Time.rangeToFrames({ startNs: 0, endNs: 40_000_000 }, pal)).toEqual({ first: 0, end: 1 })
  })

  it("refuses frame rates that are not positive", () => {
    expect(right(Time.frameRate(48000, 2002))).toEqual(film)
    for (const [num, den] of [
      [0, 1],
      [-24, 1],
      [24, 0],
      [24, -1],
      [23.976, 1]
    ] as const) {
      expect(Either.isLeft(Time.frameRate(num, den))).toBe(true)
      expect(() => Time.frameToNs(1, { num, den })).toThrow(Time.TimeError)
      expect(Either.isLeft(Time.frameToNanos(1, { num, den }))).toBe(true)
    }
    expect(Either.isLeft(Schema.decodeUnknownEither(Time.FrameRate)({ num: -1, den: 1 }))).toBe(true)
    expect(Either.isRight(Schema.decodeUnknownEither(Time.FrameRate)({ num: 30000, den: 1001 }))).toBe(true)
  })

  it("frameToNanos checks the rate and the bounds", () => {
    expect(right(Time.frameToNanos(1_000_000, film))).toBe(41_708_333_333_334)
    expect(right(Time.frameToNanos(24_000, film))).toBe(1_001_000_000_000)
    expect(right(Time.frameToNanos(0, film))).toBe(0)
    const bad = (e: Either.Either<number, Time.TimeError>) => {
      if (Either.isRight(e)) throw new Error(`expected a TimeError, got ${e.right}`)
      expect(e.left._tag).toBe("TimeError")
      return e.left.message
    }
    expect(bad(Time.frameToNanos(-1, film))).toContain("not a non-negative integer")
    expect(bad(Time.frameToNanos(1.5, film))).toContain("not a non-negative integer")
    expect(bad(Time.frameToNanos(Number.MAX_SAFE_INTEGER, film))).toContain("outside the safe integer range")
    expect(() => Time.frameToNs(0.5, film)).toThrow(Time.TimeError)
  })

  it("decodes time ranges as non-negative integer nanoseconds with startNs <= endNs", () => {
    const decode = Schema.decodeUnknownEither(Time.TimeRange)
    expect(right(decode({ startNs: 5, endNs: 5 }))).toEqual({ startNs: 5, endNs: 5 })
    expect(Either.isLeft(decode({ startNs: 6, endNs: 5 }))).toBe(true)
    expect(Either.isLeft(decode({ startNs: -1, endNs: 5 }))).toBe(true)
    expect(Either.isLeft(decode({ startNs: 0, endNs: 2 ** 53 }))).toBe(true)
    expect(Time.TimeRangeSchema).toBe(Time.TimeRange)
  })
})
