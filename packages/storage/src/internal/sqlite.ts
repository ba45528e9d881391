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

/** The part of a better-sqlite3 `Database` that Kysely's dialect uses. */
interface PreparingDatabase {
  close(): unknown
  prepare(sql: string): any
}

/**
 * Wraps a better-sqlite3 database so that Kysely's `prepare(sql)` reuses compiled
 * statements (Kysely's driver prepares every query again). Bounded, least recently
 * used first out. Statements are only ever used on this one connection, under
 * Kysely's connection mutex.
 */
export const withStatementCache = (db: PreparingDatabase, size = 256): PreparingDatabase => {
  const cache = new Map<string, unknown>()
  return {
    close: () => db.close(),
    prepare: (sql: string) => {
      const hit = cache.get(sql)
      if (hit !== undefined) {
        cache.delete(sql)
        cache.set(sql, hit)
        return hit
      }
      const stmt = db.prepare(sql)
      cache.set(sql, stmt)
      if (cache.size > size) cache.delete(cache.keys().next().value!)
      return stmt
    }
  }
}
