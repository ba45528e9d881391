import { ConfigError, Effect, ParseResult, Schema } from "effect"
import type { Config } from "effect"
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

/**
 * A JSON key that is safe to splice into SQL text: letters, digits, `_` and `-`.
 * Anything else throws, so a query built from it fails instead of being injected.
 */
export const safeKey = (key: string): string => {
  if (!/^[A-Za-z0-9_:.-]{1,128}$/.test(key)) {
    throw new Error(`JSON key ${JSON.stringify(key)} must be 1 to 128 letters, digits, "_", ":", "." or "-"`)
  }
  return key
}

/** The first path a `ConfigError` names (the missing or invalid variable), if any. */
const configPath = (error: ConfigError.ConfigError): string | undefined => {
  switch (error._op) {
    case "MissingData":
    case "InvalidData":
    case "SourceUnavailable":
    case "Unsupported":
      return error.path.join(".") || undefined
    case "And":
    case "Or":
      return configPath(error.left) ?? configPath(error.right)
  }
}

/**
 * Reads adapter options from `Config`; a missing or malformed setting becomes a `StorageConfigError` naming it
 * (the error every other misconfiguration gives), never a bare `ConfigError`.
 */
export const readConfig = <A>(adapter: string, config: Config.Config<A>): Effect.Effect<A, StorageConfigError> =>
  Effect.mapError(config, (error) => {
    const option = configPath(error) ?? "config"
    const missing = ConfigError.isMissingDataOnly(error)
    return new StorageConfigError({
      option,
      message: missing ? `${adapter}: ${option} is not set` : `${adapter}: ${option}: ${String(error).split("\n")[0]}`
    })
  })
