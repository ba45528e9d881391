/**
 * A worker process's loop: graphile-worker takes the jobs, each job runs one task
 * through the caller's handler, and two fibers keep the worker visible (heartbeat)
 * and release the jobs of workers that stopped beating (reaper).
 */
import { Effect, Exit, Runtime, Schedule, type Scope } from "effect"
import { StorageError } from "@org/storage"
import { run as runEngine, type Runner } from "graphile-worker"
import { EventEmitter } from "node:events"
import { type Queue, QueueError, silentLogger, TASK_IDENTIFIER, type TaskRow } from "./distributedQueue.js"

/**
 * What a worker does with one task (`clean`: its feature had no failure recorded when
 * the run was planned); its failure is the attempt's failure (retried by the engine).
 */
export type Handle<R> = (task: TaskRow, job: { readonly clean: boolean }) => Effect.Effect<unknown, unknown, R>

/** Events of a worker, for the CLI to render. */
export type WorkerEvent =
  | { readonly _tag: "WorkerStarted"; readonly worker: string; readonly concurrency: number }
  | { readonly _tag: "TaskStarted"; readonly worker: string; readonly task: TaskRow; readonly attempt: number }
  | { readonly _tag: "TaskDone"; readonly worker: string; readonly task: TaskRow; readonly ms: number }
  | {
      readonly _tag: "TaskFailed"
      readonly worker: string
      readonly task: TaskRow
      readonly attempt: number
      readonly final: boolean
      readonly error: string
    }
  | { readonly _tag: "WorkersReaped"; readonly worker: string; readonly dead: ReadonlyArray<string> }

const messageOf = StorageError.messageOf

/** Runs a worker until interrupted (then stops taking jobs, finishes the running ones, and leaves). */
export const runWorker = <R>(
  queue: Queue,
  options: {
    readonly concurrency: number
    readonly handle: Handle<R>
    readonly onEvent?: (event: WorkerEvent) => void
  }
): Effect.Effect<never, QueueError, R | Scope.Scope> =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<R>()
    const emit = options.onEvent ?? (() => {})
    const events = new EventEmitter()
    let worker = ""
    events.on("pool:create", ({ workerPool }: { workerPool: { id: string } }) => {
      worker = workerPool.id
    })
    const attempt = (payload: unknown, job: { attempts: number; max_attempts: number }) =>
      Effect.gen(function* () {
        const { run, seq, clean } = payload as { run: string; seq: number; clean?: boolean }
        const task = yield* queue.start(run, seq, worker, job.attempts)
        if (!task) return
        emit({ _tag: "TaskStarted", worker, task, attempt: job.attempts })
        const t0 = yield* Effect.clockWith((c) => c.currentTimeMillis)
        const exit = yield* Effect.exit(options.handle(task, { clean: clean === true }))
        if (Exit.isSuccess(exit)) {
          yield* queue.finish(run, seq, exit.value)
          const t1 = yield* Effect.clockWith((c) => c.currentTimeMillis)
          emit({ _tag: "TaskDone", worker, task, ms: t1 - t0 })
          return
        }
        const error = Exit.isFailure(exit)
          ? messageOf(
              exit.cause._tag === "Fail" ? exit.cause.error : exit.cause._tag === "Die" ? exit.cause.defect : exit.cause
            )
          : ""
        const final = job.attempts >= job.max_attempts
        yield* queue.fail(run, seq, error, final)
        emit({ _tag: "TaskFailed", worker, task, attempt: job.attempts, final, error })
        // the engine records the failure and schedules the retry
        return yield* Effect.fail(new Error(error))
      })
    const runner: Runner = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          runEngine({
            pgPool: queue.pool,
            schema: queue.schema,
            concurrency: options.concurrency,
            pollInterval: queue.config.pollMs,
            noHandleSignals: true,
            events,
            logger: silentLogger(),
            taskList: {
              [TASK_IDENTIFIER]: (payload, helpers) => Runtime.runPromise(runtime)(attempt(payload, helpers.job))
            }
          }),
        catch: (cause) => new QueueError({ operation: "worker", message: `worker: ${messageOf(cause)}`, cause })
      }),
      (r) =>
        Effect.promise(() => r.stop().catch(() => {})).pipe(
          Effect.zipRight(worker ? queue.leave(worker).pipe(Effect.ignore) : Effect.void)
        )
    )
    if (!worker) {
      return yield* new QueueError({ operation: "worker", message: "worker: the engine did not report its pool id" })
    }
    const every = Schedule.spaced(`${queue.config.heartbeatMs} millis`)
    yield* queue.heartbeat(worker, options.concurrency)
    emit({ _tag: "WorkerStarted", worker, concurrency: options.concurrency })
    yield* queue.heartbeat(worker, options.concurrency).pipe(Effect.ignore, Effect.repeat(every), Effect.forkScoped)
    yield* queue.reap.pipe(
      Effect.tap((dead) =>
        dead.length > 0 ? Effect.sync(() => emit({ _tag: "WorkersReaped", worker, dead })) : Effect.void
      ),
      Effect.ignore,
      Effect.repeat(every),
      Effect.forkScoped
    )
    yield* Effect.tryPromise({
      try: () => runner.promise,
      catch: (cause) => new QueueError({ operation: "worker", message: `worker: ${messageOf(cause)}`, cause })
    })
    return yield* new QueueError({ operation: "worker", message: "worker: the engine stopped" })
  })
