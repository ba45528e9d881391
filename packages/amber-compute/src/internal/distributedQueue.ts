/**
 * The distributed executor's side of the job engine (graphile-worker 0.17): the task
 * table of a run, worker heartbeats and the reaper that hands a dead worker's jobs
 * to the living. Jobs carry only `{ run, seq }`; what a task is and how it went
 * lives in `amber_tasks`, in the engine's schema. The tables are declared in
 * `queueTables.ts` and queried through `Kysely<QueueTables>` over the engine's pool.
 *
 * Engine facts this module relies on (graphile-worker 0.17.3):
 * - a job is locked by its worker pool's id (`locked_by`), `attempts` counts the
 *   attempts started (incremented when locked);
 * - a failed attempt is retried after `exp(min(attempts, 10))` seconds until
 *   `max_attempts`, then the job stays in `jobs` with its `last_error`;
 * - a job locked by a dead pool stays locked for 4 hours unless
 *   `force_unlock_workers` releases it, hence the heartbeats and the reaper here.
 */
import { Array as Arr, Data, Effect, type Scope } from "effect"
import { Logger, makeWorkerUtils } from "graphile-worker"
import { type ExpressionBuilder, Kysely, PostgresDialect, sql } from "kysely"
import { createHash } from "node:crypto"
import * as os from "node:os"
import pg from "pg"
import { StorageError } from "@org/storage"
import { migrateQueueTables, type QueueTables, type TaskState } from "./queueTables.js"

/**
 * A failure of the job engine or of its tables (the PostgreSQL behind them).
 */
export class QueueError extends Data.TaggedError("QueueError")<{
  readonly operation: string
  readonly message: string
  readonly cause?: unknown
}> {}

/** The task identifier the jobs are added under. */
export const TASK_IDENTIFIER = "amber_task"

/** What a queue needs to know; decoded from the executor's options. */
export interface QueueConfig {
  readonly url: string
  readonly schema: string
  readonly maxAttempts: number
  /** A worker whose heartbeat is older than this is dead; its jobs are released. */
  readonly workerTimeoutMs: number
  readonly heartbeatMs: number
  readonly pollMs: number
  /** A caller waiting this long with no live worker publishes `WaitingForWorkers`. */
  readonly waitingForWorkersMs: number
  /** A caller waiting this long with no live worker gives up (`NoWorkersError`); undefined: never. */
  readonly noWorkersTimeoutMs: number | undefined
  /** Connections of the pool (a worker needs its concurrency plus a few). */
  readonly poolSize: number
}

export type { TaskState }

/** One task of a run: a feature over a batch of entities. */
export interface TaskRow {
  readonly run: string
  readonly seq: number
  readonly level: number
  readonly feature: string
  readonly entities: ReadonlyArray<string>
  readonly state: TaskState
  readonly attempts: number
  readonly lastError: string | null
  readonly result: unknown
  readonly worker: string | null
  /** Milliseconds from queued to the start of the last attempt. */
  readonly waitMs: number | null
  /** Milliseconds the last attempt ran. */
  readonly runMs: number | null
}

/**
 * What a NOTIFY tells the run's waiting caller: a task started, or settled (done with
 * its result when it fits in a notification, or failed, to be read from the table).
 * `seq` is undefined for a note the caller cannot read (it then reads the table).
 */
export interface TaskNote {
  readonly seq: number | undefined
  readonly kind: "started" | "done" | "failed"
  /** The result's JSON text, for a done task whose result fits in the notification. */
  readonly result?: string
}

/** PostgreSQL refuses notification payloads of 8000 bytes or more; a result above this is read from the table. */
const MAX_NOTE_BYTES = 7900

/** A note's payload: the run, the task and what happened, one per line, then the result if any. */
const notePayload = (run: string, seq: number, kind: TaskNote["kind"], result?: string): string => {
  const head = `${run}\n${seq}\n${kind}`
  if (result === undefined) return head
  const full = `${head}\n${result}`
  return Buffer.byteLength(full) <= MAX_NOTE_BYTES ? full : head
}

