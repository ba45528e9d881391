/**
 * @org/storage: the one place that opens databases.
 *
 * Drivers live behind subpath entries: `@org/storage/sqlite` and `@org/storage/pg`.
 *
 * @since 0.1.0
 */
export * as Database from "./Database.js"
export * as PromiseRuntime from "./PromiseRuntime.js"
export * as StorageError from "./StorageError.js"
export * as Vector from "./Vector.js"
