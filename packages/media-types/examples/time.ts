/**
 * The time model and the content hash: a frame rate, a shot's range, its timecode, the instant rule.
 * Run: npx tsx time.ts
 */
import { Either } from "effect"
import { ContentHash, Time } from "@org/media-types"

const film = Either.getOrThrow(Time.frameRate(24000, 1001))
const shot = { startNs: Time.frameToNs(24, film), endNs: Time.frameToNs(48, film) }
console.log(Either.getOrThrow(Time.nsToTimecode(shot.startNs, film))) // 00:00:01:00
console.log(Time.overlaps(shot, { startNs: shot.startNs, endNs: shot.startNs })) // true: an instant at the start
console.log(Time.overlaps(shot, { startNs: shot.endNs, endNs: shot.endNs })) // false: the end is exclusive
console.log(ContentHash.is("sha256:9f2c")) // false: bare 64 hex digits only
