/**
 * The `Annotations` service: annotation operations (start, upsert, finish, cancel),
 * CRUD, queries with cursor pagination and group counts, and vector search (HNSW,
 * filtered kNN and pairs) kept in step with every write.
 *
 * @since 0.1.0
 */
import type { Database, StorageError as StorageErrors } from "@org/storage"
import { Context, type Effect, Layer, Schema, type Stream } from "effect"
import type { Scope } from "effect"
import type * as Annotation from "./Annotation.js"
import type * as AnnotationType from "./AnnotationType.js"
import * as internal from "./internal/annotations.js"
import type { IndexKey } from "./internal/hnsw.js"
import type {
  AnnotationNotFoundError,
  MarkenConfigError,
  InvalidAnnotationError,
  InvalidQueryError,
  MarkenFailureError,
  OperationClosedError,
  OperationNotFoundError,
  UnknownTypeError
} from "./MarkenError.js"
import type * as Operation from "./Operation.js"
import type * as Query from "./Query.js"
import * as Registries from "./Registry.js"
import type { Registry } from "./Registry.js"

type StorageError = StorageErrors.StorageError

/**
 * Options of the service, decoded with unknown properties refused: a bad one is a
 * `MarkenConfigError` naming it.
 *
 * @since 0.3.0
 * @category models
 */
export const Options = Schema.Struct({
  /** A folder for the HNSW index files (kept beside the database). Without it indexes live in memory only. */
  indexDirectory: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { exact: true }),
  /** HNSW graph degree (default 16). */
  m: Schema.optionalWith(Schema.Int.pipe(Schema.between(2, 256)), { exact: true }),
  /** HNSW build effort (default 200). */
  efConstruction: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10_000)), { exact: true }),
  /** Default search effort (default 64). */
  ef: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10_000)), { exact: true }),
  /** Filtered searches matching at most this many vectors are always exact (default: exact or HNSW chosen by cost). */
  exactThreshold: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { exact: true }),
  /** How often (ms) a search looks for writes made by other processes (default 1000). */
  syncIntervalMs: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { exact: true }),
  /**
   * When the vector indexes are loaded (from the index folder) or built (from the
   * database): `"lazy"` (the default) on the first search of each; `"eager"` every
   * index of every registered type version as soon as the service starts, in the
   * background (a search of an index still building waits for it; `ready` waits for
   * all of them; `indexEvents` reports the progress).
   */
  index: Schema.optionalWith(Schema.Literal("lazy", "eager"), { exact: true })
})

/**
 * @since 0.1.0
 * @category models
 */
export type Options = Schema.Schema.Type<typeof Options>

/**
 * Progress of loading or building a vector index: `IndexLoading` (from the index
 * folder or rebuilding from the database, with the number of stored vectors),
 * `IndexProgress` while a rebuild adds them, then `IndexReady` or `IndexFailed`.
 *
 * @since 0.3.0
 * @category models
 */
export type IndexEvent =
  | {
      readonly _tag: "IndexLoading"
      readonly key: string
      readonly source: "file" | "database"
      readonly total: number
    }
  | { readonly _tag: "IndexProgress"; readonly key: string; readonly done: number; readonly total: number }
  | {
      readonly _tag: "IndexReady"
      readonly key: string
      readonly size: number
      readonly origin: string
      readonly ms: number
    }
  | { readonly _tag: "IndexFailed"; readonly key: string; readonly message: string }

/**
 * A page of query results; `next` is the cursor of the following page, when there is one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Page {
  readonly items: ReadonlyArray<Annotation.Annotation>
  readonly next?: string
}

/**
 * One group of `count`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Group {
  readonly key: string | null
  readonly count: number
}

/**
 * A migration of stored annotations from one type version to another.
 *
 * @since 0.1.0
 * @category models
 */
export interface Migration<A, B> {
  readonly from: AnnotationType.AnnotationType<A, any>
  readonly to: AnnotationType.AnnotationType<B, any>
  readonly migrate: (payload: A) => B
}

/**
 * What the vector indexes hold (for health checks and tests).
 *
 * @since 0.1.0
 * @category models
 */
export interface IndexStats {
  readonly key: string
  readonly size: number
  readonly origin: string
}

