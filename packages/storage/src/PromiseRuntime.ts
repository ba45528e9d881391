/**
 * The machinery behind the Promise entries of the packages (`@org/amber-store/promise`,
 * `@org/jasper/promise`, `@org/marken/promise`): a `ManagedRuntime` over a layer whose
 * calls return Promises that reject with the typed failure itself (the tagged error
 * class, so `instanceof` and `_tag` work), never with a `FiberFailure`; and the
 * storage choice of a Promise entry (`{ sqlite: "media.db" }` or `{ postgres: url }`),
 * whose adapter (and driver) is loaded only when chosen.
 *
 * @since 0.1.0
 */
import { Cause, Effect, Exit, Layer, ManagedRuntime, Schema } from "effect"
import type { Redacted } from "effect"
import type * as Database from "./Database.js"
import { decodeOptions } from "./internal/config.js"
import type { StorageError } from "./StorageError.js"
import { StorageConfigError } from "./StorageError.js"

/**
 * The storage of a Promise entry: a SQLite file (`":memory:"` for a private in-memory
 * database) or a PostgreSQL URL, with the adapter's main options.
 *
 * @since 0.1.0
 * @category models
 */
export type StorageOptions =
  | {
      /** The SQLite file (created when missing), or `":memory:"`. */
      readonly sqlite: string
      /** How long a writer waits for another process's lock, in milliseconds (default 5000). */
      readonly busyTimeoutMs?: number
    }
  | {
      /** `postgres://user@host:port/database` (a `Redacted` keeps the password out of logs). */
      readonly postgres: string | Redacted.Redacted<string>
      /** Connections in the pool (default 10). */
      readonly poolSize?: number
      /** A schema to use (created when missing) instead of `public`. */
      readonly schema?: string
      /** How long to wait for a connection, in milliseconds (default 5000). */
      readonly connectTimeoutMs?: number
    }

/**
 * The keys of {@link StorageOptions}: what {@link splitStorage} takes out of a Promise
 * entry's options.
 *
 * @since 0.1.0
 * @category constants
 */
export const storageKeys: ReadonlyArray<string> = [
  "sqlite",
  "busyTimeoutMs",
  "postgres",
  "poolSize",
  "schema",
  "connectTimeoutMs"
]

/**
 * Splits a Promise entry's options into the storage part and the rest (the package's own options).
 *
 * @since 0.1.0
 * @category constructors
 */
export const splitStorage = <O extends object>(
  options: O
): readonly [storage: Record<string, unknown>, rest: Omit<O, keyof StorageOptions>] => {
  const storage: Record<string, unknown> = {}
  const rest: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(options ?? {})) {
    if (storageKeys.includes(key)) storage[key] = value
    else rest[key] = value
  }
  return [storage, rest as Omit<O, keyof StorageOptions>]
}

const Choice = Schema.Union(
  Schema.Struct({ sqlite: Schema.String, busyTimeoutMs: Schema.optional(Schema.Unknown) }),
  Schema.Struct({
    postgres: Schema.Union(Schema.String, Schema.RedactedFromSelf(Schema.String)),
    poolSize: Schema.optional(Schema.Unknown),
    schema: Schema.optional(Schema.Unknown),
    connectTimeoutMs: Schema.optional(Schema.Unknown)
  })
)

/**
 * The `Database` layer for {@link StorageOptions}. The adapter module (and with it
 * `better-sqlite3` or `pg`) is imported when the layer is built, so an application
 * installs only the driver it uses. Options that are neither, or both, fail with
 * `StorageConfigError` (option `storage`); the adapter checks the rest as its `layer` does.
 *
 * @since 0.1.0
 * @category layers
 */
export const storageLayer = (
  options: StorageOptions
): Layer.Layer<Database.Database, StorageError | StorageConfigError> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const given = options as Record<string, unknown> | undefined
      if (typeof given !== "object" || given === null || ("sqlite" in given && "postgres" in given)) {
        return yield* new StorageConfigError({
          option: "storage",
          message: 'storage: give either { sqlite: "file.db" } or { postgres: "postgres://..." }'
        })
      }
      const choice = yield* decodeOptions("storage", Choice, given).pipe(
        Effect.mapError((e) =>
          "sqlite" in given || "postgres" in given
            ? e
            : new StorageConfigError({
                option: "storage",
                message: 'storage: give either { sqlite: "file.db" } or { postgres: "postgres://..." }'
              })
        )
      )
      if ("sqlite" in choice) {
        const { SqliteStorage } = yield* Effect.promise(() => import("./sqlite.js"))
        const { sqlite, ...rest } = given
        return SqliteStorage.layer({ filename: sqlite as string, ...rest })
      }
      const { PostgresStorage } = yield* Effect.promise(() => import("./pg.js"))
      const { postgres, ...rest } = given
      return PostgresStorage.layer({ url: postgres as string, ...rest })
    })
  )

/**
 * Runs an effect that needs nothing and settles with its outcome: the value, or a
 * rejection with the typed failure itself (a tagged error instance), the defect of a
 * crash, or an `Error` saying the call was interrupted.
 *
 * @since 0.1.0
 * @category running
 */
export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromiseExit(effect).then(settle)

/**
 * The value of an `Exit`, or throws its failure: the typed error itself, else the
 * first defect, else an `Error` for an interruption.
 *
 * @since 0.1.0
 * @category running
 */
export const settle = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "Some") throw failure.value
  const defects = Cause.defects(exit.cause)
  for (const defect of defects) throw defect
  throw new Error(`interrupted: ${Cause.pretty(exit.cause)}`)
}

/**
 * A running set of services behind a Promise API: `run` executes an effect on them,
 * `close` releases them (closing connections, stopping servers) once; calls after
 * `close` reject.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handle<R> {
  readonly run: <A, E>(effect: Effect.Effect<A, E, R>) => Promise<A>
  readonly close: () => Promise<void>
}

/**
 * Builds a layer now (rejecting with its typed failure, e.g. `StorageError` for a
 * server that is down) and returns a {@link Handle} on its services.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = async <R, E>(layer: Layer.Layer<R, E>): Promise<Handle<R>> => {
  const runtime = ManagedRuntime.make(layer)
  try {
    settle(await Effect.runPromiseExit(Effect.asVoid(runtime.runtimeEffect)))
  } catch (error) {
    await runtime.dispose()
    throw error
  }
  let closed: Promise<void> | undefined
  return {
    run: (effect) =>
      closed ? Promise.reject(new Error("this handle is closed")) : runtime.runPromiseExit(effect).then(settle),
    close: () => (closed ??= runtime.dispose())
  }
}
