/**
 * Executors run a plan's tasks. The in-process executor (`layerLocal`) runs the
 * levels in order, the tasks of a level with bounded concurrency; a distributed
 * executor hands the same tasks to worker processes, which run them with
 * `Resolver.runTask`.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { ComputeFailure, ExecutorError, NoWorkersError } from "./ComputeError.js"
import type { Task } from "./Plan.js"
import type { RunEvent } from "./RunEvent.js"

/**
 * What running one task gave, per entity.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskResult {
  /** `name@version`. */
  readonly feature: string
  /** Entities whose value this process computed. */
  readonly computed: ReadonlyArray<string>
  /** Entities whose value was stored already (or computed meanwhile by another process). */
  readonly cached: ReadonlyArray<string>
  readonly failed: ReadonlyArray<ComputeFailure>
  readonly ms: number
}

/**
 * A job for an executor: the tasks of one run in dependency order (levels), and
 * how to run one task in this process.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job {
  readonly run: string
  readonly levels: ReadonlyArray<ReadonlyArray<Task>>
  readonly runTask: (task: Task) => Effect.Effect<TaskResult, never>
  /**
   * Publishes an event of this run to the resolver's subscribers: an executor
   * whose tasks run elsewhere reports their progress here.
   */
  readonly publish?: (event: RunEvent) => Effect.Effect<void>
  /**
   * Features with no failure recorded when the run was planned: a task of one of
   * them has no earlier failure to clear (an executor whose tasks run elsewhere
   * passes this on to `Resolver.runTask`).
   */
  readonly clean?: ReadonlySet<string>
}

/**
 * The shape of the `Executor` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /**
   * Runs every task of a job, level after level; the result of each task, in any
   * order. A distributed executor configured to give up on a run no worker takes
   * fails with `NoWorkersError`.
   */
  readonly execute: (job: Job) => Effect.Effect<ReadonlyArray<TaskResult>, ExecutorError | NoWorkersError>
}

/**
 * The executor service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Executor extends Context.Tag("@org/amber-compute/Executor")<Executor, Service>() {}

/**
 * The in-process executor: levels in order, at most `concurrency` tasks at once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLocal = (options: { readonly concurrency?: number } = {}): Service => {
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4))
  return {
    execute: (job) =>
      Effect.reduce(job.levels, [] as Array<TaskResult>, (results, level) =>
        Effect.map(Effect.forEach(level, job.runTask, { concurrency }), (more) => (results.push(...more), results))
      )
  }
}

/**
 * The in-process executor as a layer.
 *
 * @example
 * ```ts
 * const App = Resolver.layer(mesh).pipe(Layer.provide(Executor.layerLocal({ concurrency: 4 })))
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layerLocal = (options: { readonly concurrency?: number } = {}): Layer.Layer<Executor> =>
  Layer.sync(Executor, () => makeLocal(options))
