// The root namespaces carry the same values as the subpath entries (the schemas included: `ContentHash.ContentHash`,
// `Time.FrameRate`, `Time.TimeRange`), through the installed @org/media-types, as ESM. Their types are checked by
// test:pack's tsc on examples/schemas.ts against the tarball's declarations.
import assert from "node:assert/strict"
import { Schema } from "effect"
import { ContentHash, Time } from "@org/media-types"
import * as ContentHashEntry from "@org/media-types/ContentHash"
import * as TimeEntry from "@org/media-types/Time"

for (const [name, root, entry] of [
  ["ContentHash", ContentHash, ContentHashEntry],
  ["Time", Time, TimeEntry]
]) {
  assert.deepEqual(Object.keys(root).sort(), Object.keys(entry).sort(), `${name}: root namespace and subpath differ`)
  for (const key of Object.keys(entry)) assert.equal(root[key], entry[key], `${name}.${key} differs from the subpath's`)
}
for (const schema of [ContentHash.ContentHash, Time.FrameRate, Time.TimeRange, Time.Nanos]) {
  assert.ok(Schema.isSchema(schema))
}
const hash = "a".repeat(64)
assert.equal(Schema.decodeUnknownSync(ContentHash.ContentHash)(hash), hash)
assert.throws(() => Schema.decodeUnknownSync(ContentHash.ContentHash)(`sha256:${hash}`), /64 lowercase hex digits/)
assert.deepEqual(Schema.decodeUnknownSync(Time.FrameRate)({ num: 25, den: 1 }), { num: 25, den: 1 })
console.log("media-types: root namespaces carry the subpath modules' schemas")
