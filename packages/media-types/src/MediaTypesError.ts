/**
 * The errors of `@org/media-types`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * A rational, a frame rate, a time, a timecode or a time range was invalid; `input`
 * is what was given, `message` says what is wrong with it.
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeError extends Data.TaggedError("TimeError")<{
  readonly input: string
  readonly message: string
}> {}
