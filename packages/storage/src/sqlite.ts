/**
 * `@org/storage/sqlite`: the better-sqlite3 adapter.
 *
 * @since 0.1.0
 */
export * as SqliteStorage from "./SqliteStorage.js"
