/**
 * The resolver: walks the mesh recursively from a feature and entities, computes
 * fingerprints bottom-up (asset content hashes, then upstream fingerprints, then
 * parameters), reads what the store has in batches and computes only what is
 * missing, in dependency order, through the `Executor` in context. One entity's
 * failure is a tagged error for that (feature, entity); the others go on.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, ParseResult, type Queue, Schema, type Scope, type Stream } from "effect"
import type { FeatureSpec, FeatureStore } from "@org/amber-store"
import { type Database } from "@org/storage"
import type { StorageError } from "@org/storage"
import {
  ComputeConfigError,
  type ComputeFailure,
  type ExecutorError,
  type FailureJson,
  type NoWorkersError,
  type SourceError,
  type UnknownFeatureError
} from "./ComputeError.js"
import type { EntitySource } from "./EntitySource.js"
import type { Executor, TaskResult } from "./Executor.js"
import * as Internal from "./internal/resolver.js"
import * as State from "./internal/state.js"
import type { Mesh } from "./Mesh.js"
import type { Plan, Task } from "./Plan.js"
import type { RunEvent } from "./RunEvent.js"

/**
 * Options of a resolver.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Options = Schema.Struct({
  /** Most entities per task (default 100). */
  batchSize: Schema.optional(Schema.Int.pipe(Schema.between(1, 1_000_000))),
  /** The prefix of run ids (default `"run"`). */
  runPrefix: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_.:-]{1,100}$/))),
  /**
   * Most entities walked at once by `plan` and `materialize` (default 3,000 for a plan,
   * 10,000 for a materialization): a larger call goes chunk by chunk, so memory stays
   * bounded.
   */
  chunkSize: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000_000))),
  /**
   * Most fingerprints remembered between the runs of this resolver (default
   * 100,000; 0: none). A value whose asset hashes and upstream fingerprints are
   * those of a remembered fingerprint takes it instead of hashing its canonical
   * inputs again: a re-run over stored values (a trigger, a second `materialize`)
   * walks the mesh without re-encoding fingerprints. Plans do not use it.
   */
  fingerprintCache: Schema.optional(Schema.Int.pipe(Schema.between(0, 100_000_000)))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Options = Schema.Schema.Encoded<typeof Options>

const decodeOptions = (options: Options): Effect.Effect<Options, ComputeConfigError> =>
  Schema.decodeUnknown(Options, { onExcessProperty: "error", errors: "first" })(options).pipe(
    Effect.mapError((error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const option = issue?.path.map(String).join(".") || "options"
      return new ComputeConfigError({
        option,
        message: `Resolver: ${issue?._tag === "Unexpected" ? `unknown option "${option}"` : `${option}: ${issue?.message ?? error.message}`}`
      })
    })
  )

/**
 * Errors that stop a whole call (per-entity failures are in the result instead).
 *
 * @since 0.1.0
 * @category models
 */
export type ResolveError =
  | UnknownFeatureError
  | SourceError
  | ExecutorError
  | NoWorkersError
  | FeatureStore.ReadError
  | StorageError.StorageError

/**
 * What a run did.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunResult {
  readonly run: string
  /** The feature asked for (`name@version`). */
  readonly feature: string
  readonly entities: number
  /** (feature, entity) values computed by this run. */
  readonly computed: number
  /** (feature, entity) values found stored. */
  readonly cached: number
  /** The failures, one per (feature, entity). */
  readonly failed: ReadonlyArray<ComputeFailure>
  /** Counts per feature label. */
  readonly features: Readonly<
    Record<string, { readonly computed: number; readonly cached: number; readonly failed: number }>
  >
  readonly ms: number
}

/**
 * The status of one feature over every entity of its kind in the source.
 *
 * @since 0.1.0
 * @category models
 */
export interface FeatureStatus {
  readonly feature: string
  readonly entities: number
  readonly stored: number
  /** Missing or stale. */
  readonly missing: number
  /** Cannot be computed (a missing asset, entity or dependency). */
  readonly blocked: number
  /** Failures recorded by runs (and not fixed since). */
  readonly failed: number
  readonly lastError: (FailureJson & { readonly at: number; readonly run: string }) | undefined
}

/**
 * A failure recorded in the database.
 *
 * @since 0.1.0
 * @category models
 */
export type FailureRecord = State.FailureRecord

/**
 * Options of `runTask`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunTaskOptions {
  /** The run the task belongs to (default: a new run id). */
  readonly run?: string
  /**
   * The task comes from a plan of `run` (an executor's task): its entities were
   * missing when the run was planned, so their values are claimed at once instead of
   * read first (a value stored since is still found by the claim).
   */
  readonly planned?: boolean
  /** The feature had no failure recorded when the run was planned: there is none to clear. */
  readonly clean?: boolean
}

