/**
 * The time model, shared with `@org/jasper`: re-exported from `@org/media-types/Time`
 * (integer nanoseconds, half-open time ranges `[startNs, endNs)` and the instant rule,
 * exact rational frame rates, timecodes).
 *
 * @since 0.1.0
 */
export * from "@org/media-types/Time"
