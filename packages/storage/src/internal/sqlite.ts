import type { DatabaseConnection, DatabaseIntrospector, Dialect, Driver, Kysely, QueryCompiler } from "kysely"
import { CompiledQuery, SqliteAdapter, SqliteDialect, SqliteDriver } from "kysely"
import type { SqliteDialectConfig } from "kysely"

/** SQLite supports transactional DDL; Kysely's adapter plays it safe and says no. */
class Adapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true
  }
}

/**
 * Transactions begin IMMEDIATE: the write lock is taken up front, so two processes
 * writing the same file wait for each other (busy timeout) instead of failing with
 * SQLITE_BUSY when a read transaction is upgraded.
 */
class Driver_ extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"))
  }
}

export class ImmediateSqliteDialect implements Dialect {
  readonly #config: SqliteDialectConfig
  readonly #base: SqliteDialect
  constructor(config: SqliteDialectConfig) {
    this.#config = config
    this.#base = new SqliteDialect(config)
  }
  createDriver(): Driver {
    return new Driver_(this.#config)
  }
  createQueryCompiler(): QueryCompiler {
    return this.#base.createQueryCompiler()
  }
  createAdapter(): SqliteAdapter {
    return new Adapter()
  }
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return this.#base.createIntrospector(db)
  }
}
