/**
 * Tagged errors of `@org/amber-compute`. Mesh errors name the algorithms and
 * features at fault; per-entity failures name the feature, its version and the
 * entity; database failures arrive as `StorageError` from `@org/storage`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * The mesh has a cycle; `path` lists the features around it (`a -> b -> c -> a`).
 *
 * @since 0.1.0
 * @category errors
 */
export class MeshCycleError extends Data.TaggedError("MeshCycleError")<{
  readonly path: ReadonlyArray<string>
  readonly message: string
}> {}

/**
 * An algorithm's input feature is produced by no algorithm of the mesh.
 *
 * @since 0.1.0
 * @category errors
 */
export class MeshUnknownInputError extends Data.TaggedError("MeshUnknownInputError")<{
  /** The consumer (`name@version`). */
  readonly feature: string
  /** The input that nothing produces (`name@version`). */
  readonly input: string
  readonly message: string
}> {}

/**
 * Two algorithms produce the same feature version.
 *
 * @since 0.1.0
 * @category errors
 */
export class MeshDuplicateProducerError extends Data.TaggedError("MeshDuplicateProducerError")<{
  readonly feature: string
  readonly algorithms: ReadonlyArray<string>
  readonly message: string
}> {}

/**
 * An input declares a feature whose entity kind, value kind, schema or embedding
 * dimension differs from what its producer produces.
 *
 * @since 0.1.0
 * @category errors
 */
export class MeshInputMismatchError extends Data.TaggedError("MeshInputMismatchError")<{
  readonly feature: string
  readonly input: string
  readonly message: string
}> {}

/**
 * Any error `Mesh.make` can give.
 *
 * @since 0.1.0
 * @category models
 */
export type MeshError = MeshCycleError | MeshUnknownInputError | MeshDuplicateProducerError | MeshInputMismatchError

/**
 * A feature that the mesh does not produce was asked for.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownFeatureError extends Data.TaggedError("UnknownFeatureError")<{
  readonly feature: string
  readonly message: string
}> {}

/**
 * Options that fail their schema (`Algorithm.make`, `Resolver.layer`, `Trigger.make`, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export class ComputeConfigError extends Data.TaggedError("ComputeConfigError")<{
  readonly option: string
  readonly message: string
}> {}

/**
 * The entity source failed (its database, its catalog).
 *
 * @since 0.1.0
 * @category errors
 */
export class SourceError extends Data.TaggedError("SourceError")<{
  readonly operation: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * An entity that the source does not know.
 *
 * @since 0.1.0
 * @category errors
 */
export class EntityNotFoundError extends Data.TaggedError("EntityNotFoundError")<{
  readonly entity: string
  readonly message: string
}> {}

/**
 * An executor could not run a plan's tasks (its job engine failed).
 *
 * @since 0.1.0
 * @category errors
 */
export class ExecutorError extends Data.TaggedError("ExecutorError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A distributed run waited `waitedMs` (the executor's `noWorkersTimeoutMs`) with
 * tasks queued and no live worker; its queued tasks were taken back.
 *
 * @since 0.1.0
 * @category errors
 */
export class NoWorkersError extends Data.TaggedError("NoWorkersError")<{
  readonly run: string
  /** Tasks of the run not settled when it gave up. */
  readonly tasks: number
  readonly waitedMs: number
  readonly message: string
}> {}

interface Failure {
  /** The feature name. */
  readonly feature: string
  readonly version: number
  readonly entity: string
  readonly message: string
}

/**
 * The compute function failed (threw or failed) for an entity.
 *
 * @since 0.1.0
 * @category errors
 */
export class ComputeFailedError extends Data.TaggedError("ComputeFailedError")<
  Failure & { readonly cause?: unknown }
> {}

/**
 * The compute function ran past its algorithm's timeout for an entity.
 *
 * @since 0.1.0
 * @category errors
 */
export class ComputeTimeoutError extends Data.TaggedError("ComputeTimeoutError")<
  Failure & { readonly timeoutMs: number }
> {}

/**
 * The compute function returned a value that fails the feature's schema or dimension (nothing is stored).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOutputError extends Data.TaggedError("InvalidOutputError")<Failure> {}

/**
 * The entity has no asset in a role the algorithm reads.
 *
 * @since 0.1.0
 * @category errors
 */
export class MissingAssetError extends Data.TaggedError("MissingAssetError")<Failure & { readonly role: string }> {}

/**
 * The entity (or a related entity it needs, such as its parent) does not exist in the source.
 *
 * @since 0.1.0
 * @category errors
 */
export class MissingEntityError extends Data.TaggedError("MissingEntityError")<Failure> {}

/**
 * A dependency of the value failed, so it was not computed.
 *
 * @since 0.1.0
 * @category errors
 */
export class BlockedError extends Data.TaggedError("BlockedError")<
  Failure & {
    /** The failed dependency (`name@version` of entity). */
    readonly dependency: { readonly feature: string; readonly version: number; readonly entity: string }
  }
> {}

/**
 * The store failed while reading or writing this value.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreFailedError extends Data.TaggedError("StoreFailedError")<Failure & { readonly cause?: unknown }> {}

/**
 * The failure of one (feature, entity) pair in a run.
 *
 * @since 0.1.0
 * @category models
 */
export type ComputeFailure =
  | ComputeFailedError
  | ComputeTimeoutError
  | InvalidOutputError
  | MissingAssetError
  | MissingEntityError
  | BlockedError
  | StoreFailedError

/**
 * A failure as plain JSON (what `status` and tasks report across processes).
 *
 * @since 0.1.0
 * @category models
 */
export interface FailureJson {
  readonly _tag: ComputeFailure["_tag"]
  readonly feature: string
  readonly version: number
  readonly entity: string
  readonly message: string
  /** `ComputeTimeoutError` only. */
  readonly timeoutMs?: number
  /** `MissingAssetError` only. */
  readonly role?: string
  /** `BlockedError` only. */
  readonly dependency?: { readonly feature: string; readonly version: number; readonly entity: string }
}

/**
 * A failure as plain JSON.
 *
 * @since 0.1.0
 * @category utils
 */
export const failureJson = (failure: ComputeFailure | FailureJson): FailureJson => ({
  _tag: failure._tag,
  feature: failure.feature,
  version: failure.version,
  entity: failure.entity,
  message: failure.message,
  ...("timeoutMs" in failure ? { timeoutMs: failure.timeoutMs } : {}),
  ...("role" in failure ? { role: failure.role } : {}),
  ...("dependency" in failure ? { dependency: failure.dependency } : {})
})

/**
 * A failure from its JSON (as a worker process reports it), as its tagged error class.
 *
 * @since 0.1.0
 * @category utils
 */
export const fromJson = (json: FailureJson & Record<string, unknown>): ComputeFailure => {
  const { _tag, ...fields } = json
  switch (_tag) {
    case "ComputeFailedError":
      return new ComputeFailedError(fields)
    case "ComputeTimeoutError":
      return new ComputeTimeoutError({ ...fields, timeoutMs: Number(json.timeoutMs ?? 0) })
    case "InvalidOutputError":
      return new InvalidOutputError(fields)
    case "MissingAssetError":
      return new MissingAssetError({ ...fields, role: String(json.role ?? "") })
    case "MissingEntityError":
      return new MissingEntityError(fields)
    case "BlockedError":
      return new BlockedError({
        ...fields,
        dependency: (json.dependency as BlockedError["dependency"]) ?? { feature: "", version: 0, entity: "" }
      })
    default:
      return new StoreFailedError(fields)
  }
}
