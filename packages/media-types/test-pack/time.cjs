// The time model through the installed @org/media-types, as CommonJS.
/* eslint-disable @typescript-eslint/no-require-imports */
const assert = require("node:assert/strict")
const { Either } = require("effect")
const { Time, ContentHash } = require("@org/media-types")

const film = Either.getOrThrow(Time.frameRate(24000, 1001))
assert.equal(Time.frameToNs(24000, film), 1_001_000_000_000)
assert.equal(Time.overlaps({ startNs: 0, endNs: 10 }, { startNs: 10, endNs: 20 }), false)
assert.equal(ContentHash.is("0".repeat(64)), true)

// one class across entry points in CommonJS too (tsup splits shared chunks), so `instanceof` holds
const TimeEntry = require("@org/media-types/Time")
assert.equal(TimeEntry.TimeError, Time.TimeError)
const refused = Time.frameRate(0, 1)
assert.ok(Either.isLeft(refused) && refused.left instanceof TimeEntry.TimeError)
console.log("media-types (cjs): ok")
