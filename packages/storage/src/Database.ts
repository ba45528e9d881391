/**
 * The `Database` service: one Kysely instance, the capabilities of its dialect, an
 * Effect-aware transaction combinator and per-package migrations.
 *
 * @since 0.1.0
 */
import { Context, Effect, Exit, FiberRef, Schedule } from "effect"
import type { Queue, Scope } from "effect"
import type { ColumnDefinitionBuilder, Kysely, Transaction } from "kysely"
import { Migrator } from "kysely"
import type { Migration as KyselyMigration } from "kysely"
import { messageOf, StorageError } from "./StorageError.js"

/**
 * What the dialect behind a `Database` can do. Domain code branches on these flags,
 * never on the dialect's name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Capabilities {
  /** A short name for messages and metrics: `"sqlite"` or `"postgres"`. */
  readonly name: string
  /** `insert ... returning` and `update ... returning` are supported. */
  readonly returning: boolean
  /** `select ... for update skip locked` is supported (row-level locking). */
  readonly skipLocked: boolean
  /** `LISTEN`/`NOTIFY` is available for change notifications. */
  readonly listenNotify: boolean
  /** DDL runs inside transactions, so a failed migration leaves nothing behind. */
  readonly transactionalDdl: boolean
  /** Several connections may run queries at the same time (a pool). */
  readonly concurrentConnections: boolean
  /**
   * Each statement is a round trip to a database server (PostgreSQL), not a call into
   * this process (SQLite): work of a few statements that needs no atomicity runs
   * without `BEGIN`/`COMMIT` around it, and a conflict is checked by the statement
   * itself (`on conflict do nothing`) rather than tried under a savepoint.
   */
  readonly roundTripPerStatement: boolean
  /** Column types to use in migrations. */
  readonly types: {
    /** Raw bytes: `blob` or `bytea`. */
    readonly binary: "blob" | "bytea"
    /** JSON documents: `text` or `jsonb`. */
    readonly json: "text" | "jsonb"
    /** 64-bit integers (returned to JavaScript as numbers). */
    readonly bigint: "integer" | "bigint"
    /** 64-bit floats. */
    readonly double: "real" | "double precision"
  }
  /** Turns a column into an auto-incrementing 64-bit primary key. */
  readonly autoIncrementPrimaryKey: (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder
  /**
   * The SQL expression for a JSON column's value at `path` as text, for a `where`
   * (e.g. `json_extract(col, '$."a"')`). `column` must be a trusted identifier; path keys
   * must be 1 to 128 letters, digits, `_`, `:`, `.` or `-`, and any other key throws (so the
   * query fails with a `StorageError` instead of carrying injected SQL).
   */
  readonly jsonText: (column: string, path: ReadonlyArray<string>) => string
  /**
   * The SQL expression for a JSON column's value at `path` as a number, or NULL when
   * the value there is not a JSON number (never a failing cast). Same rules as
   * {@link Capabilities.jsonText}.
   */
  readonly jsonNumber: (column: string, path: ReadonlyArray<string>) => string
  /**
   * A JSON column's value as read back, parsed: SQLite returns the stored text,
   * PostgreSQL's jsonb arrives parsed already (a JSON string stays a string).
   */
  readonly readJson: (value: unknown) => unknown
}

/**
 * One package's migration: `up` receives the database (inside the migration
 * transaction) and the dialect's capabilities.
 *
 * @since 0.1.0
 * @category models
 */
export interface Migration {
  readonly up: (db: Kysely<any>, capabilities: Capabilities) => Promise<void>
  readonly down?: (db: Kysely<any>, capabilities: Capabilities) => Promise<void>
}

/**
 * A package's migrations keyed by name; they run in the order of their names
 * (`"0001_catalog"`, `"0002_derivatives"`, ...).
 *
 * @since 0.1.0
 * @category models
 */
export type Migrations = Readonly<Record<string, Migration>>

/**
 * The shape of the `Database` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The Kysely instance outside any transaction. Prefer {@link Service.use}. */
  readonly kysely: Kysely<any>
  readonly capabilities: Capabilities
  /** Where the database lives, without secrets (for messages). */
  readonly label: string
  /**
   * Runs a query. Inside {@link Service.transaction} the query joins the current
   * transaction. A thrown error becomes a `StorageError` naming `operation`.
   */
  readonly use: <A, DB = any>(operation: string, f: (db: Kysely<DB>) => Promise<A>) => Effect.Effect<A, StorageError>
  /**
   * Runs an effect as one transaction: it commits when the effect succeeds and
   * rolls back when it fails, dies or is interrupted. Nested use joins the outer
   * transaction.
   */
  readonly transaction: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StorageError, R>
  /** True while the current fiber runs inside a transaction of this database. */
  readonly inTransaction: Effect.Effect<boolean>
  /**
   * Applies a package's migrations (one migration table per package). Two
   * processes starting at once do not both migrate; a failing migration leaves
   * nothing behind.
   */
  readonly migrate: (name: string, migrations: Migrations) => Effect.Effect<void, StorageError>
  /**
   * Where {@link Capabilities.listenNotify} holds: listens on a channel on a
   * connection of its own, until the scope closes. The effect succeeds once the
   * `LISTEN` is active; each notification's payload is offered to the queue (the
   * oldest are dropped past 1024 unread). Send with `select pg_notify(channel, payload)`
   * (inside a transaction, delivered on commit). Absent elsewhere: poll instead.
   *
   * @since 0.2.0
   */
  readonly listen?: (channel: string) => Effect.Effect<Queue.Dequeue<string>, StorageError, Scope.Scope>
}

/**
 * The database service. Provide it with `SqliteStorage.layer` (from
 * `@org/storage/sqlite`) or `PostgresStorage.layer` (from `@org/storage/pg`).
 *
 * @since 0.1.0
 * @category tags
 */