/** The run and note of a payload (a bare run, as earlier versions sent, is a note to read the table). */
export const parseNote = (payload: string): { readonly run: string; readonly note: TaskNote } => {
  const [run = "", seq, kind, ...rest] = payload.split("\n")
  const n = seq === undefined ? NaN : Number(seq)
  if (!Number.isInteger(n) || (kind !== "started" && kind !== "done" && kind !== "failed")) {
    return { run, note: { seq: undefined, kind: "done" } }
  }
  return { run, note: rest.length > 0 ? { seq: n, kind, result: rest.join("\n") } : { seq: n, kind } }
}

/** A new task, before it is queued. */
export interface NewTask {
  readonly seq: number
  readonly level: number
  readonly feature: string
  readonly entities: ReadonlyArray<string>
}

/** Rows per insert statement (PostgreSQL takes at most 65,535 parameters). */
const INSERT_CHUNK = 1000

const wrap =
  (operation: string) =>
  <A>(f: () => Promise<A>): Effect.Effect<A, QueueError> =>
    Effect.tryPromise({
      try: f,
      catch: (cause) =>
        new QueueError({
          operation,
          message: `${operation}: ${StorageError.messageOf(cause)}`,
          cause
        })
    })

/** The columns of a task row, with the attempt's timings in milliseconds (sub-millisecond precision). */
const taskColumns = (eb: ExpressionBuilder<QueueTables, "amber_tasks">) =>
  [
    "run",
    "seq",
    "level",
    "feature",
    "entities",
    "state",
    "attempts",
    "last_error",
    "result",
    "worker",
    sql<number | null>`(extract(epoch from (${eb.ref("started_at")} - ${eb.ref("queued_at")})) * 1000)::float8`.as(
      "wait_ms"
    ),
    sql<number | null>`(extract(epoch from (${eb.ref("finished_at")} - ${eb.ref("started_at")})) * 1000)::float8`.as(
      "run_ms"
    )
  ] as const

const selectTasks = (db: Kysely<QueueTables>) => db.selectFrom("amber_tasks").select(taskColumns)

type SelectedTask = Awaited<ReturnType<ReturnType<typeof selectTasks>["executeTakeFirstOrThrow"]>>

const rowOf = (r: SelectedTask): TaskRow => ({
  run: r.run,
  seq: r.seq,
  level: r.level,
  feature: r.feature,
  entities: r.entities,
  state: r.state,
  attempts: r.attempts,
  lastError: r.last_error,
  result: r.result,
  worker: r.worker,
  waitMs: r.wait_ms === null ? null : Number(r.wait_ms),
  runMs: r.run_ms === null ? null : Number(r.run_ms)
})

/** `now()` as a timestamp value to set. */
const now = sql<Date>`now()`

