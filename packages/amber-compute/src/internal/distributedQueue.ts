/**
 * The distributed executor's side of the job engine (graphile-worker 0.17): the task
 * table of a run, worker heartbeats and the reaper that hands a dead worker's jobs
 * to the living. Jobs carry only `{ run, seq }`; what a task is and how it went
 * lives in `amber_tasks`, in the engine's schema.
 *
 * Engine facts this module relies on (graphile-worker 0.17.3):
 * - a job is locked by its worker pool's id (`locked_by`), `attempts` counts the
 *   attempts started (incremented when locked);
 * - a failed attempt is retried after `exp(min(attempts, 10))` seconds until
 *   `max_attempts`, then the job stays in `jobs` with its `last_error`;
 * - a job locked by a dead pool stays locked for 4 hours unless
 *   `force_unlock_workers` releases it, hence the heartbeats and the reaper here.
 */
import { Data, Effect, type Scope } from "effect"
import { Logger, makeWorkerUtils } from "graphile-worker"
import * as os from "node:os"
import pg from "pg"
import { StorageError } from "@org/storage"

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
  /** Connections of the pool (a worker needs its concurrency plus a few). */
  readonly poolSize: number
}

/** The state of one task. */
export type TaskState = "pending" | "queued" | "running" | "retrying" | "done" | "failed"

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

