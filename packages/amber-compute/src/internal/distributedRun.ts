/**
 * The caller's side of a distributed run: record the tasks, add the jobs of one
 * level at a time, and wait for the workers to settle them, releasing the jobs of
 * dead workers while waiting.
 */
import { Cause, Clock, Effect, Exit } from "effect"
import {
  BlockedError,
  ComputeFailedError,
  type ComputeFailure,
  ComputeTimeoutError,
  ExecutorError,
  failureJson,
  InvalidOutputError,
  MissingAssetError,
  MissingEntityError,
  NoWorkersError,
  StoreFailedError
} from "../ComputeError.js"
import type { Job, TaskResult } from "../Executor.js"
import type { RunEvent } from "../RunEvent.js"
import type { Queue, TaskNote, TaskRow } from "./distributedQueue.js"
import { StorageError } from "@org/storage"

/** A task result as the worker stores it (failures as plain JSON with their extra fields). */
export interface TaskResultJson {
  readonly feature: string
  readonly computed: ReadonlyArray<string>
  readonly cached: ReadonlyArray<string>
  readonly failed: ReadonlyArray<Record<string, unknown> & { readonly _tag: ComputeFailure["_tag"] }>
  readonly ms: number
}

/** A task result as JSON: failures keep their tag and fields, not their cause. */
export const resultToJson = (result: TaskResult): TaskResultJson => ({
  feature: result.feature,
  computed: result.computed,
  cached: result.cached,
  failed: result.failed.map((f) => {
    const { cause: _cause, ...fields } = f as ComputeFailure & { cause?: unknown }
    return { ...fields, _tag: f._tag, message: f.message }
  }),
  ms: result.ms
})

const classes = {
  ComputeFailedError,
  ComputeTimeoutError,
  InvalidOutputError,
  MissingAssetError,
  MissingEntityError,
  BlockedError,
  StoreFailedError
} as const

/** Rebuilds the tagged failures of a worker's result. */
export const resultFromJson = (json: TaskResultJson): TaskResult => ({
  feature: json.feature,
  computed: json.computed,
  cached: json.cached,
  failed: json.failed.map((f) => {
    const { _tag, ...fields } = f
    const Class = (classes as Record<string, new (args: any) => ComputeFailure>)[_tag] ?? ComputeFailedError
    return new Class(fields)
  }),
  ms: json.ms
})

const parseLabel = (label: string): { name: string; version: number } => {
  const at = label.lastIndexOf("@")
  return at < 0 ? { name: label, version: 0 } : { name: label.slice(0, at), version: Number(label.slice(at + 1)) }
}

/** A task that ended in the failed state: every entity of it failed with the task's last error. */
export const failedTaskResult = (task: TaskRow): TaskResult => {
  const { name, version } = parseLabel(task.feature)
  const message = `task ${task.run}:${task.seq} failed after ${task.attempts} attempt(s): ${task.lastError ?? "unknown error"}`
  return {
    feature: task.feature,
    computed: [],
    cached: [],
    failed: task.entities.map((entity) => new ComputeFailedError({ feature: name, version, entity, message })),
    ms: task.runMs ?? 0
  }
}

/** The events a task settled by a worker stands for, published in the caller's process. */
const eventsOf = (run: string, result: TaskResult): ReadonlyArray<RunEvent> => [
  ...(result.computed.length > 0
    ? [{ _tag: "Computed" as const, run, feature: result.feature, entities: result.computed.length, ms: result.ms }]
    : []),
  ...(result.cached.length > 0
    ? [{ _tag: "Cached" as const, run, feature: result.feature, entities: result.cached.length }]
    : []),
  ...result.failed.map((f) => ({
    _tag: "Failed" as const,
    run,
    feature: result.feature,
    entity: f.entity,
    error: failureJson(f)
  }))
]

const noNotes: ReadonlyArray<TaskNote> = []

/** The result a note carries, or undefined (none, or not one that can be read: the table is read instead). */
const parseResult = (json: string | undefined): TaskResult | undefined => {
  if (json === undefined) return undefined
  try {
    return resultFromJson(JSON.parse(json) as TaskResultJson)
  } catch {
    return undefined
  }
}

