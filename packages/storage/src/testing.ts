/**
 * `@org/storage/testing`: adapters for conformance suites.
 *
 * @since 0.1.0
 */
export * as StorageTesting from "./StorageTesting.js"
