/**
 * Tagged errors of `@org/storage`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * The message of a thrown value: an `Error`'s (or an error-like object's) `message`,
 * anything else as a string. The one helper for wrapping foreign exceptions (no
 * `cause instanceof Error ? cause.message : String(cause)` written again).
 *
 * @since 0.1.0
 * @category utils
 */
export const messageOf = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message
  if (typeof cause === "object" && cause !== null && "message" in cause) return String(cause.message)
  return String(cause)
}

/**
 * A database operation failed. `operation` names what was attempted (for example
 * `"connect"`, `"migrate:@org/jasper"` or `"catalog.register"`), `cause` carries the
 * driver's error.
 *
 * @since 0.1.0
 * @category errors
 */
export class StorageError extends Data.TaggedError("StorageError")<{
  readonly operation: string
  readonly message: string
  readonly cause?: unknown
}> {
  /**
   * Wraps any thrown value into a `StorageError` for `operation`.
   *
   * @since 0.1.0
   */
  static fromCause(operation: string, cause: unknown): StorageError {
    return new StorageError({ operation, message: `${operation} failed: ${messageOf(cause)}`, cause })
  }
}

/**
 * A storage layer was configured wrongly: an unknown option, a malformed URL, a
 * SQLite file in a folder that does not exist. `option` names the offending setting.
 *
 * @since 0.1.0
 * @category errors
 */
export class StorageConfigError extends Data.TaggedError("StorageConfigError")<{
  readonly option: string
  readonly message: string
}> {}

/**
 * A vector could not be encoded or decoded: wrong length, a byte length that is
 * not a multiple of 4, or a non-finite component where finite ones are required.
 *
 * @since 0.1.0
 * @category errors
 */
export class VectorError extends Data.TaggedError("VectorError")<{
  readonly message: string
  readonly expected?: number
  readonly actual?: number
}> {}
