import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { createHash } from "node:crypto"
import { ContentHash } from "@org/media-types"

describe("ContentHash", () => {
  const hash = createHash("sha256").update("poster bytes").digest("hex")

  it("is the bare lowercase hex sha256 of the bytes", () => {
    expect(Either.getOrThrow(Schema.decodeUnknownEither(ContentHash.ContentHash)(hash))).toBe(hash)
    expect(ContentHash.is(hash)).toBe(true)
  })

  it("refuses prefixes, upper case, other lengths and non-strings", () => {
    for (const bad of [`sha256:${hash}`, hash.toUpperCase(), hash.slice(1), `${hash}0`, "", 42, null]) {
      expect(ContentHash.is(bad)).toBe(false)
      const decoded = Schema.decodeUnknownEither(ContentHash.ContentHash)(bad)
      expect(Either.isLeft(decoded)).toBe(true)
    }
    const message = Either.match(Schema.decodeUnknownEither(ContentHash.ContentHash)(`sha256:${hash}`), {
      onLeft: (e) => e.message,
      onRight: () => ""
    })
    expect(message).toContain("64 lowercase hex digits")
  })
})
