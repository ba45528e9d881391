/**
 * The PostgreSQL adapter (pg): for state shared beyond one machine. Import it from
 * `@org/storage/pg`.
 *
 * @since 0.1.0
 */
import { Config, Effect, Layer, Queue, Redacted, Schema } from "effect"
import type { Scope } from "effect"
import { Kysely, PostgresDialect, sql } from "kysely"
import pg from "pg"
import * as Database from "./Database.js"
import { decodeOptions, errorCode, readConfig, safeKey } from "./internal/config.js"
import { messageOf, StorageConfigError, StorageError } from "./StorageError.js"

/**
 * Options of the PostgreSQL adapter.
 *
 * @since 0.1.0
 * @category models
 */
export const Options = Schema.Struct({
  /** `postgres://user@host:port/database`; a `Redacted` value keeps the password out of logs. */
  url: Schema.Union(Schema.String, Schema.RedactedFromSelf(Schema.String)),
  /** Connections in the pool (default 10). */
  poolSize: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** How long to wait for a connection before failing, in milliseconds (default 5000). */
  connectTimeoutMs: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** Client-side limit for one query, in milliseconds (default: none). */
  queryTimeoutMs: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** A schema to use (created when missing) instead of `public`. */
  schema: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/)))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Options = Schema.Schema.Type<typeof Options>

const quotePath = (p: string) => `'${safeKey(p)}'`

/**
 * The capabilities of PostgreSQL.
 *
 * @since 0.1.0
 * @category models
 */
export const capabilities: Database.Capabilities = Object.freeze({
  name: "postgres",
  returning: true,
  skipLocked: true,
  listenNotify: true,
  transactionalDdl: true,
  concurrentConnections: true,
  roundTripPerStatement: true,
  types: Object.freeze({ binary: "bytea", json: "jsonb", bigint: "bigint", double: "double precision" } as const),
  autoIncrementPrimaryKey: (column) => column.primaryKey().generatedByDefaultAsIdentity(),
  jsonText: (column, path) =>
    path.length === 1
      ? `(${column} ->> ${quotePath(path[0]!)})`
      : `(${column} #>> '{${path.map((p) => `"${safeKey(p)}"`).join(",")}}')`,
  readJson: (value) => value,
  jsonNumber: (column, path) => {
    const p = `'{${path.map((k) => `"${safeKey(k)}"`).join(",")}}'`
    return `(case when jsonb_typeof(${column} #> ${p}) = 'number' then (${column} #>> ${p})::double precision end)`
  }
} satisfies Database.Capabilities)

// 64-bit integers come back as numbers (all our counters and timestamps fit in 2^53).
const typeParsers = {
  getTypeParser: (oid: number, format?: "text" | "binary") =>
    oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as "text")
}

const parseUrl = (url: string): Effect.Effect<URL, StorageConfigError> =>
  Effect.try({
    try: () => {
      const u = new URL(url)
      if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") throw new Error(`protocol ${u.protocol}`)
      if (!u.hostname) throw new Error("no host")
      return u
    },
    catch: (e) =>
      new StorageConfigError({
        option: "url",
        message: `PostgresStorage: malformed url (${messageOf(e)}); expected postgres://user@host:port/database`
      })
  })

/**
 * Opens a pool on PostgreSQL as a `Database` service and checks that the server
 * answers. A server that is down fails with a `StorageError` after
 * `connectTimeoutMs`, never a hang. The pool closes when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options | Schema.Schema.Encoded<typeof Options>
): Effect.Effect<Database.Service, StorageError | StorageConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const config = yield* decodeOptions("PostgresStorage", Options as Schema.Schema<Options, any>, options)
    const url = Redacted.isRedacted(config.url) ? Redacted.value(config.url) : config.url
    const parsed = yield* parseUrl(url)
    const connectTimeout = config.connectTimeoutMs ?? 5000
    const pool = new pg.Pool({
      connectionString: url,
      max: config.poolSize ?? 10,
      connectionTimeoutMillis: connectTimeout,
      idleTimeoutMillis: 30_000,
      ...(config.queryTimeoutMs ? { query_timeout: config.queryTimeoutMs } : {}),
      ...(config.schema ? { options: `-c search_path=${config.schema}` } : {}),
      types: typeParsers
    })
    // a client losing its server (idle in the pool, or in the tick it is handed out)
    // must not crash the process: the failing query reports it as a StorageError
    pool.on("error", () => undefined)
    pool.on("connect", (client) => {
      client.on("error", () => undefined)
    })
    const kysely = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
    yield* Effect.addFinalizer(() => Effect.promise(() => kysely.destroy().catch(() => undefined)))
    const label = `postgres://${parsed.hostname}:${parsed.port || 5432}${parsed.pathname}${
      config.schema ? `#${config.schema}` : ""
    }`
    const connect = Effect.tryPromise({
      try: async () => {
        if (config.schema) {
          // concurrent `create schema if not exists` can still collide on the catalog's unique index
          await sql`create schema if not exists ${sql.id(config.schema)}`.execute(kysely).catch((e: unknown) => {
            const code = errorCode(e)
            if (code !== "23505" && code !== "42P06") throw e
          })
        }
        const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(kysely)
        return rows[0]?.schema ?? undefined
      },
      catch: (cause) =>
        new StorageError({
          operation: "connect",
          message: `${label}: connect failed: ${messageOf(cause)}`,
          cause
        })
    }).pipe(
      Effect.timeoutFail({
        duration: connectTimeout + 1000,
        onTimeout: () =>
          new StorageError({ operation: "connect", message: `${label}: no answer within ${connectTimeout} ms` })
      })
    )
    const migrationSchema = yield* connect
    // LISTEN holds a client of the pool for as long as the listener's scope lives
    const listen = (channel: string) =>
      Effect.gen(function* () {
        const queue = yield* Effect.acquireRelease(Queue.sliding<string>(1024), Queue.shutdown)
        const client = yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () => pool.connect(),
            catch: (cause) => StorageError.fromCause(`listen ${channel}`, cause)
          }),
          (c) =>
            Effect.promise(async () => {
              await c.query(`unlisten ${pg.escapeIdentifier(channel)}`).catch(() => undefined)
              c.release(true)
            })
        )
        client.on("notification", (n) => {
          if (n.channel === channel) Queue.unsafeOffer(queue, n.payload ?? "")
        })
        yield* Effect.tryPromise({
          try: () => client.query(`listen ${pg.escapeIdentifier(channel)}`),
          catch: (cause) => StorageError.fromCause(`listen ${channel}`, cause)
        })
        return queue as Queue.Dequeue<string>
      })
    return Database.fromKysely({
      listen,
      kysely,
      capabilities,
      label,
      migrationSchema,
      isTransient: (e) => {
        const code = errorCode(e)
        return code === "40P01" || code === "40001" || code === "23505" || code === "42P07"
      }
    })
  })

/**
 * A layer providing `Database` on PostgreSQL.
 *
 * @example
 * ```ts
 * const Storage = PostgresStorage.layer({ url: "postgres://127.0.0.1:5432/media", poolSize: 10 })
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options | Schema.Schema.Encoded<typeof Options>
): Layer.Layer<Database.Database, StorageError | StorageConfigError> => Layer.scoped(Database.Database, make(options))

/**
 * A layer reading its options from `Config`; the URL is read as a `Redacted`
 * secret (default: `DATABASE_URL`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<Options> = Config.all({ url: Config.redacted("DATABASE_URL") })
): Layer.Layer<Database.Database, StorageError | StorageConfigError> =>
  Layer.scoped(Database.Database, Effect.flatMap(readConfig("postgres", config), make))
