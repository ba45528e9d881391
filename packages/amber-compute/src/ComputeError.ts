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
export class MeshCycle extends Data.TaggedError("MeshCycle")<{
  readonly path: ReadonlyArray<string>
  readonly message: string
}> {}

/**
 * An algorithm's input feature is produced by no algorithm of the mesh.
 *
 * @since 0.1.0
 * @category errors
 */
export class MeshUnknownInput extends Data.TaggedError("MeshUnknownInput")<{
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
export class MeshDuplicateProducer extends Data.TaggedError("MeshDuplicateProducer")<{
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
export class MeshInputMismatch extends Data.TaggedError("MeshInputMismatch")<{
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
export type MeshError = MeshCycle | MeshUnknownInput | MeshDuplicateProducer | MeshInputMismatch

/**
 * A feature that the mesh does not produce was asked for.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownFeature extends Data.TaggedError("UnknownFeature")<{
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
export class EntityNotFound extends Data.TaggedError("EntityNotFound")<{
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
export class ComputeFailed extends Data.TaggedError("ComputeFailed")<Failure & { readonly cause?: unknown }> {}

/**
 * The compute function ran past its algorithm's timeout for an entity.
 *
 * @since 0.1.0
 * @category errors
 */
export class ComputeTimeout extends Data.TaggedError("ComputeTimeout")<Failure & { readonly timeoutMs: number }> {}

/**
 * The compute function returned a value that fails the feature's schema or dimension (nothing is stored).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOutput extends Data.TaggedError("InvalidOutput")<Failure> {}

/**
 * The entity has no asset in a role the algorithm reads.
 *
 * @since 0.1.0
 * @category errors
 */
export class MissingAsset extends Data.TaggedError("MissingAsset")<Failure & { readonly role: string }> {}

/**
 * The entity (or a related entity it needs, such as its parent) does not exist in the source.
 *
 * @since 0.1.0
 * @category errors
 */
export class MissingEntity extends Data.TaggedError("MissingEntity")<Failure> {}

/**
 * A dependency of the value failed, so it was not computed.
 *
 * @since 0.1.0
 * @category errors
 */
export class Blocked extends Data.TaggedError("Blocked")<
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
export class StoreFailed extends Data.TaggedError("StoreFailed")<Failure & { readonly cause?: unknown }> {}

/**
 * The failure of one (feature, entity) pair in a run.
 *
 * @since 0.1.0
 * @category models
 */
export type ComputeFailure =
  | ComputeFailed
  | ComputeTimeout
  | InvalidOutput
  | MissingAsset
  | MissingEntity
  | Blocked
  | StoreFailed

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
  /** `ComputeTimeout` only. */
  readonly timeoutMs?: number
  /** `MissingAsset` only. */
  readonly role?: string
  /** `Blocked` only. */
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
    case "ComputeFailed":
      return new ComputeFailed(fields)
    case "ComputeTimeout":
      return new ComputeTimeout({ ...fields, timeoutMs: Number(json.timeoutMs ?? 0) })
    case "InvalidOutput":
      return new InvalidOutput(fields)
    case "MissingAsset":
      return new MissingAsset({ ...fields, role: String(json.role ?? "") })
    case "MissingEntity":
      return new MissingEntity(fields)
    case "Blocked":
      return new Blocked({
        ...fields,
        dependency: (json.dependency as Blocked["dependency"]) ?? { feature: "", version: 0, entity: "" }
      })
    default:
      return new StoreFailed(fields)
  }
}
