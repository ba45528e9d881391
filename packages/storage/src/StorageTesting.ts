/**
 * Helpers for conformance suites: the same tests against every adapter (SQLite in
 * memory, a SQLite file, PostgreSQL in a fresh schema). Import from
 * `@org/storage/testing`.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sql } from "kysely"
import * as Database from "./Database.js"
import * as PostgresStorage from "./PostgresStorage.js"
import * as SqliteStorage from "./SqliteStorage.js"
import type { StorageConfigError, StorageError } from "./StorageError.js"

/**
 * The environment variable that holds the PostgreSQL URL for tests.
 *
 * @since 0.1.0
 * @category constants
 */
export const PG_URL_ENV = "ORG_TEST_PG_URL"

/**
 * The PostgreSQL URL for tests, when set.
 *
 * @since 0.1.0
 * @category constants
 */
export const pgUrl: string | undefined = process.env[PG_URL_ENV] || undefined

/**
 * One adapter under test.
 *
 * @since 0.1.0
 * @category models
 */
export interface Adapter {
  readonly name: "sqlite-memory" | "sqlite-file" | "pg"
  /** Why this adapter is skipped, when it is. */
  readonly skip: string | undefined
  /** A fresh, empty database each time the layer is built. */
  readonly layer: Layer.Layer<Database.Database, StorageError | StorageConfigError>
  /** A layer on a shared location (a file or a schema), for tests with several processes. */
  readonly shared: (key: string) => {
    readonly layer: Layer.Layer<Database.Database, StorageError | StorageConfigError>
    readonly location: Record<string, string>
  }
}

const tempDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

/**
 * A temporary SQLite file, removed with its folder when the scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const sqliteFile: Layer.Layer<Database.Database, StorageError | StorageConfigError> = Layer.scoped(
  Database.Database,
  Effect.gen(function* () {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => tempDir("org-storage-")),
      (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
    )
    return yield* SqliteStorage.make({ filename: path.join(dir, "test.db") })
  })
)

/**
 * PostgreSQL in a fresh schema that is dropped when the scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const pgFresh = (url: string): Layer.Layer<Database.Database, StorageError | StorageConfigError> =>
  Layer.scoped(
    Database.Database,
    Effect.gen(function* () {
      const schema = `t_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
      const service = yield* PostgresStorage.make({ url, schema, poolSize: 4 })
      yield* Effect.addFinalizer(() =>
        service
          .use("drop-schema", (db) => sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db))
          .pipe(Effect.ignore)
      )
      return service
    })
  )

/**
 * Every adapter, PostgreSQL skipped (with its reason) when `ORG_TEST_PG_URL` is unset.
 *
 * @since 0.1.0
 * @category constructors
 */
export const adapters = (): ReadonlyArray<Adapter> => {
  const pgSkip = pgUrl ? undefined : `${PG_URL_ENV} is not set: PostgreSQL cases are skipped`
  return [
    {
      name: "sqlite-memory",
      skip: undefined,
      layer: SqliteStorage.layer({ filename: ":memory:" }),
      shared: () => {
        throw new Error("an in-memory SQLite database cannot be shared between processes")
      }
    },
    {
      name: "sqlite-file",
      skip: undefined,
      layer: sqliteFile,
      shared: (key) => {
        const filename = path.join(os.tmpdir(), `org-shared-${key}.db`)
        return { layer: SqliteStorage.layer({ filename }), location: { kind: "sqlite", filename } }
      }
    },
    {
      name: "pg",
      skip: pgSkip,
      layer: pgUrl ? pgFresh(pgUrl) : Layer.die(new Error(pgSkip)),
      shared: (key) => {
        const schema = `s_${key.replace(/[^A-Za-z0-9_]/g, "_")}`.slice(0, 60)
        return {
          layer: PostgresStorage.layer({ url: pgUrl!, schema, poolSize: 4 }),
          location: { kind: "pg", url: pgUrl!, schema }
        }
      }
    }
  ]
}

/**
 * A `Database` layer from a location returned by `Adapter.shared` (for child processes).
 *
 * @since 0.1.0
 * @category layers
 */
export const fromLocation = (
  location: Record<string, string>
): Layer.Layer<Database.Database, StorageError | StorageConfigError> =>
  location.kind === "pg"
    ? PostgresStorage.layer({ url: location.url!, schema: location.schema!, poolSize: 4 })
    : SqliteStorage.layer({ filename: location.filename! })
