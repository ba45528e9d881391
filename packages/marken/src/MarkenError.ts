/**
 * Tagged errors of `@org/marken`. They are `Schema.TaggedError`s because they cross
 * HTTP: the server answers with them as JSON and the typed client decodes them back.
 *
 * @since 0.1.0
 */
import { HttpApiSchema } from "@effect/platform"
import { Data, Effect, ParseResult, Schema } from "effect"

/**
 * An annotation (or one item of a batch) is invalid: its payload fails the type's
 * schema, a vector has the wrong dimension, a region lies outside `[0,1]`, a time
 * range is inverted. `path` names the failing field (`"payload.score"`,
 * `"items.3.vectors.embedding"`); nothing was written.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidAnnotationError extends Schema.TaggedError<InvalidAnnotationError>()(
  "InvalidAnnotationError",
  {
    path: Schema.String,
    message: Schema.String,
    type: Schema.optional(Schema.String),
    entity: Schema.optional(Schema.String)
  },
  HttpApiSchema.annotations({ status: 400 })
) {}

/**
 * No annotation type is registered under this name and version.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownTypeError extends Schema.TaggedError<UnknownTypeError>()(
  "UnknownTypeError",
  { type: Schema.String, version: Schema.String, path: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/**
 * A type version could not be registered: a minor version that does more than add
 * optional fields, a version registered before with a different schema, a malformed
 * name, version or JSON Schema.
 *
 * @since 0.1.0
 * @category errors
 */
export class IncompatibleTypeError extends Schema.TaggedError<IncompatibleTypeError>()(
  "IncompatibleTypeError",
  { type: Schema.String, version: Schema.String, path: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

/**
 * A query is malformed: an unknown field path, a bad cursor, a condition without a value.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidQueryError extends Schema.TaggedError<InvalidQueryError>()(
  "InvalidQueryError",
  { path: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}

/**
 * No operation with this id exists.
 *
 * @since 0.1.0
 * @category errors
 */
export class OperationNotFoundError extends Schema.TaggedError<OperationNotFoundError>()(
  "OperationNotFoundError",
  { operationId: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

/**
 * The operation is no longer open (finished or cancelled): it takes no more writes.
 *
 * @since 0.1.0
 * @category errors
 */
export class OperationClosedError extends Schema.TaggedError<OperationClosedError>()(
  "OperationClosedError",
  { operationId: Schema.String, status: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

/**
 * No annotation with this id exists.
 *
 * @since 0.1.0
 * @category errors
 */
export class AnnotationNotFoundError extends Schema.TaggedError<AnnotationNotFoundError>()(
  "AnnotationNotFoundError",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

/**
 * The store or the vector index failed (a database error, an unreadable index
 * folder). `operation` names what was attempted.
 *
 * @since 0.1.0
 * @category errors
 */
export class MarkenFailureError extends Schema.TaggedError<MarkenFailureError>()(
  "MarkenFailureError",
  { operation: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}

/**
 * No annotation type version with this name and version is registered (404 of
 * `GET /types/{name}/{version}`).
 *
 * @since 0.2.0
 * @category errors
 */
export class TypeNotFoundError extends Schema.TaggedError<TypeNotFoundError>()(
  "TypeNotFoundError",
  { type: Schema.String, version: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

/**
 * An option of the service, the server or the CLI is wrong (an unknown option, a
 * port out of range, a token without scopes). `option` names it.
 *
 * @since 0.3.0
 * @category errors
 */
export class MarkenConfigError extends Data.TaggedError("MarkenConfigError")<{
  readonly option: string
  readonly message: string
}> {}

/**
 * Decodes options with `schema`, refusing properties it does not name; the first
 * problem is a `MarkenConfigError` naming the option (`what` prefixes the message).
 *
 * @since 0.3.0
 * @category constructors
 */
export const decodeOptions =
  <A, I>(what: string, schema: Schema.Schema<A, I>) =>
  (options: unknown): Effect.Effect<A, MarkenConfigError> =>
    Schema.decodeUnknown(schema, { onExcessProperty: "error", errors: "first" })(options ?? {}).pipe(
      Effect.mapError((error) => {
        const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
        const option = issue?.path.map(String).join(".") || "options"
        return new MarkenConfigError({
          option,
          message: `${what}: ${issue?._tag === "Unexpected" ? `unknown option "${option}"` : `${option}: ${(issue?.message ?? error.message).replace(/\s*\n\s*/g, " ")}`}`
        })
      })
    )
