/**
 * The SQLite adapter (better-sqlite3): the embedded default. Import it from
 * `@org/storage/sqlite`.
 *
 * @since 0.1.0
 */
import SqliteDatabase from "better-sqlite3"
import { Config, Effect, Layer, Schema } from "effect"
import type { Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Kysely, sql } from "kysely"
import * as Database from "./Database.js"
import { decodeOptions, errorCode, readConfig, safeKey } from "./internal/config.js"
import { ImmediateSqliteDialect, withStatementCache } from "./internal/sqlite.js"
import { StorageConfigError, StorageError } from "./StorageError.js"

/**
 * Options of the SQLite adapter.
 *
 * @since 0.1.0
 * @category models
 */
export const Options = Schema.Struct({
  /** A file path, or `":memory:"` for a private in-memory database. */
  filename: Schema.String.pipe(Schema.nonEmptyString()),
  /** How long a writer waits for another process's lock, in milliseconds (default 5000). */
  busyTimeoutMs: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  /** Open read-only. */
  readonly: Schema.optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Options = Schema.Schema.Encoded<typeof Options>

const jsonPath = (path: ReadonlyArray<string>) => `$${path.map((p) => `."${safeKey(p)}"`).join("")}`

/**
 * The capabilities of SQLite.
 *
 * @since 0.1.0
 * @category models
 */
export const capabilities: Database.Capabilities = Object.freeze({
  name: "sqlite",
  returning: true,
  skipLocked: false,
  listenNotify: false,
  transactionalDdl: true,
  concurrentConnections: false,
  roundTripPerStatement: false,
  types: Object.freeze({ binary: "blob", json: "text", bigint: "integer", double: "real" } as const),
  autoIncrementPrimaryKey: (column) => column.primaryKey().autoIncrement(),
  jsonText: (column, path) => `json_extract(${column}, '${jsonPath(path)}')`,
  readJson: (value) => (typeof value === "string" ? JSON.parse(value) : value),
  jsonNumber: (column, path) =>
    `(case when json_type(${column}, '${jsonPath(path)}') in ('integer', 'real') then json_extract(${column}, '${jsonPath(path)}') end)`
} satisfies Database.Capabilities)

/**
 * Opens a SQLite database as a `Database` service. WAL journal, foreign keys on,
 * busy timeout set. The database closes when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<Database.Service, StorageError | StorageConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const config = yield* decodeOptions("SqliteStorage", Options, options)
    const memory = config.filename === ":memory:"
    if (!memory) {
      const dir = path.dirname(path.resolve(config.filename))
      if (!fs.existsSync(dir)) {
        return yield* new StorageConfigError({
          option: "filename",
          message: `SqliteStorage: folder ${dir} of ${config.filename} does not exist`
        })
      }
    }
    const busy = config.busyTimeoutMs ?? 5000
    const raw = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const db = new SqliteDatabase(config.filename, { timeout: busy, readonly: config.readonly ?? false })
          if (!memory && !config.readonly) db.pragma("journal_mode = WAL")
          db.pragma("foreign_keys = ON")
          db.pragma(`busy_timeout = ${busy}`)
          if (!config.readonly) db.pragma("synchronous = NORMAL")
          return db
        },
        catch: (cause) => StorageError.fromCause("connect", cause)
      }),
      (db) => Effect.sync(() => db.close())
    )
    const kysely = new Kysely<any>({
      dialect: new ImmediateSqliteDialect({ database: withStatementCache(raw) as any })
    })
    yield* Effect.addFinalizer(() => Effect.promise(() => kysely.destroy().catch(() => undefined)))
    const service = Database.fromKysely({
      kysely,
      capabilities,
      label: `sqlite:${config.filename}`,
      isTransient: (e) => {
        const code = errorCode(e)
        return code !== undefined && (code.startsWith("SQLITE_BUSY") || code === "SQLITE_CONSTRAINT_PRIMARYKEY")
      }
    })
    yield* service.use("connect", (db) => sql`select 1`.execute(db))
    return service
  })

/**
 * A layer providing `Database` on a SQLite file (or `":memory:"`).
 *
 * @example
 * ```ts
 * const Storage = SqliteStorage.layer({ filename: "media.db" })
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Database.Database, StorageError | StorageConfigError> =>
  Layer.scoped(Database.Database, make(options))

/**
 * A layer reading its options from `Config` (default: `SQLITE_FILENAME`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<Options> = Config.all({ filename: Config.string("SQLITE_FILENAME") })
): Layer.Layer<Database.Database, StorageError | StorageConfigError> =>
  Layer.scoped(Database.Database, Effect.flatMap(readConfig("sqlite", config), make))