/** A new task, before it is queued. */
export interface NewTask {
  readonly seq: number
  readonly level: number
  readonly feature: string
  readonly entities: ReadonlyArray<string>
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`

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

const rowOf = (r: Record<string, any>): TaskRow => ({
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

const taskColumns = `run, seq, level, feature, entities, state, attempts, last_error, result, worker,
  (extract(epoch from (started_at - queued_at)) * 1000)::float8 as wait_ms,
  (extract(epoch from (finished_at - started_at)) * 1000)::float8 as run_ms`

/** The queue's connection pool and its SQL. */
export interface Queue {
  readonly config: QueueConfig
  readonly pool: pg.Pool
  readonly schema: string
  /** Installs the engine's schema and the task tables (idempotent, safe to race). */
  readonly migrate: Effect.Effect<void, QueueError>
  /** Records the tasks of a run (not queued yet). */
  readonly insertTasks: (run: string, tasks: ReadonlyArray<NewTask>) => Effect.Effect<void, QueueError>
  /** Adds the jobs of these tasks to the engine. */
  readonly enqueue: (run: string, seqs: ReadonlyArray<number>) => Effect.Effect<void, QueueError>
  readonly tasks: (run: string, level?: number) => Effect.Effect<ReadonlyArray<TaskRow>, QueueError>
  readonly task: (run: string, seq: number) => Effect.Effect<TaskRow | undefined, QueueError>
  /** A worker starts an attempt; false when the task is already done (a repeated job). */
  readonly start: (run: string, seq: number, worker: string, attempts: number) => Effect.Effect<boolean, QueueError>
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
  readonly cancel: (run: string) => Effect.Effect<void, QueueError>
  readonly heartbeat: (worker: string, concurrency: number) => Effect.Effect<void, QueueError>
  readonly leave: (worker: string) => Effect.Effect<void, QueueError>
  /** Releases the jobs of workers whose heartbeat is stale; returns their ids. */
  readonly reap: Effect.Effect<ReadonlyArray<string>, QueueError>
  readonly workers: Effect.Effect<
    ReadonlyArray<{ id: string; host: string; pid: number; beatAgeMs: number }>,
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
    const s = ident(config.schema)
    const query = (operation: string, text: string, values: ReadonlyArray<unknown> = []) =>
      wrap(operation)(() => pool.query(text, values as Array<unknown>))
    const timeout = `${config.workerTimeoutMs} milliseconds`

    const migrate = wrap("migrate")(async () => {
      const client = await pool.connect()
      try {
        // one migrator at a time: graphile-worker's own migration and our tables
        await client.query("begin")
        await client.query("select pg_advisory_xact_lock(hashtext($1))", [`amber-queue:${config.schema}`])
        const utils = await makeWorkerUtils({ pgPool: pool, schema: config.schema, logger: silentLogger() })
        try {
          await utils.migrate()
        } finally {
          await utils.release()
        }
        await client.query(`
          create table if not exists ${s}.amber_tasks (
            run text not null,
            seq int not null,
            level int not null,
            feature text not null,
            entities jsonb not null,
            state text not null default 'pending',
            attempts int not null default 0,
            last_error text,
            result jsonb,
            worker text,
            queued_at timestamptz not null default now(),
            started_at timestamptz,
            finished_at timestamptz,
            primary key (run, seq)
          );
          create index if not exists amber_tasks_state on ${s}.amber_tasks (state);
          create table if not exists ${s}.amber_workers (
            id text primary key,
            host text not null,
            pid int not null,
            concurrency int not null,
            started_at timestamptz not null default now(),
            beat_at timestamptz not null default now()
          );`)
        await client.query("commit")
      } catch (e) {
        await client.query("rollback").catch(() => {})
        throw e
      } finally {
        client.release()
      }
    })

    const insertTasks = (run: string, tasks: ReadonlyArray<NewTask>) =>
      tasks.length === 0
        ? Effect.void
        : query(
            "insert-tasks",
            `insert into ${s}.amber_tasks (run, seq, level, feature, entities, state)
             select $1, t.seq, t.level, t.feature, t.entities, 'pending'
             from jsonb_to_recordset($2::jsonb) as t(seq int, level int, feature text, entities jsonb)`,
            [run, JSON.stringify(tasks)]
          ).pipe(Effect.asVoid)

    const enqueue = (run: string, seqs: ReadonlyArray<number>) =>
      seqs.length === 0
        ? Effect.void
        : query(
            "enqueue",
            `update ${s}.amber_tasks set state = 'queued', queued_at = now() where run = $1 and seq = any($2::int[])`,
            [run, seqs]
          ).pipe(
            Effect.zipRight(
              query(
                "enqueue",
                `select ${s}.add_jobs(array_agg(
                   row($1::text, json_build_object('run', $2::text, 'seq', seq), null, null, $3::int, $2::text || ':' || seq, null, null)::${s}.job_spec))
                 from unnest($4::int[]) as seq`,
                [TASK_IDENTIFIER, run, config.maxAttempts, seqs]
              )
            ),
            Effect.asVoid
          )

    const tasks = (run: string, level?: number) =>
      query(
        "tasks",
        `select ${taskColumns} from ${s}.amber_tasks where run = $1 ${level === undefined ? "" : "and level = $2"} order by seq`,
        level === undefined ? [run] : [run, level]
      ).pipe(Effect.map((r) => r.rows.map(rowOf)))

    const task = (run: string, seq: number) =>
      query("task", `select ${taskColumns} from ${s}.amber_tasks where run = $1 and seq = $2`, [run, seq]).pipe(
        Effect.map((r) => (r.rows[0] ? rowOf(r.rows[0]) : undefined))
      )

    const start = (run: string, seq: number, worker: string, attempts: number) =>
      query(
        "start",
        `update ${s}.amber_tasks set state = 'running', worker = $3, attempts = $4, started_at = now(), finished_at = null
         where run = $1 and seq = $2 and state not in ('done', 'failed')`,
        [run, seq, worker, attempts]
      ).pipe(Effect.map((r) => (r.rowCount ?? 0) > 0))

    const finish = (run: string, seq: number, result: unknown) =>
      query(
        "finish",
        `update ${s}.amber_tasks set state = 'done', result = $3::jsonb, last_error = null, finished_at = now()
         where run = $1 and seq = $2`,
        [run, seq, JSON.stringify(result)]
      ).pipe(Effect.asVoid)

    const fail = (run: string, seq: number, error: string, final: boolean) =>
      query(
        "fail",
        `update ${s}.amber_tasks set state = $4, last_error = $3, finished_at = now()
         where run = $1 and seq = $2 and state <> 'done'`,
        [run, seq, error, final ? "failed" : "retrying"]
      ).pipe(Effect.asVoid)

    const settleLost = (run: string) =>
      query(
        "settle-lost",
        `update ${s}.amber_tasks t
           set state = 'failed', finished_at = now(),
               last_error = coalesce(j.last_error, t.last_error, 'the worker running its last attempt died')
           from ${s}.jobs j
           where t.run = $1 and t.state not in ('done', 'failed') and j.key = t.run || ':' || t.seq
             and j.locked_by is null and j.attempts >= j.max_attempts`,
        [run]
      ).pipe(Effect.map((r) => r.rowCount ?? 0))

    const cancel = (run: string) =>
      query(
        "cancel",
        `select ${s}.remove_job(t.run || ':' || t.seq) from ${s}.amber_tasks t
         where t.run = $1 and t.state in ('queued', 'retrying', 'running')`,
        [run]
      ).pipe(
        Effect.zipRight(
          query(
            "cancel",
            `update ${s}.amber_tasks set state = 'failed', last_error = 'the run was interrupted', finished_at = now()
             where run = $1 and state in ('pending', 'queued', 'retrying')`,
            [run]
          )
        ),
        Effect.asVoid
      )

    const heartbeat = (worker: string, concurrency: number) =>
      query(
        "heartbeat",
        `insert into ${s}.amber_workers (id, host, pid, concurrency) values ($1, $2, $3, $4)
         on conflict (id) do update set beat_at = now()`,
        [worker, os.hostname(), process.pid, concurrency]
      ).pipe(Effect.asVoid)

    const leave = (worker: string) =>
      query("leave", `delete from ${s}.amber_workers where id = $1`, [worker]).pipe(Effect.asVoid)

    const reap = query(
      "reap",
      `select distinct j.locked_by as id from ${s}.jobs j
       where j.locked_by is not null and j.locked_at < now() - $1::interval
         and not exists (select 1 from ${s}.amber_workers w where w.id = j.locked_by and w.beat_at > now() - $1::interval)`,
      [timeout]
    ).pipe(
      Effect.flatMap(({ rows }) => {
        const ids = rows.map((r) => r.id as string)
        if (ids.length === 0) return Effect.succeed(ids)
        return query(
          "reap",
          `select ${s}.force_unlock_workers($1::text[]);
           `.trim(),
          [ids]
        ).pipe(
          Effect.zipRight(
            query(
              "reap",
              `update ${s}.amber_tasks set state = 'queued', worker = null, queued_at = now()
               where worker = any($1::text[]) and state = 'running'`,
              [ids]
            )
          ),
          Effect.zipRight(query("reap", `delete from ${s}.amber_workers where id = any($1::text[])`, [ids])),
          Effect.as(ids)
        )
      })
    )

    const workers = query(
      "workers",
      `select id, host, pid, (extract(epoch from (now() - beat_at)) * 1000)::float8 as age from ${s}.amber_workers
       where beat_at > now() - $1::interval order by started_at`,
      [timeout]
    ).pipe(Effect.map((r) => r.rows.map((w) => ({ id: w.id, host: w.host, pid: w.pid, beatAgeMs: Number(w.age) }))))

    const summary = (run?: string) =>
      Effect.all({
        counts: query(
          "summary",
          `select state, count(*)::int as n from ${s}.amber_tasks ${run ? "where run = $1" : ""} group by state`,
          run ? [run] : []
        ),
        failed: query(
          "summary",
          `select run, seq, feature, attempts, last_error from ${s}.amber_tasks
           where state = 'failed' ${run ? "and run = $1" : ""} order by finished_at desc limit 20`,
          run ? [run] : []
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
          for (const r of counts.rows) byState[r.state as TaskState] = r.n
          return {
            byState,
            failed: failed.rows.map((r) => ({
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
