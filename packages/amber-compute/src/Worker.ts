/**
 * Worker processes of the distributed executor: each takes tasks of every run
 * from the job engine (graphile-worker on PostgreSQL) and runs them with
 * `Resolver.runTask` on the config's mesh and layer, until interrupted (SIGTERM or
 * SIGINT under `amber worker`: it stops taking tasks, finishes those it runs,
 * and leaves). Start as many as you like, on as many machines as you like.
 *
 * @since 0.1.0
 */
import { Data, Effect, Layer, ParseResult, Schema } from "effect"
import { StorageError } from "@org/storage"
import type { AmberConfig } from "./AmberConfig.js"
import { ComputeConfigError } from "./ComputeError.js"
import * as DistributedExecutor from "./DistributedExecutor.js"
import * as Executor from "./Executor.js"
import type { QueueError } from "./internal/distributedQueue.js"
import { resultToJson } from "./internal/distributedRun.js"
import { runWorker, type WorkerEvent } from "./internal/distributedWorker.js"
import * as Resolver from "./Resolver.js"

export type {
  /**
   * What a worker reports: started, a task started, done or failed (with its
   * attempt and whether it was the last), dead workers released.
   *
   * @since 0.1.0
   * @category models
   */
  WorkerEvent
} from "./internal/distributedWorker.js"

/**
 * The config's layer (or the resolver on it) could not be built in the worker.
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkerError extends Data.TaggedError("WorkerError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Options of a worker.
 *
 * @since 0.1.0
 * @category models
 */
export const Options = Schema.Struct({
  /** Tasks run at once in this process (default 1). */
  concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 1000)))
})

/**
 * Runs a worker until interrupted.
 *
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * NodeRuntime.runMain(Worker.run({ config, concurrency: 2 }))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const run = (options: {
  readonly config: AmberConfig
  readonly concurrency?: number
  /** Receives the worker's events (the library prints nothing). */
  readonly onEvent?: (event: WorkerEvent) => void
}): Effect.Effect<never, ComputeConfigError | QueueError | WorkerError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const { concurrency = 1 } = yield* Schema.decodeUnknown(Options)({ concurrency: options.concurrency }).pipe(
        Effect.mapError(
          (e) =>
            new ComputeConfigError({
              option: "concurrency",
              message: `Worker option concurrency: ${ParseResult.ArrayFormatter.formatErrorSync(e)[0]?.message ?? e.message}`
            })
        )
      )
      const { config } = options
      if (config.distributed === undefined) {
        return yield* new ComputeConfigError({
          option: "distributed",
          message: "the config has no `distributed` options: a worker needs the job engine's database"
        })
      }
      const queue = yield* DistributedExecutor.queue(config.distributed, { poolSize: concurrency + 4 })
      // dependencies a task finds missing are computed here, in process
      const resolverLayer = Resolver.layer(config.mesh, config.batchSize ? { batchSize: config.batchSize } : {}).pipe(
        Layer.provide(Executor.layerLocal({ concurrency: 1 })),
        Layer.provideMerge(config.layer)
      )
      const context = yield* Layer.build(resolverLayer as Layer.Layer<Resolver.Resolver, unknown>).pipe(
        Effect.mapError(
          (cause) =>
            new WorkerError({
              message: `worker: the config's layer failed: ${StorageError.messageOf(cause)}`,
              cause
            })
        )
      )
      const resolver = Effect.provide(Resolver.Resolver, context)
      return yield* runWorker(queue, {
        concurrency,
        ...(options.onEvent ? { onEvent: options.onEvent } : {}),
        // the caller planned the task: its entities were missing then, and are claimed at once
        handle: (task, { clean }) =>
          Effect.flatMap(resolver, (r) =>
            r.runTask({ feature: task.feature, entities: task.entities }, { run: task.run, planned: true, clean })
          ).pipe(Effect.map(resultToJson))
      })
    })
  )
