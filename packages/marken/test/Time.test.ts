import { describe, expect, it } from "@effect/vitest"
import { Time as Shared } from "@org/media-types"
import { Time } from "@org/marken"

describe("marken Time", () => {
  it("is the one time model of @org/media-types (tested there)", () => {
    expect(Time.overlaps).toBe(Shared.overlaps)
    expect(Time.TimeRange).toBe(Shared.TimeRange)
    expect(Time.frameToNanos).toBe(Shared.frameToNanos)
  })
})
