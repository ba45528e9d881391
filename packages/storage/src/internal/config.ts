import { Effect, ParseResult, Schema } from "effect"
import { StorageConfigError } from "../StorageError.js"

/** Decodes adapter options, refusing unknown keys, into a frozen object. */
export const decodeOptions = <A, I>(
  adapter: string,
  schema: Schema.Schema<A, I>,
  input: unknown
): Effect.Effect<Readonly<A>, StorageConfigError> =>
  Schema.decodeUnknown(schema, { onExcessProperty: "error", errors: "first" })(input).pipe(
    Effect.map((a) => Object.freeze(a)),
    Effect.mapError((error: ParseResult.ParseError) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const option = issue?.path.map(String).join(".") || "options"
      const message = issue?._tag === "Unexpected" ? `unknown option "${option}"` : (issue?.message ?? error.message)
      return new StorageConfigError({ option, message: `${adapter}: ${message}` })
    })
  )

export const errorCode = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined
