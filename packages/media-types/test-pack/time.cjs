// The time model through the installed @org/media-types, as CommonJS.
/* eslint-disable @typescript-eslint/no-require-imports */
const assert = require("node:assert/strict")
const { Either } = require("effect")
const { Time, ContentHash } = require("@org/media-types")

const film = Either.getOrThrow(Time.frameRate(24000, 1001))
assert.equal(Time.frameToNs(24000, film), 1_001_000_000_000)
assert.equal(Time.overlaps({ startNs: 0, endNs: 10 }, { startNs: 10, endNs: 20 }), false)
assert.equal(ContentHash.is("0".repeat(64)), true)
console.log("media-types (cjs): ok")
