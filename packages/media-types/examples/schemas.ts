/**
 * The schemas as values and as types, from the package root: decode a record that carries a content hash, a frame
 * rate and a time range.
 * Run: npx tsx schemas.ts
 */
import { createHash } from "node:crypto"
import { Schema } from "effect"
import { ContentHash, Time } from "@org/media-types"

const Shot = Schema.Struct({ asset: ContentHash.ContentHash, rate: Time.FrameRate, range: Time.TimeRange })

const asset: ContentHash.ContentHash = createHash("sha256").update("poster bytes").digest("hex")
const rate: Time.FrameRate = { num: 24000, den: 1001 }
const range: Time.TimeRange = { startNs: 0, endNs: 1_001_000_000 }
const shot = Schema.decodeUnknownSync(Shot)({ asset, rate, range })
console.log(shot.asset.length, Time.formatRational(shot.rate), Time.duration(shot.range)) // 64 24000/1001 1001000000
console.log(Schema.is(ContentHash.ContentHash)(`sha256:${asset}`)) // false: bare 64 hex digits only
