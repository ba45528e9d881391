/**
 * The time model, shared with `@org/marken`: re-exported from `@org/media-types/Time`
 * (exact rational frame rates, integer nanoseconds, timecodes, half-open time ranges
 * and the instant rule).
 *
 * @since 0.1.0
 */
export * from "@org/media-types/Time"
