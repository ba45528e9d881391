import { describe, expect, it } from "@effect/vitest"
import { ContentHash, Time as Shared } from "@org/media-types"
import { JasperError, Media, Time } from "@org/jasper"

describe("jasper Time", () => {
  it("is the one time model of @org/media-types (tested there)", () => {
    expect(Time.frameToNs).toBe(Shared.frameToNs)
    expect(Time.overlaps).toBe(Shared.overlaps)
    expect(JasperError.TimeError).toBe(Shared.TimeError)
    expect(Media.Sha256).toBe(ContentHash.ContentHash)
  })
})
