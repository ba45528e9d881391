/**
 * `@org/storage/pg`: the PostgreSQL adapter.
 *
 * @since 0.1.0
 */
export * as PostgresStorage from "./PostgresStorage.js"