/** How often a waiting caller looks for live workers. */
const WORKER_CHECK_MS = 500

/** A task of a level: a feature over a batch of entities. */
interface LevelTask {
  readonly feature: string
  readonly entities: ReadonlyArray<string>
}

/**
 * A level's tasks with its tail cut finer for `slots` workers taking tasks at once
 * (guided scheduling): each task holds at most a (2 x slots)-th of the entities still
 * to come after it, and at least a quarter of the largest task, so the last tasks are
 * small and the workers run out of work at nearly the same time instead of one
 * finishing a whole task alone. Tasks stay in order; a level with no more tasks than
 * slots is left as it is.
 */
export const splitTail = (level: ReadonlyArray<LevelTask>, slots: number): ReadonlyArray<LevelTask> => {
  // no more tasks than slots: they all run at once already, whole batches as configured
  if (slots <= 1 || level.length <= slots) return level
  const largest = Math.max(...level.map((t) => t.entities.length))
  const least = Math.max(1, Math.ceil(largest / 4))
  let remaining = level.reduce((n, t) => n + t.entities.length, 0)
  const out: Array<LevelTask> = []
  for (const task of level) {
    const n = task.entities.length
    // at most a (2 x slots)-th of what is left, this task included, in near-equal parts
    const parts = Math.ceil(n / Math.max(least, Math.ceil(remaining / (2 * slots))))
    remaining -= n
    if (parts <= 1) {
      out.push(task)
      continue
    }
    for (let k = 0, at = 0; k < parts; k++) {
      const size = Math.floor(n / parts) + (k < n % parts ? 1 : 0)
      out.push({ feature: task.feature, entities: task.entities.slice(at, at + size) })
      at += size
    }
  }
  return out
}

