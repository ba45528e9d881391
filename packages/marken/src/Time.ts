/**
 * The time model shared with `@org/jasper`: integer nanoseconds as plain numbers,
 * ranges with `startNs <= endNs`, optional rational frame rates.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A point in media time, in integer nanoseconds (non-negative, at most 2^53 - 1 so it
 * stays exact in JSON; `format: int64` in the OpenAPI document).
 *
 * @since 0.1.0
 * @category models
 */
export const Nanos = Schema.Int.pipe(
  Schema.nonNegative(),
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER, {
    message: () => `must be at most ${Number.MAX_SAFE_INTEGER} (2^53 - 1, the largest exact integer in JSON)`
  }),
  Schema.annotations({
    identifier: "Nanos",
    title: "Nanos",
    description: "Integer nanoseconds of media time, from 0 to 2^53 - 1",
    jsonSchema: { format: "int64", maximum: Number.MAX_SAFE_INTEGER }
  })
)

/**
 * A time range `[startNs, endNs]` in nanoseconds; `startNs <= endNs`.
 *
 * @since 0.1.0
 * @category models
 */
export const TimeRange = Schema.Struct({ startNs: Nanos, endNs: Nanos }).pipe(
  Schema.filter((r) => r.startNs <= r.endNs || { path: ["endNs"], message: "endNs must not be before startNs" }),
  Schema.annotations({ identifier: "TimeRange" })
)

/**
 * @since 0.1.0
 * @category models
 */
export type TimeRange = Schema.Schema.Type<typeof TimeRange>

/**
 * A frame rate as a ratio of integers, e.g. `{ num: 24000, den: 1001 }`.
 *
 * @since 0.1.0
 * @category models
 */
export const FrameRate = Schema.Struct({
  num: Schema.Int.pipe(Schema.positive()),
  den: Schema.Int.pipe(Schema.positive())
}).pipe(Schema.annotations({ identifier: "FrameRate" }))

/**
 * @since 0.1.0
 * @category models
 */
export type FrameRate = Schema.Schema.Type<typeof FrameRate>

/**
 * True when two ranges share at least one instant. Ranges are half-open,
 * `[startNs, endNs)`, as in `@org/jasper`'s time model (back-to-back shots do not
 * overlap); an instant (`startNs === endNs`) covers its one nanosecond.
 *
 * @since 0.1.0
 * @category predicates
 */
export const overlaps = (a: TimeRange, b: TimeRange): boolean => a.startNs < endOf(b) && b.startNs < endOf(a)

/**
 * The exclusive end of a range, an instant counting as one nanosecond.
 *
 * @since 0.1.0
 * @category utils
 */
export const endOf = (r: TimeRange): number => Math.max(r.endNs, r.startNs + 1)

/**
 * The start of frame `index` at `rate` in integer nanoseconds: the smallest
 * nanosecond at or after the exact start, as `@org/jasper`'s `Time.frameToNs`
 * (exact for any length: computed with integers, no float drift).
 *
 * @since 0.1.0
 * @category constructors
 */
export const frameToNanos = (index: number, rate: FrameRate): number => {
  const n = BigInt(index) * BigInt(rate.den) * 1_000_000_000n
  const d = BigInt(rate.num)
  return Number(n / d + (n % d === 0n ? 0n : 1n))
}