/**
 * The shape of the `Annotations` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Starts an operation: a run of a producer over a type version, invisible until finished. */
  readonly start: (
    start: Operation.Start
  ) => Effect.Effect<Operation.Operation, UnknownTypeError | InvalidAnnotationError | StorageError>
  /**
   * Writes annotations into an open operation; an item with the `key` of an earlier
   * one in the same operation replaces it. Invalid items are refused one by one
   * (`rejected`, with the failing field) while the others are written; with
   * `atomic: true` the first invalid item fails the call and nothing is written.
   */
  readonly upsert: (
    operationId: string,
    items: ReadonlyArray<Annotation.Item>,
    options?: { readonly atomic?: boolean }
  ) => Effect.Effect<
    Operation.UpsertResult,
    OperationNotFoundError | OperationClosedError | InvalidAnnotationError | UnknownTypeError | StorageError
  >
  /** Makes the operation the run readers see for its key, in one transaction. */
  readonly finish: (
    operationId: string
  ) => Effect.Effect<Operation.Operation, OperationNotFoundError | OperationClosedError | StorageError>
  /** Cancels an open operation and removes what it wrote. */
  readonly cancel: (
    operationId: string
  ) => Effect.Effect<Operation.Operation, OperationNotFoundError | OperationClosedError | StorageError>
  readonly operation: (operationId: string) => Effect.Effect<Operation.Operation, OperationNotFoundError | StorageError>
  /** Operations of a type version (and producer key), newest first. */
  readonly operations: (filter: {
    readonly type: string
    readonly version?: string | undefined
    readonly producer?: string | undefined
  }) => Effect.Effect<ReadonlyArray<Operation.Operation>, StorageError>
  /** Creates one annotation in the current run of its producer (CRUD). */
  readonly create: (
    input: Annotation.Input
  ) => Effect.Effect<Annotation.Annotation, InvalidAnnotationError | UnknownTypeError | StorageError>
  readonly get: (
    id: string,
    options?: { readonly withVectors?: boolean }
  ) => Effect.Effect<Annotation.Annotation, AnnotationNotFoundError | StorageError>
  readonly update: (
    id: string,
    patch: Annotation.Patch
  ) => Effect.Effect<
    Annotation.Annotation,
    AnnotationNotFoundError | InvalidAnnotationError | UnknownTypeError | StorageError
  >
  readonly remove: (id: string) => Effect.Effect<void, AnnotationNotFoundError | StorageError>
  /** Deletes annotations by id in one transaction, the indexes updated once; unknown ids are skipped. */
  readonly removeMany: (ids: ReadonlyArray<string>) => Effect.Effect<{ readonly removed: number }, StorageError>
  /**
   * Deletes every annotation a query matches (its runs: the current ones, or `operationId`'s;
   * `limit` and `cursor` are ignored) in one transaction, the indexes updated once.
   */
  readonly removeWhere: (
    query: Query.Query
  ) => Effect.Effect<{ readonly removed: number }, InvalidQueryError | StorageError>
  readonly query: (query: Query.Query) => Effect.Effect<Page, InvalidQueryError | StorageError>
  /** Counts the annotations matching a query, grouped (largest groups first, at most 1000). */
  readonly count: (
    query: Query.Query,
    by: Query.GroupBy
  ) => Effect.Effect<ReadonlyArray<Group>, InvalidQueryError | StorageError>
  /** The k nearest annotations to a vector among those matching the filter (k whenever k match). */
  readonly search: (
    knn: Query.Knn
  ) => Effect.Effect<ReadonlyArray<Query.Hit>, InvalidQueryError | UnknownTypeError | MarkenFailureError | StorageError>
  /** The k most similar pairs between two sets. */
  readonly pairs: (
    pairs: Query.Pairs
  ) => Effect.Effect<
    ReadonlyArray<Query.Pair>,
    InvalidQueryError | UnknownTypeError | MarkenFailureError | StorageError
  >
  /** Rewrites the latest runs of a type version into a new version (old ones stay readable). */
  readonly migrate: <A, B>(
    migration: Migration<A, B>
  ) => Effect.Effect<
    { readonly operations: number; readonly annotations: number },
    InvalidAnnotationError | UnknownTypeError | OperationNotFoundError | OperationClosedError | StorageError
  >
  /** Decodes an annotation's payload with its type (typed read). */
  readonly decode: <A>(
    type: AnnotationType.AnnotationType<A, any>,
    annotation: Annotation.Annotation
  ) => Effect.Effect<Annotation.Typed<A>, InvalidAnnotationError>
  /** Writes every changed index to the index folder. */
  readonly persist: Effect.Effect<void, MarkenFailureError>
  /**
   * Progress of loading and building vector indexes, as events (the latest 1024
   * are replayed to a new subscriber, so one that subscribes after the service
   * started still sees an eager build from its start).
   */
  readonly indexEvents: Stream.Stream<IndexEvent>
  /** Waits until the indexes of an `index: "eager"` start are loaded (at once when lazy). */
  readonly ready: Effect.Effect<void, MarkenFailureError | StorageError>
  /** Loads (or rebuilds) the index of a vector field now and tells where it came from. */
  readonly loadIndex: (
    key: IndexKey
  ) => Effect.Effect<IndexStats, UnknownTypeError | InvalidQueryError | MarkenFailureError | StorageError>
}

/**
 * The annotations service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Annotations extends Context.Tag("@org/marken/Annotations")<Annotations, Service>() {}

/**
 * Builds the service. Needs the `Registry` and the `Database`; index files are
 * written when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<Service, StorageError | MarkenConfigError, Database.Database | Registry | Scope.Scope> =
  internal.make

/**
 * The service as a layer (needs `Registry` and `Database`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<Annotations, StorageError | MarkenConfigError, Database.Database | Registry> =>
  Layer.scoped(Annotations, make(options))

/**
 * `Registry` and `Annotations` together over a `Database`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithRegistry = (
  options?: Options
): Layer.Layer<Annotations | Registry, StorageError | MarkenConfigError, Database.Database> =>
  layer(options).pipe(Layer.provideMerge(Registries.layer))