/** Runs a job's levels on the queue and waits for every task. */
export const execute = (queue: Queue, job: Job) =>
  Effect.gen(function* () {
    const { noWorkersTimeoutMs, waitingForWorkersMs } = queue.config
    const publish = job.publish ?? (() => Effect.void)
    // the slots of the live workers now: a level's last tasks are cut finer when several take them
    const slots = yield* queue.workers.pipe(
      Effect.map((ws) => ws.reduce((n, w) => n + Math.max(1, w.concurrency), 0)),
      Effect.orElseSucceed(() => 1)
    )
    let seq = 0
    const levels = job.levels.map((level, index) =>
      splitTail(level, slots).map((task) => ({
        seq: seq++,
        level: index,
        feature: task.feature,
        entities: task.entities
      }))
    )
    yield* queue.insertTasks(job.run, levels.flat())
    // woken as soon as a task of the run settles (LISTEN/NOTIFY); polling is the fallback
    const listener = yield* queue.listen(job.run)
    const results: Array<TaskResult> = []
    // no live worker since (undefined: one was seen at the last check)
    let alone: number | undefined
    let warned = false
    let checked = -Infinity
    let reaped = -Infinity
    for (let index = 0; index < levels.length; index++) {
      const level = levels[index]!
      yield* queue.enqueue(
        job.run,
        level.map((t) => ({ seq: t.seq, clean: job.clean?.has(t.feature) ?? false }))
      )
      const started = new Set<number>()
      const settled = new Set<number>()
      const bySeq = new Map(level.map((t) => [t.seq, t]))
      /** A task is reported started once: when told, when first seen running, or when settled. */
      const markStarted = (task: {
        readonly seq: number
        readonly feature: string
        readonly entities: ReadonlyArray<string>
      }) =>
        started.has(task.seq)
          ? Effect.void
          : Effect.suspend(() => {
              started.add(task.seq)
              return publish({ _tag: "Started", run: job.run, feature: task.feature, entities: task.entities.length })
            })
      const settle = (seq: number, result: TaskResult) =>
        Effect.suspend(() => {
          settled.add(seq)
          results.push(result)
          return Effect.forEach(eventsOf(job.run, result), publish, { discard: true })
        })
      // polls that saw nothing new wait longer, up to 4 x pollMs (a long task costs the caller little CPU)
      let idle = 0
      while (settled.size < level.length) {
        // a listening caller is told of each start and settling, results included: its polls only
        // look for lost workers (and read what a note could not carry)
        const pause = queue.config.pollMs * 2 ** (listener ? 2 : Math.min(idle, 2))
        const notes = listener
          ? yield* listener.wait(pause)
          : yield* Effect.as(Effect.sleep(`${pause} millis`), noNotes)
        const seen = started.size + settled.size
        // the tasks to read: every one not settled when nothing was told (a poll), else those whose note said too little
        let read: Array<number> | "unsettled" = notes.length === 0 ? "unsettled" : []
        for (const note of notes) {
          const task = note.seq === undefined ? undefined : bySeq.get(note.seq)
          if (task === undefined) {
            // a note of another version (or of no task of this level): read the table
            if (note.seq === undefined) read = "unsettled"
            continue
          }
          if (settled.has(task.seq)) continue
          if (note.kind === "started") yield* markStarted(task)
          const result = note.kind === "done" ? parseResult(note.result) : undefined
          if (result !== undefined) {
            yield* markStarted(task)
            yield* settle(task.seq, result)
          } else if (note.kind !== "started" && read !== "unsettled") read.push(task.seq)
        }
        // any waiting process helps release the jobs of dead workers (as often as workers beat)
        const now = yield* Clock.currentTimeMillis
        if (now - reaped >= queue.config.heartbeatMs) {
          reaped = now
          yield* queue.reap
          // tasks failed here (their worker died on the last attempt) are told by no note
          if ((yield* queue.settleLost(job.run)) > 0) read = "unsettled"
        }
        const seqs = read === "unsettled" ? level.flatMap((t) => (settled.has(t.seq) ? [] : [t.seq])) : read
        // a settled task's result is read once
        const rows = seqs.length === 0 ? [] : yield* queue.tasks(job.run, index, seqs)
        for (const row of rows) {
          if (settled.has(row.seq)) continue
          if (row.state !== "queued" && row.state !== "pending") yield* markStarted(row)
          if (row.state !== "done" && row.state !== "failed") continue
          yield* settle(
            row.seq,
            row.state === "done" && row.result ? resultFromJson(row.result as TaskResultJson) : failedTaskResult(row)
          )
        }
        if (settled.size === level.length) break
        idle = started.size + settled.size > seen ? 0 : idle + 1
        if (now - checked < WORKER_CHECK_MS) continue
        checked = now
        if ((yield* queue.workers).length > 0) {
          alone = undefined
          warned = false
          continue
        }
        alone ??= now
        const waitedMs = now - alone
        const tasks = level.length - settled.size
        if (!warned && waitedMs >= waitingForWorkersMs) {
          warned = true
          yield* publish({ _tag: "WaitingForWorkers", run: job.run, tasks, waitedMs })
        }
        if (noWorkersTimeoutMs !== undefined && waitedMs >= noWorkersTimeoutMs) {
          return yield* new NoWorkersError({
            run: job.run,
            tasks,
            waitedMs,
            message: `no worker took the tasks of run ${job.run}: ${tasks} task(s) waited ${waitedMs} ms with no live worker (noWorkersTimeoutMs ${noWorkersTimeoutMs}); start \`amber worker\` (or Worker.run) on the same options`
          })
        }
      }
    }
    return results as ReadonlyArray<TaskResult>
  }).pipe(
    // the listener's connection goes back to the pool when the run ends
    Effect.scoped,
    // an interrupted caller (Ctrl-C on `amber run`) or one that gave up takes its queued tasks back
    Effect.onExit((exit) => {
      if (Exit.isSuccess(exit)) return Effect.void
      const error = Cause.squash(exit.cause)
      const reason = Exit.isInterrupted(exit)
        ? "the run was interrupted"
        : `the caller gave up: ${StorageError.messageOf(error)}`
      return queue.cancel(job.run, reason).pipe(Effect.ignore)
    }),
    Effect.mapError((e) => (e._tag === "NoWorkersError" ? e : new ExecutorError({ message: e.message, cause: e })))
  )
