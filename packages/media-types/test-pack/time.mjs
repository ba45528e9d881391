// The time model and the content-hash schema through the installed @org/media-types, as ESM.
import assert from "node:assert/strict"
import { createHash } from "node:crypto"
import { Either, Schema } from "effect"
import { ContentHash, Time } from "@org/media-types"
import * as TimeEntry from "@org/media-types/Time"

const film = Either.getOrThrow(Time.frameRate(24000, 1001))
const shot = { startNs: Time.frameToNs(24, film), endNs: Time.frameToNs(48, film) }
assert.equal(Either.getOrThrow(Time.nsToTimecode(shot.startNs, film)), "00:00:01:00")
assert.equal(Either.getOrThrow(Time.frameToNanos(1_000_000, film)), 41_708_333_333_334)
assert.equal(Time.overlaps(shot, { startNs: shot.startNs, endNs: shot.startNs }), true)
assert.equal(Time.overlaps(shot, { startNs: shot.endNs, endNs: shot.endNs }), false)
const bad = Time.frameRate(0, 1)
assert.ok(Either.isLeft(bad) && bad.left._tag === "TimeError" && bad.left instanceof TimeEntry.TimeError)
assert.equal(TimeEntry.overlaps, Time.overlaps)

const hash = createHash("sha256").update("bytes").digest("hex")
assert.equal(Schema.is(ContentHash.ContentHash)(hash), true)
assert.equal(Schema.is(ContentHash.ContentHash)(`sha256:${hash}`), false)
console.log("media-types: time model and content hash ok")