/** The queue's connection pool and its SQL. */
export interface Queue {
  readonly config: QueueConfig
  readonly pool: pg.Pool
  readonly schema: string
  /** Installs the engine's schema and the task tables (idempotent, safe to race). */
  readonly migrate: Effect.Effect<void, QueueError>
  /** Records the tasks of a run (not queued yet). */
  readonly insertTasks: (run: string, tasks: ReadonlyArray<NewTask>) => Effect.Effect<void, QueueError>
  /**
   * Adds the jobs of these tasks to the engine; a job's payload carries `clean` (its
   * feature had no failure recorded when the run was planned).
   */
  readonly enqueue: (
    run: string,
    tasks: ReadonlyArray<{ readonly seq: number; readonly clean: boolean }>
  ) => Effect.Effect<void, QueueError>
  /** The tasks of a run (of one level; of these `seqs` only: a waiting caller reads those not settled yet). */
  readonly tasks: (
    run: string,
    level?: number,
    seqs?: ReadonlyArray<number>
  ) => Effect.Effect<ReadonlyArray<TaskRow>, QueueError>
  readonly task: (run: string, seq: number) => Effect.Effect<TaskRow | undefined, QueueError>
  /**
   * A worker starts an attempt: the task as it now is, in one statement; undefined when
   * it is already settled (a repeated job) or gone.
   */
  readonly start: (
    run: string,
    seq: number,
    worker: string,
    attempts: number
  ) => Effect.Effect<TaskRow | undefined, QueueError>
  /**
   * A listener for the tasks of `run` starting and settling (LISTEN on one connection
   * of the pool, for the scope; the notes of other runs are dropped): `wait(ms)`
   * returns the notes told since the last wait, at once if there are some, else as
   * soon as one comes, or none after `ms`. Undefined where LISTEN is not available (a
   * pooler in transaction mode): the caller polls.
   */
  readonly listen: (
    run: string
  ) => Effect.Effect<
    { readonly wait: (ms: number) => Effect.Effect<ReadonlyArray<TaskNote>> } | undefined,
    never,
    Scope.Scope
  >
  /** A task is done (and the run's waiting caller told, through NOTIFY, with the result when it fits). */
  readonly finish: (run: string, seq: number, result: unknown) => Effect.Effect<void, QueueError>
  readonly fail: (run: string, seq: number, error: string, final: boolean) => Effect.Effect<void, QueueError>
  /**
   * Tasks whose job can no longer run (a worker died on the last attempt, the job
   * was removed) are marked failed; returns how many.
   */
  readonly settleLost: (run: string) => Effect.Effect<number, QueueError>
  /**
   * An interrupted run: its jobs are removed (a running one finishes but is not
   * retried) and its tasks not started are failed.
   */
  readonly cancel: (run: string, reason?: string) => Effect.Effect<void, QueueError>
  readonly heartbeat: (worker: string, concurrency: number) => Effect.Effect<void, QueueError>
  readonly leave: (worker: string) => Effect.Effect<void, QueueError>
  /** Releases the jobs of workers whose heartbeat is stale; returns their ids. */
  readonly reap: Effect.Effect<ReadonlyArray<string>, QueueError>
  readonly workers: Effect.Effect<
    ReadonlyArray<{ id: string; host: string; pid: number; concurrency: number; beatAgeMs: number }>,
    QueueError
  >
  /** Task counts per state and the last errors, over every run or one. */
  readonly summary: (run?: string) => Effect.Effect<QueueSummary, QueueError>
}

/** Counts of the task table. */
export interface QueueSummary {
  readonly byState: Readonly<Record<TaskState, number>>
  readonly failed: ReadonlyArray<{
    run: string
    seq: number
    feature: string
    attempts: number
    lastError: string | null
  }>
}

