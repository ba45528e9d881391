/**
 * Events of the resolver, published while it plans and runs: the caller (a CLI, a
 * test, a dashboard) consumes them; the library prints nothing.
 *
 * @since 0.1.0
 */
import type { FailureJson } from "./ComputeError.js"
import type * as Plan from "./Plan.js"

/**
 * A plan was made for a run.
 *
 * @since 0.1.0
 * @category models
 */
export interface Planned {
  readonly _tag: "Planned"
  readonly run: string
  readonly feature: string
  readonly entities: number
  readonly tasks: number
  /** Counts by state per feature label. */
  readonly counts: Readonly<Record<string, Plan.Counts>>
  readonly ms: number
}

/**
 * A task started.
 *
 * @since 0.1.0
 * @category models
 */
export interface Started {
  readonly _tag: "Started"
  readonly run: string
  readonly feature: string
  readonly entities: number
}

/**
 * Values were computed (by this process) in a task.
 *
 * @since 0.1.0
 * @category models
 */
export interface Computed {
  readonly _tag: "Computed"
  readonly run: string
  readonly feature: string
  readonly entities: number
  readonly ms: number
}

/**
 * Values were found stored (or computed by another process) in a task.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cached {
  readonly _tag: "Cached"
  readonly run: string
  readonly feature: string
  readonly entities: number
}

/**
 * One (feature, entity) failed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failed {
  readonly _tag: "Failed"
  readonly run: string
  readonly feature: string
  readonly entity: string
  readonly error: FailureJson
}

/**
 * A run finished.
 *
 * @since 0.1.0
 * @category models
 */
export interface Finished {
  readonly _tag: "Finished"
  readonly run: string
  readonly feature: string
  readonly computed: number
  readonly cached: number
  readonly failed: number
  readonly ms: number
}

/**
 * A distributed run's tasks are queued but no live worker has been seen for
 * `waitedMs` (published once per such wait): start `amber worker` (or
 * `Worker.run`) on the same options.
 *
 * @since 0.1.0
 * @category models
 */
export interface WaitingForWorkers {
  readonly _tag: "WaitingForWorkers"
  readonly run: string
  /** Tasks of the current level not settled yet. */
  readonly tasks: number
  readonly waitedMs: number
}

/**
 * Any event of a run.
 *
 * @since 0.1.0
 * @category models
 */
export type RunEvent = Planned | Started | Computed | Cached | Failed | Finished | WaitingForWorkers
