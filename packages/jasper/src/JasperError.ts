/**
 * Tagged errors of `@org/jasper`. Every error names the URI, asset, entity, spec or
 * input it concerns.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * Why a read failed.
 *
 * @since 0.1.0
 * @category models
 */
export type ReadFailure =
  | "unsupported-scheme"
  | "invalid-uri"
  | "outside-root"
  | "not-found"
  | "http-status"
  | "timeout"
  | "too-large"
  | "io"

/**
 * Reading the bytes behind a URI failed: an unknown scheme, a path that escapes the
 * configured roots, a missing file, an http status other than 2xx, a server that
 * does not answer in time, a body over the size limit, or an I/O error.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReadError extends Data.TaggedError("ReadError")<{
  readonly uri: string
  readonly reason: ReadFailure
  readonly message: string
  /** The http status, for `reason: "http-status"`. */
  readonly status?: number
  readonly cause?: unknown
}> {}

/**
 * Media kinds Jasper decodes.
 *
 * @since 0.1.0
 * @category models
 */
export type MediaKind = "image" | "video" | "audio" | "text"

/**
 * Probing or decoding failed: corrupt or truncated media, an empty file, a file
 * that is not what its name says, or a decoder process that failed. `uri` names
 * the source, `assetId` the asset when known.
 *
 * @since 0.1.0
 * @category errors
 */
export class DecodeError extends Data.TaggedError("DecodeError")<{
  readonly uri: string
  readonly media: MediaKind
  readonly stage: "probe" | "decode"
  readonly message: string
  readonly assetId?: string
  readonly cause?: unknown
}> {}

/**
 * An image whose pixel count (from its header) is over the configured limit: a
 * decompression bomb is refused before any pixel is decoded.
 *
 * @since 0.1.0
 * @category errors
 */
export class PixelLimitError extends Data.TaggedError("PixelLimitError")<{
  readonly uri: string
  readonly width: number
  readonly height: number
  readonly limit: number
  readonly message: string
}> {}

/**
 * The media type of a source could not be determined, or its codec or format is
 * not supported.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedMediaError extends Data.TaggedError("UnsupportedMediaError")<{
  readonly uri: string
  readonly message: string
}> {}

/**
 * A subtitle file could not be parsed; `line` is 1-based.
 *
 * @since 0.1.0
 * @category errors
 */
export class SubtitleError extends Data.TaggedError("SubtitleError")<{
  readonly uri: string
  readonly line: number
  readonly message: string
}> {}

export {
  /**
   * A rational, a time, a timecode or a time range was invalid (from `@org/media-types`).
   *
   * @since 0.1.0
   * @category errors
   */
  TimeError
} from "@org/media-types/Time"

/**
 * No asset with this id (or no asset matching a lookup).
 *
 * @since 0.1.0
 * @category errors
 */
export class AssetNotFoundError extends Data.TaggedError("AssetNotFoundError")<{
  readonly assetId: string
  readonly message: string
}> {}

/**
 * No entity with this id.
 *
 * @since 0.1.0
 * @category errors
 */
export class EntityNotFoundError extends Data.TaggedError("EntityNotFoundError")<{
  readonly entityId: string
  readonly message: string
}> {}

/**
 * An input to the catalog failed its schema (an entity, a registration, a label
 * update); `subject` names what was given (an id or a URI).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidInputError extends Data.TaggedError("InvalidInputError")<{
  readonly subject: string
  readonly message: string
}> {}

/**
 * A constructor was given a bad option (an unknown key, a value of the wrong type);
 * `option` names it.
 *
 * @since 0.2.0
 * @category errors
 */
export class JasperConfigError extends Data.TaggedError("JasperConfigError")<{
  readonly option: string
  readonly message: string
}> {}

/**
 * A derivative could not be produced or read back.
 *
 * @since 0.1.0
 * @category errors
 */
export class DerivativeError extends Data.TaggedError("DerivativeError")<{
  readonly spec: string
  readonly specVersion: number
  readonly sha256: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Generating test media failed (a missing ffmpeg, a full disk).
 *
 * @since 0.1.0
 * @category errors
 */
export class TestMediaError extends Data.TaggedError("TestMediaError")<{
  readonly file: string
  readonly message: string
}> {}