/** Opens a pool on the queue's database; closed with the scope. */
export const make = (config: QueueConfig): Effect.Effect<Queue, never, Scope.Scope> =>
  Effect.gen(function* () {
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const p = new pg.Pool({ connectionString: config.url, max: config.poolSize })
        // an idle client losing its connection must not crash the process
        p.on("error", () => {})
        p.on("connect", (client) => client.on("error", () => {}))
        return p
      }),
      (p) => Effect.promise(() => p.end())
    )
    // a query builder over the same pool (never destroyed: the pool closes with the scope)
    const base = new Kysely<QueueTables>({ dialect: new PostgresDialect({ pool }) })
    const db = base.withSchema(config.schema)
    const use = <A>(operation: string, f: (db: Kysely<QueueTables>) => Promise<A>) => wrap(operation)(() => f(db))
    /** One of the engine's functions, in its schema. */
    const engine = (name: "add_jobs" | "remove_job" | "force_unlock_workers" | "job_spec") =>
      sql.id(config.schema, name)
    const staleBefore = sql<Date>`now() - ${`${config.workerTimeoutMs} milliseconds`}::interval`

    const migrate = wrap("migrate")(() =>
      base.transaction().execute(async (trx) => {
        // one migrator at a time: graphile-worker's own migration and our tables
        await sql`select pg_advisory_xact_lock(hashtext(${`amber-queue:${config.schema}`}))`.execute(trx)
        const utils = await makeWorkerUtils({ pgPool: pool, schema: config.schema, logger: silentLogger() })
        try {
          await utils.migrate()
        } finally {
          await utils.release()
        }
        await migrateQueueTables(trx, config.schema)
      })
    )

    const insertTasks = (run: string, tasks: ReadonlyArray<NewTask>) =>
      tasks.length === 0
        ? Effect.void
        : use("insert-tasks", (db) =>
            db.transaction().execute(async (trx) => {
              for (const chunk of Arr.chunksOf(tasks, INSERT_CHUNK)) {
                await trx
                  .insertInto("amber_tasks")
                  .values(
                    chunk.map((t) => ({
                      run,
                      seq: t.seq,
                      level: t.level,
                      feature: t.feature,
                      entities: JSON.stringify(t.entities),
                      state: "pending" as const
                    }))
                  )
                  .execute()
              }
            })
          )

    const enqueue: Queue["enqueue"] = (run, tasks) =>
      tasks.length === 0
        ? Effect.void
        : use("enqueue", (db) =>
            db
              .updateTable("amber_tasks")
              .set({ state: "queued", queued_at: now })
              .where("run", "=", run)
              .where((eb) => eb("seq", "=", eb.fn.any(eb.val(tasks.map((t) => t.seq)))))
              .execute()
          ).pipe(
            Effect.zipRight(
              use("enqueue", (db) =>
                sql`select ${engine("add_jobs")}(array_agg(
                   row(${TASK_IDENTIFIER}::text, json_build_object('run', ${run}::text, 'seq', seq, 'clean', clean), null, null,
                       ${config.maxAttempts}::int, ${run}::text || ':' || seq, null, null)::${engine("job_spec")}))
                 from unnest(${tasks.map((t) => t.seq)}::int[], ${tasks.map((t) => t.clean)}::bool[]) as t(seq, clean)`.execute(
                  db
                )
              )
            ),
            Effect.asVoid
          )

    const tasks: Queue["tasks"] = (run, level, seqs) =>
      use("tasks", (db) =>
        selectTasks(db)
          .where("run", "=", run)
          .$if(level !== undefined, (q) => q.where("level", "=", level!))
          .$if(seqs !== undefined, (q) => q.where((eb) => eb("seq", "=", eb.fn.any(eb.val(seqs!)))))
          .orderBy("seq")
          .execute()
      ).pipe(Effect.map((rows) => rows.map(rowOf)))

    const task = (run: string, seq: number) =>
      use("task", (db) => selectTasks(db).where("run", "=", run).where("seq", "=", seq).executeTakeFirst()).pipe(
        Effect.map((r) => (r ? rowOf(r) : undefined))
      )

    // a task's start and settling are told to the run's waiting caller on one channel per
    // queue schema (an identifier of at most 63 bytes: a hash of the schema), in the same
    // statement: the caller reads nothing to follow the run (see `TaskNote`)
    const channel = `amber_settled_${createHash("sha1").update(config.schema).digest("hex").slice(0, 16)}`

    const start = (run: string, seq: number, worker: string, attempts: number) =>
      use("start", (db) =>
        db
          .with("started", (db) =>
            db
              .updateTable("amber_tasks")
              .set({ state: "running", worker, attempts, started_at: now, finished_at: null })
              .where("run", "=", run)
              .where("seq", "=", seq)
              .where("state", "not in", ["done", "failed"])
              .returning(taskColumns)
          )
          .selectFrom("started")
          .selectAll()
          .select(sql<unknown>`pg_notify(${channel}, ${notePayload(run, seq, "started")})`.as("told"))
          .executeTakeFirst()
      ).pipe(Effect.map((r) => (r ? rowOf(r) : undefined)))

    const finish = (run: string, seq: number, result: unknown) => {
      const json = result === undefined ? null : JSON.stringify(result)
      return use("finish", (db) =>
        db
          .with("settled", (db) =>
            db
              .updateTable("amber_tasks")
              .set({ state: "done", result: json, last_error: null, finished_at: now })
              .where("run", "=", run)
              .where("seq", "=", seq)
              .returning("run")
          )
          .selectFrom("settled")
          .select(sql<unknown>`pg_notify(${channel}, ${notePayload(run, seq, "done", json ?? undefined)})`.as("told"))
          .execute()
      ).pipe(Effect.asVoid)
    }

    const fail = (run: string, seq: number, error: string, final: boolean) =>
      use("fail", (db) =>
        db
          .with("settled", (db) =>
            db
              .updateTable("amber_tasks")
              .set({ state: final ? "failed" : "retrying", last_error: error, finished_at: now })
              .where("run", "=", run)
              .where("seq", "=", seq)
              .where("state", "<>", "done")
              .returning("run")
          )
          .selectFrom("settled")
          .select(sql<unknown>`pg_notify(${channel}, ${notePayload(run, seq, "failed")})`.as("told"))
          .execute()
      ).pipe(Effect.asVoid)

    const listen: Queue["listen"] = (run) =>
      Effect.gen(function* () {
        const client = yield* Effect.acquireRelease(
          Effect.tryPromise(async () => {
            const c = await pool.connect()
            try {
              await c.query(`LISTEN ${channel}`)
              return c
            } catch (e) {
              c.release(true)
              throw e
            }
          }).pipe(Effect.option),
          (c) =>
            c._tag === "None"
              ? Effect.void
              : Effect.promise(() =>
                  c.value
                    .query(`UNLISTEN ${channel}`)
                    .then(
                      () => c.value.release(),
                      (e: unknown) => c.value.release(e instanceof Error ? e : true)
                    )
                    .catch(() => {})
                )
        )
        if (client._tag === "None") return undefined
        // the notes told since the caller last waited, and the caller waiting now
        let told: Array<TaskNote> = []
        let waiting: (() => void) | undefined
        const onNotification = (m: pg.Notification) => {
          if (m.channel !== channel || !m.payload) return
          if (m.payload !== run && !m.payload.startsWith(`${run}\n`)) return
          told.push(parseNote(m.payload).note)
          waiting?.()
        }
        client.value.on("notification", onNotification)
        yield* Effect.addFinalizer(() => Effect.sync(() => client.value.off("notification", onNotification)))
        const take = (): ReadonlyArray<TaskNote> => {
          const notes = told
          told = []
          return notes
        }
        return {
          wait: (ms: number) =>
            Effect.async<ReadonlyArray<TaskNote>>((resume) => {
              if (told.length > 0) return resume(Effect.succeed(take()))
              // notes that come while the caller is being resumed are taken with it, or by its next call
              const done = () => {
                clearTimeout(timer)
                waiting = undefined
                resume(Effect.sync(take))
              }
              const timer = setTimeout(done, ms)
              waiting = done
              return Effect.sync(() => {
                clearTimeout(timer)
                waiting = undefined
              })
            })
        }
      })

    const settleLost = (run: string) =>
      use("settle-lost", (db) =>
        db
          .updateTable("amber_tasks as t")
          .from("jobs as j")
          .set((eb) => ({
            state: "failed",
            finished_at: now,
            last_error: eb.fn.coalesce(
              "j.last_error",
              "t.last_error",
              eb.val("the worker running its last attempt died")
            )
          }))
          .where("t.run", "=", run)
          .where("t.state", "not in", ["done", "failed"])
          .where((eb) => eb("j.key", "=", sql<string>`${eb.ref("t.run")} || ':' || ${eb.ref("t.seq")}`))
          .where("j.locked_by", "is", null)
          .whereRef("j.attempts", ">=", "j.max_attempts")
          .executeTakeFirst()
      ).pipe(Effect.map((r) => Number(r.numUpdatedRows)))

    const cancel = (run: string, reason = "the run was interrupted") =>
      use("cancel", (db) =>
        db
          .selectFrom("amber_tasks as t")
          .select((eb) => sql`${engine("remove_job")}(${eb.ref("t.run")} || ':' || ${eb.ref("t.seq")})`.as("removed"))
          .where("t.run", "=", run)
          .where("t.state", "in", ["queued", "retrying", "running"])
          .execute()
      ).pipe(
        Effect.zipRight(
          use("cancel", (db) =>
            db
              .updateTable("amber_tasks")
              .set({ state: "failed", last_error: reason, finished_at: now })
              .where("run", "=", run)
              .where("state", "in", ["pending", "queued", "retrying"])
              .execute()
          )
        ),
        Effect.asVoid
      )

    const heartbeat = (worker: string, concurrency: number) =>
      use("heartbeat", (db) =>
        db
          .insertInto("amber_workers")
          .values({ id: worker, host: os.hostname(), pid: process.pid, concurrency })
          .onConflict((oc) => oc.column("id").doUpdateSet({ beat_at: now }))
          .execute()
      ).pipe(Effect.asVoid)

    const leave = (worker: string) =>
      use("leave", (db) => db.deleteFrom("amber_workers").where("id", "=", worker).execute()).pipe(Effect.asVoid)

    const reap = use("reap", (db) =>
      db
        .selectFrom("jobs as j")
        .select("j.locked_by as id")
        .distinct()
        .where("j.locked_by", "is not", null)
        .where("j.locked_at", "<", staleBefore)
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom("amber_workers as w")
                .select(sql.lit(1).as("alive"))
                .whereRef("w.id", "=", "j.locked_by")
                .where("w.beat_at", ">", staleBefore)
            )
          )
        )
        .execute()
    ).pipe(
      Effect.flatMap((rows) => {
        const ids = rows.flatMap((r) => (r.id === null ? [] : [r.id]))
        if (ids.length === 0) return Effect.succeed(ids)
        return use("reap", (db) => sql`select ${engine("force_unlock_workers")}(${ids}::text[])`.execute(db)).pipe(
          Effect.zipRight(
            use("reap", (db) =>
              db
                .updateTable("amber_tasks")
                .set({ state: "queued", worker: null, queued_at: now })
                .where((eb) => eb("worker", "=", eb.fn.any(eb.val(ids))))
                .where("state", "=", "running")
                .execute()
            )
          ),
          Effect.zipRight(
            use("reap", (db) =>
              db
                .deleteFrom("amber_workers")
                .where((eb) => eb("id", "=", eb.fn.any(eb.val(ids))))
                .execute()
            )
          ),
          Effect.as(ids)
        )
      })
    )

    const workers = use("workers", (db) =>
      db
        .selectFrom("amber_workers")
        .select((eb) => [
          "id",
          "host",
          "pid",
          "concurrency",
          sql<number>`(extract(epoch from (now() - ${eb.ref("beat_at")})) * 1000)::float8`.as("age")
        ])
        .where("beat_at", ">", staleBefore)
        .orderBy("started_at")
        .execute()
    ).pipe(
      Effect.map((rows) =>
        rows.map((w) => ({
          id: w.id,
          host: w.host,
          pid: w.pid,
          concurrency: w.concurrency,
          beatAgeMs: Number(w.age)
        }))
      )
    )

    const summary = (run?: string) =>
      Effect.all({
        counts: use("summary", (db) =>
          db
            .selectFrom("amber_tasks")
            .select((eb) => ["state", eb.cast<number>(eb.fn.countAll(), "integer").as("n")])
            .$if(run !== undefined, (q) => q.where("run", "=", run!))
            .groupBy("state")
            .execute()
        ),
        failed: use("summary", (db) =>
          db
            .selectFrom("amber_tasks")
            .select(["run", "seq", "feature", "attempts", "last_error"])
            .where("state", "=", "failed")
            .$if(run !== undefined, (q) => q.where("run", "=", run!))
            .orderBy("finished_at", "desc")
            .limit(20)
            .execute()
        )
      }).pipe(
        Effect.map(({ counts, failed }) => {
          const byState: Record<TaskState, number> = {
            pending: 0,
            queued: 0,
            running: 0,
            retrying: 0,
            done: 0,
            failed: 0
          }
          for (const r of counts) byState[r.state] = r.n
          return {
            byState,
            failed: failed.map((r) => ({
              run: r.run,
              seq: r.seq,
              feature: r.feature,
              attempts: r.attempts,
              lastError: r.last_error
            }))
          }
        })
      )

    return {
      config,
      pool,
      schema: config.schema,
      migrate,
      insertTasks,
      enqueue,
      tasks,
      task,
      start,
      listen,
      finish,
      fail,
      settleLost,
      cancel,
      heartbeat,
      leave,
      reap,
      workers,
      summary
    } satisfies Queue
  })

/** graphile-worker logs through a logger; the library prints nothing. */
export const silentLogger = (): Logger => new Logger(() => () => {})
