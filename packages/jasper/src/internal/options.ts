import { Effect, ParseResult, Schema } from "effect"
import { JasperConfigError } from "../JasperError.js"

/**
 * Decodes a constructor's options with `schema`, refusing unknown keys, or fails with
 * a `JasperConfigError` naming the first bad option.
 */
export const decodeOptions = <A, I>(
  what: string,
  schema: Schema.Schema<A, I>,
  options: unknown
): Effect.Effect<A, JasperConfigError> =>
  Schema.decodeUnknown(schema, { onExcessProperty: "error", errors: "first" })(options ?? {}).pipe(
    Effect.mapError((error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const option = issue?.path.map(String).join(".") || "options"
      return new JasperConfigError({
        option,
        message: `${what}: ${issue?._tag === "Unexpected" ? `unknown option "${option}"` : `option "${option}" ${issue?.message ?? error.message}`}`
      })
    })
  )
