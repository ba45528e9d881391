/**
 * The distributed executor: a run's tasks (one feature over a batch of entities,
 * in dependency order) become jobs of graphile-worker on a PostgreSQL database,
 * taken by any number of worker processes (`Worker.run`, `amber worker`). The
 * caller waits for its run's tasks and gets the same results as with the local
 * executor.
 *
 * - A task's dependencies are done before it runs: the jobs of a level are added
 *   once every task of the level before it has settled (and a worker's
 *   `runTask` ensures dependencies anyway, through the store's memoization).
 * - A failed attempt is retried by the engine with exponential backoff
 *   (`exp(attempt)` seconds) up to `maxAttempts`; then the task is `failed`, its
 *   entities are reported as failures in the run result, and `status` lists it.
 * - A worker that dies (SIGKILL, a lost machine) stops beating; after
 *   `workerTimeoutMs` any living worker or waiting caller releases its jobs, and
 *   another worker takes them over. Values the dead worker had stored are kept;
 *   claims it held in the store expire after the store's lease.
 *
 * @since 0.1.0
 */
import { Effect, Layer, ParseResult, Redacted, Schema, type Scope } from "effect"
import { ComputeConfigError, type ExecutorError, type NoWorkersError } from "./ComputeError.js"
import * as Executor from "./Executor.js"
import * as Queue from "./internal/distributedQueue.js"
import type { QueueError } from "./internal/distributedQueue.js"
import { execute } from "./internal/distributedRun.js"

/**
 * The job engine or its tables failed.
 *
 * @since 0.1.0
 * @category errors
 */
export { QueueError } from "./internal/distributedQueue.js"

const Identifier = Schema.String.pipe(
  Schema.pattern(/^[a-z_][a-z0-9_]{0,62}$/, { message: () => "a lower-case SQL identifier ([a-z_][a-z0-9_]*)" })
)

/**
 * Options of the distributed executor (and of its workers).
 *
 * @since 0.1.0
 * @category models
 */
export const Options = Schema.Struct({
  /** The PostgreSQL URL of the job engine (usually the store's database). */
  url: Schema.Union(
    Schema.String.pipe(Schema.pattern(/^postgres(ql)?:\/\//, { message: () => "a postgres:// or postgresql:// URL" })),
    Schema.RedactedFromSelf(Schema.String)
  ),
  /** The schema of the engine's tables and of the task table (default `amber_jobs`). */
  schema: Schema.optional(Identifier),
  /** Attempts of a task before it is failed (default 3). */
  maxAttempts: Schema.optional(Schema.Int.pipe(Schema.between(1, 25))),
  /** A worker silent for this long is dead and its tasks are taken over (default 30000). */
  workerTimeoutMs: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(500))),
  /** How often a worker beats and looks for dead workers (default a third of `workerTimeoutMs`). */
  heartbeatMs: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(50))),
  /** How often a caller looks at its tasks, and a worker at the queue for retries (default 250). */
  pollMs: Schema.optional(Schema.Int.pipe(Schema.between(10, 60_000))),
  /**
   * A caller whose tasks wait this long with no live worker publishes a
   * `WaitingForWorkers` event (default 5000).
   */
  waitingForWorkersMs: Schema.optional(Schema.Int.pipe(Schema.between(0, 86_400_000))),
  /**
   * A caller whose tasks wait this long with no live worker takes them back and
   * fails with `NoWorkersError` (default: it waits for workers as long as it takes).
   */
  noWorkersTimeoutMs: Schema.optional(Schema.Int.pipe(Schema.between(1, 86_400_000)))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Options = Schema.Schema.Encoded<typeof Options>

/**
 * Decodes options into the queue's configuration; fails with `ComputeConfigError`
 * naming the option.
 *
 * @since 0.1.0
 * @category constructors
 */
export const config = (
  options: Options,
  extra: { readonly poolSize?: number } = {}
): Effect.Effect<Queue.QueueConfig, ComputeConfigError> =>
  Schema.decodeUnknown(Options)(options, { onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
      const option = issue?.path.join(".") || "options"
      return new ComputeConfigError({
        option,
        message: `DistributedExecutor option ${option}: ${issue?.message ?? e.message}`
      })
    }),
    Effect.map((o) => {
      if (o.heartbeatMs !== undefined && o.workerTimeoutMs !== undefined && o.heartbeatMs * 2 > o.workerTimeoutMs) {
        return undefined
      }
      const workerTimeoutMs = o.workerTimeoutMs ?? 30_000
      return {
        url: typeof o.url === "string" ? o.url : Redacted.value(o.url),
        schema: o.schema ?? "amber_jobs",
        maxAttempts: o.maxAttempts ?? 3,
        workerTimeoutMs,
        heartbeatMs: o.heartbeatMs ?? Math.max(50, Math.floor(workerTimeoutMs / 3)),
        pollMs: o.pollMs ?? 250,
        waitingForWorkersMs: o.waitingForWorkersMs ?? 5_000,
        noWorkersTimeoutMs: o.noWorkersTimeoutMs,
        poolSize: extra.poolSize ?? 4
      }
    }),
    Effect.filterOrFail(
      (c): c is Queue.QueueConfig => c !== undefined,
      () =>
        new ComputeConfigError({
          option: "heartbeatMs",
          message: "DistributedExecutor option heartbeatMs: must be at most half of workerTimeoutMs"
        })
    )
  )

/**
 * Opens the queue (a connection pool, migrated) under the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const queue = (
  options: Options,
  extra: { readonly poolSize?: number } = {}
): Effect.Effect<Queue.Queue, ComputeConfigError | QueueError, Scope.Scope> =>
  Effect.gen(function* () {
    const q = yield* Queue.make(yield* config(options, extra))
    yield* q.migrate
    return q
  })

/**
 * The executor service on a queue.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Executor.Service, ComputeConfigError | QueueError, Scope.Scope> =>
  Effect.map(
    queue(options),
    (q): Executor.Service => ({
      execute: (job): Effect.Effect<ReadonlyArray<Executor.TaskResult>, ExecutorError | NoWorkersError> =>
        execute(q, job)
    })
  )

/**
 * The distributed executor as a layer: provide it instead of `Executor.layerLocal`
 * and start workers (`amber worker --config ...`, or `Worker.run`) on the same
 * options.
 *
 * @example
 * ```ts
 * const executor = DistributedExecutor.layer({ url: "postgres://localhost/media", workerTimeoutMs: 20_000 })
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Executor.Executor, ComputeConfigError | QueueError> =>
  Layer.scoped(Executor.Executor, make(options))

/**
 * Task counts by state (over every run, or one), the last failed tasks with their
 * errors, and the live workers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Status extends Queue.QueueSummary {
  readonly workers: ReadonlyArray<{
    readonly id: string
    readonly host: string
    readonly pid: number
    /** Tasks it takes at once. */
    readonly concurrency: number
  }>
}

/**
 * The queue's status.
 *
 * @since 0.1.0
 * @category utils
 */
export const status = (options: Options, run?: string): Effect.Effect<Status, ComputeConfigError | QueueError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const q = yield* queue(options)
      const summary = yield* q.summary(run)
      const workers = yield* q.workers
      return { ...summary, workers }
    })
  )
