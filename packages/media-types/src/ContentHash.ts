/**
 * The content hash of a media file: the bare lowercase hex SHA-256 of its bytes, 64
 * characters, with no algorithm prefix (`"9f2c…"`, not `"sha256:9f2c…"`). `@org/jasper`
 * stores it as an asset's `sha256`, and `@org/amber-store`'s `Fingerprint.make` accepts
 * exactly it as an asset input.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The pattern of a content hash: 64 lowercase hex digits.
 *
 * @since 0.1.0
 * @category constants
 */
export const pattern: RegExp = /^[0-9a-f]{64}$/

/**
 * Schema of a content hash: a string of 64 lowercase hex digits (a SHA-256, no prefix).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ContentHash = Schema.String.pipe(
  Schema.pattern(pattern, {
    message: () => "must be a content hash: 64 lowercase hex digits (a SHA-256, no prefix)"
  }),
  Schema.annotations({
    identifier: "ContentHash",
    title: "ContentHash",
    description: "The lowercase hex SHA-256 of a file's bytes (64 characters, no prefix)"
  })
)

/**
 * A content hash (64 lowercase hex digits).
 *
 * @since 0.1.0
 * @category models
 */
export type ContentHash = Schema.Schema.Type<typeof ContentHash>

/**
 * True when `u` is a content hash.
 *
 * @since 0.1.0
 * @category predicates
 */
export const is = (u: unknown): u is ContentHash => typeof u === "string" && pattern.test(u)