export class Database extends Context.Tag("@org/storage/Database")<Database, Service>() {}

/**
 * Builds the service around a Kysely instance. Adapters call this; users normally
 * do not.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromKysely = (options: {
  readonly kysely: Kysely<any>
  readonly capabilities: Capabilities
  readonly label: string
  /** Errors that are worth retrying a migration for (lock contention). */
  readonly isTransient?: (error: unknown) => boolean
  /**
   * The schema that holds the migration tables (PostgreSQL). Pinning it keeps the
   * migrator from mistaking another schema's tables of the same name for its own.
   */
  readonly migrationSchema?: string | undefined
  /** LISTEN support (PostgreSQL). */
  readonly listen?: Service["listen"]
}): Service => {
  const { capabilities, kysely, label } = options
  const current = FiberRef.unsafeMake<Transaction<any> | undefined>(undefined)

  const use = <A, DB = any>(operation: string, f: (db: Kysely<DB>) => Promise<A>) =>
    Effect.flatMap(FiberRef.get(current), (trx) =>
      Effect.tryPromise({
        try: () => f((trx ?? kysely) as Kysely<DB>),
        catch: (cause) => StorageError.fromCause(operation, cause)
      })
    )

  const transaction = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | StorageError, R> =>
    Effect.flatMap(FiberRef.get(current), (outer) =>
      outer !== undefined
        ? self
        : Effect.uninterruptibleMask((restore) =>
            Effect.gen(function* () {
              const trx = yield* Effect.tryPromise({
                try: () => kysely.startTransaction().execute(),
                catch: (cause) => StorageError.fromCause("transaction.begin", cause)
              })
              const rollback = Effect.promise(() =>
                trx
                  .rollback()
                  .execute()
                  .catch(() => undefined)
              )
              const exit = yield* Effect.exit(restore(Effect.locally(self, current, trx)))
              if (Exit.isFailure(exit)) {
                yield* rollback
                return yield* exit
              }
              // a failed commit is rolled back and reported
              yield* Effect.tryPromise({
                try: () => trx.commit().execute(),
                catch: (cause) => StorageError.fromCause("transaction.commit", cause)
              }).pipe(Effect.tapError(() => rollback))
              return exit.value
            })
          )
    )

  const migrate = (name: string, migrations: Migrations): Effect.Effect<void, StorageError> => {
    const table = `migrations_${name.replace(/^@/, "").replace(/[^A-Za-z0-9]+/g, "_")}`
    const provided: Record<string, KyselyMigration> = {}
    for (const [key, m] of Object.entries(migrations)) {
      provided[key] = {
        up: (db) => m.up(db, capabilities),
        ...(m.down ? { down: (db: Kysely<any>) => m.down!(db, capabilities) } : {})
      }
    }
    const migrator = new Migrator({
      db: kysely,
      migrationTableName: table,
      migrationLockTableName: `${table}_lock`,
      ...(options.migrationSchema ? { migrationTableSchema: options.migrationSchema } : {}),
      provider: { getMigrations: async () => provided }
    })
    const operation = `migrate:${name}`
    const once = Effect.tryPromise({
      try: () => migrator.migrateToLatest(),
      catch: (cause) => StorageError.fromCause(operation, cause)
    }).pipe(
      Effect.flatMap(({ error, results }) => {
        if (error === undefined) return Effect.void
        const failed = results?.find((r) => r.status === "Error")?.migrationName
        return Effect.fail(
          new StorageError({
            operation,
            message: `${operation} failed${failed ? ` in migration ${failed}` : ""}: ${messageOf(error)}`,
            cause: error
          })
        )
      })
    )
    const transient = options.isTransient ?? (() => false)
    return once.pipe(
      Effect.retry({
        schedule: Schedule.exponential("20 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(8))),
        while: (e) => transient(e.cause)
      }),
      Effect.withSpan("Database.migrate", { attributes: { package: name } })
    )
  }

  return {
    kysely,
    capabilities,
    label,
    use,
    transaction,
    inTransaction: Effect.map(FiberRef.get(current), (t) => t !== undefined),
    migrate,
    ...(options.listen ? { listen: options.listen } : {})
  }
}

/**
 * Runs a query on the `Database` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const use = <A, DB = any>(
  operation: string,
  f: (db: Kysely<DB>) => Promise<A>
): Effect.Effect<A, StorageError, Database> => Effect.flatMap(Database, (db) => db.use(operation, f))

/**
 * A query runner over a package's declared tables: {@link Service.use} with the
 * database type fixed, so `tsc` checks every table and column name.
 *
 * @since 0.1.0
 * @category models
 */
export type Use<DB> = <A>(operation: string, f: (db: Kysely<DB>) => Promise<A>) => Effect.Effect<A, StorageError>

/**
 * {@link Service.use} over the tables `DB` a package declares beside its migrations.
 *
 * @example
 * ```ts
 * interface Tables { items: { id: string; embedding: Uint8Array } }
 * const use = Database.typed<Tables>(db)
 * use("items.get", (k) => k.selectFrom("items").select("embedding").where("id", "=", id).executeTakeFirst())
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const typed =
  <DB>(db: Service): Use<DB> =>
  <A>(operation: string, f: (db: Kysely<DB>) => Promise<A>) =>
    db.use<A, DB>(operation, f)

/**
 * Runs an effect as one transaction on the `Database` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const transaction = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | StorageError, R | Database> =>
  Effect.flatMap(Database, (db) => db.transaction(self))

/**
 * Applies a package's migrations on the `Database` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const migrate = (name: string, migrations: Migrations): Effect.Effect<void, StorageError, Database> =>
  Effect.flatMap(Database, (db) => db.migrate(name, migrations))
