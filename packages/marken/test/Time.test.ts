import { describe, expect, it } from "@effect/vitest"
import { Time } from "@org/marken"

describe("marken Time (the model shared with @org/jasper)", () => {
  it("ranges are half-open and an instant covers its nanosecond", () => {
    const shot = { startNs: 1_000, endNs: 2_000 }
    expect(Time.overlaps(shot, { startNs: 2_000, endNs: 3_000 })).toBe(false) // back to back
    expect(Time.overlaps(shot, { startNs: 1_999, endNs: 3_000 })).toBe(true)
    expect(Time.overlaps(shot, { startNs: 1_000, endNs: 1_000 })).toBe(true) // instant at the start
    expect(Time.overlaps(shot, { startNs: 2_000, endNs: 2_000 })).toBe(false) // instant at the end
    expect(Time.overlaps({ startNs: 5, endNs: 5 }, { startNs: 5, endNs: 5 })).toBe(true)
  })

  it("frame starts are exact integers for long videos at 24000/1001", () => {
    const rate = { num: 24000, den: 1001 }
    // frame 1,000,000 starts at 1e6 * 1001 / 24000 s = 41,708.333... s: rounded up to the next nanosecond
    expect(Time.frameToNanos(1_000_000, rate)).toBe(41_708_333_333_334)
    expect(Time.frameToNanos(24_000, rate)).toBe(1_001_000_000_000)
    expect(Time.frameToNanos(0, rate)).toBe(0)
  })
})
