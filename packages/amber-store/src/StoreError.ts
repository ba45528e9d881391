/**
 * Tagged errors of `@org/amber-store`. Each names the feature (and, where there is
 * one, the entity) it concerns. Database failures arrive as `StorageError` from
 * `@org/storage`, whose `operation` names the feature too (`amber.get:title.embedding@1`).
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * A feature spec is malformed: an empty name, a version that is not a positive
 * integer, an embedding dimension that is not a positive integer.
 *
 * @since 0.1.0
 * @category errors
 */
export class FeatureSpecError extends Data.TaggedError("FeatureSpecError")<{
  readonly feature: string
  readonly message: string
}> {}

/**
 * A feature name that no spec registered in this store carries (for example in
 * `list({ feature: "nope" })`).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownFeatureError extends Data.TaggedError("UnknownFeatureError")<{
  readonly feature: string
  readonly version?: number
  readonly message: string
}> {}

/**
 * A spec with the same name and version as one already registered, but a different
 * definition (entity kind, value kind, dimension or value schema). Bump the version
 * instead.
 *
 * @since 0.1.0
 * @category errors
 */
export class FeatureMismatchError extends Data.TaggedError("FeatureMismatchError")<{
  readonly feature: string
  readonly version: number
  readonly message: string
}> {}

/**
 * A value (or its key) was refused before anything was written: it fails the
 * feature's schema, an embedding has the wrong dimension or a NaN/infinite
 * component, the entity id is empty.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidValueError extends Data.TaggedError("InvalidValueError")<{
  readonly feature: string
  readonly version: number
  readonly entity: string
  readonly message: string
}> {}

/**
 * A different value was put under a key that already holds a value. Values are
 * immutable: invalidate the old one first, or bump the feature version.
 *
 * @since 0.1.0
 * @category errors
 */
export class ImmutableValueError extends Data.TaggedError("ImmutableValueError")<{
  readonly feature: string
  readonly version: number
  readonly entity: string
  readonly fingerprint: string
  readonly message: string
}> {}

/**
 * A stored value no longer decodes with the feature's schema (the schema changed
 * without a version bump, or the row was edited by hand).
 *
 * @since 0.1.0
 * @category errors
 */
export class CorruptValueError extends Data.TaggedError("CorruptValueError")<{
  readonly feature: string
  readonly version: number
  readonly entity: string
  readonly message: string
}> {}

/**
 * The inputs of a fingerprint cannot be hashed canonically: a non-finite number,
 * a function, a bigint, a class instance, an empty content hash. `path` points at
 * the offending part.
 *
 * @since 0.1.0
 * @category errors
 */
export class FingerprintError extends Data.TaggedError("FingerprintError")<{
  readonly path: string
  readonly message: string
}> {}

/**
 * The store was configured wrongly (a lease that is not a positive integer, ...).
 * `option` names the offending setting.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreConfigError extends Data.TaggedError("StoreConfigError")<{
  readonly option: string
  readonly message: string
}> {}

/**
 * Any error of the store's own making.
 *
 * @since 0.1.0
 * @category errors
 */
export type StoreError =
  | FeatureSpecError
  | UnknownFeatureError
  | FeatureMismatchError
  | InvalidValueError
  | ImmutableValueError
  | CorruptValueError
  | FingerprintError
  | StoreConfigError