/**
 * The shape of the `Resolver` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly mesh: Mesh<any>
  /** What materializing would do, per feature and entity; computes nothing. */
  readonly plan: (
    feature: string | FeatureSpec.FeatureSpec<any>,
    entities: ReadonlyArray<string>
  ) => Effect.Effect<Plan, ResolveError>
  /** Computes what is missing for `feature` on `entities` (and what it needs), through the executor. */
  readonly materialize: (
    feature: string | FeatureSpec.FeatureSpec<any>,
    entities: ReadonlyArray<string>,
    options?: { readonly batchSize?: number; readonly run?: string }
  ) => Effect.Effect<RunResult, ResolveError>
  /**
   * Computes one feature for a batch of entities, first ensuring its inputs are
   * stored (computing missing ones here): the unit of work of every executor.
   */
  readonly runTask: (task: Task, options?: RunTaskOptions) => Effect.Effect<TaskResult, ResolveError>
  /** Per feature (default: all of the mesh): stored, missing, blocked, failed and the last error. */
  readonly status: (
    features?: ReadonlyArray<string | FeatureSpec.FeatureSpec<any>>
  ) => Effect.Effect<ReadonlyArray<FeatureStatus>, ResolveError>
  /** The failures recorded for a feature (or all), oldest first. */
  readonly failures: (
    feature?: string | FeatureSpec.FeatureSpec<any>
  ) => Effect.Effect<ReadonlyArray<FailureRecord>, UnknownFeatureError | StorageError.StorageError>
  /** A subscription to the events of every run from now on. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<RunEvent>, never, Scope.Scope>
  /** The events of every run, from when the stream starts. */
  readonly events: Stream.Stream<RunEvent>
  /** The durable position of a named cursor (0 when new). */
  readonly cursor: (name: string) => Effect.Effect<number, StorageError.StorageError>
  /** Moves a named cursor. */
  readonly setCursor: (name: string, position: number) => Effect.Effect<void, StorageError.StorageError>
}

/**
 * The resolver service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Resolver extends Context.Tag("@org/amber-compute/Resolver")<Resolver, Service>() {}

/**
 * Builds a resolver whose failures and cursors live in the `Database` in context
 * (migrations `amber-compute`), so `status`, re-runs and triggers work across processes.
 * A bad or unknown option fails with `ComputeConfigError` naming it, before the
 * database is touched.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R>(
  mesh: Mesh<R>,
  options: Options = {}
): Effect.Effect<
  Service,
  StorageError.StorageError | ComputeConfigError,
  R | FeatureStore.FeatureStore | EntitySource | Executor | Database.Database
> =>
  Effect.flatMap(decodeOptions(options), (decoded) =>
    Effect.flatMap(State.make, (state) => Internal.make(mesh, decoded, state) as Effect.Effect<Service, never, any>)
  )

/**
 * Builds a resolver that keeps failures and cursors in memory (one process).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = <R>(
  mesh: Mesh<R>,
  options: Options = {}
): Effect.Effect<Service, ComputeConfigError, R | FeatureStore.FeatureStore | EntitySource | Executor> =>
  Effect.flatMap(
    decodeOptions(options),
    (decoded) => Internal.make(mesh, decoded, State.makeMemory()) as Effect.Effect<Service, never, any>
  )

/**
 * {@link make} as a layer.
 *
 * @example
 * ```ts
 * const App = Resolver.layer(mesh).pipe(
 *   Layer.provideMerge(Layer.mergeAll(FeatureStore.layer(), EntitySource.layerJasper, Executor.layerLocal())),
 *   Layer.provideMerge(SqliteStorage.layer({ filename: "media.db" }))
 * )
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = <R>(
  mesh: Mesh<R>,
  options: Options = {}
): Layer.Layer<
  Resolver,
  StorageError.StorageError | ComputeConfigError,
  R | FeatureStore.FeatureStore | EntitySource | Executor | Database.Database
> => Layer.effect(Resolver, make(mesh, options))

/**
 * {@link makeMemory} as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = <R>(
  mesh: Mesh<R>,
  options: Options = {}
): Layer.Layer<Resolver, ComputeConfigError, R | FeatureStore.FeatureStore | EntitySource | Executor> =>
  Layer.effect(Resolver, makeMemory(mesh, options))

/**
 * `materialize` on the resolver in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const materialize = (
  feature: string | FeatureSpec.FeatureSpec<any>,
  entities: ReadonlyArray<string>,
  options?: { readonly batchSize?: number; readonly run?: string }
): Effect.Effect<RunResult, ResolveError, Resolver> =>
  Effect.flatMap(Resolver, (r) => r.materialize(feature, entities, options))

/**
 * `plan` on the resolver in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const plan = (
  feature: string | FeatureSpec.FeatureSpec<any>,
  entities: ReadonlyArray<string>
): Effect.Effect<Plan, ResolveError, Resolver> => Effect.flatMap(Resolver, (r) => r.plan(feature, entities))

/**
 * `runTask` on the resolver in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const runTask = (task: Task, options?: RunTaskOptions): Effect.Effect<TaskResult, ResolveError, Resolver> =>
  Effect.flatMap(Resolver, (r) => r.runTask(task, options))

/**
 * `status` on the resolver in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const status = (
  features?: ReadonlyArray<string | FeatureSpec.FeatureSpec<any>>
): Effect.Effect<ReadonlyArray<FeatureStatus>, ResolveError, Resolver> =>
  Effect.flatMap(Resolver, (r) => r.status(features))
