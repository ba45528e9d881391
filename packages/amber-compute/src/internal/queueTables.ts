/**
 * The tables of the distributed executor, in the job engine's schema, beside their
 * migration; `distributedQueue.ts` queries them through `Kysely<QueueTables>` so
 * `tsc` checks every table and column name. `jobs` is graphile-worker's (0.17) view
 * of its jobs, declared with the columns read here only.
 */
import { type ColumnType, type Generated, type Kysely, sql } from "kysely"

/** The state of one task. */
export type TaskState = "pending" | "queued" | "running" | "retrying" | "done" | "failed"

/** A `timestamptz` column that defaults to `now()`, set from SQL (`sql\`now()\``) only. */
type Timestamp = ColumnType<Date, never, Date>
/** A `timestamptz` column set from SQL (`sql\`now()\``) or cleared. */
type NullableTimestamp = ColumnType<Date | null, never, Date | null>
/** A `jsonb` column: read parsed, written as JSON text. */
type Json<A> = ColumnType<A, string, string>

/** The tables the distributed executor reads and writes. */
export interface QueueTables {
  /** One task of a run: a feature over a batch of entities. */
  readonly amber_tasks: {
    run: string
    seq: number
    level: number
    feature: string
    entities: Json<ReadonlyArray<string>>
    state: ColumnType<TaskState, TaskState | undefined, TaskState>
    attempts: Generated<number>
    last_error: string | null
    result: ColumnType<unknown, string | null | undefined, string | null>
    worker: string | null
    queued_at: Timestamp
    started_at: NullableTimestamp
    finished_at: NullableTimestamp
  }
  /** A worker process and its heartbeat. */
  readonly amber_workers: {
    id: string
    host: string
    pid: number
    concurrency: number
    started_at: Timestamp
    beat_at: Timestamp
  }
  /** graphile-worker's jobs (read only). */
  readonly jobs: {
    key: ColumnType<string | null, never, never>
    locked_by: ColumnType<string | null, never, never>
    locked_at: ColumnType<Date | null, never, never>
    attempts: ColumnType<number, never, never>
    max_attempts: ColumnType<number, never, never>
    last_error: ColumnType<string | null, never, never>
  }
}

/**
 * Creates the task and worker tables in `schema` (idempotent); run after the
 * engine's own migration, inside the migrator's transaction.
 */
export const migrateQueueTables = async (db: Kysely<QueueTables>, schema: string): Promise<void> => {
  const s = db.schema.withSchema(schema)
  await s
    .createTable("amber_tasks")
    .ifNotExists()
    .addColumn("run", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("level", "integer", (c) => c.notNull())
    .addColumn("feature", "text", (c) => c.notNull())
    .addColumn("entities", "jsonb", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull().defaultTo("pending"))
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_error", "text")
    .addColumn("result", "jsonb")
    .addColumn("worker", "text")
    .addColumn("queued_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("started_at", "timestamptz")
    .addColumn("finished_at", "timestamptz")
    .addPrimaryKeyConstraint("amber_tasks_pkey", ["run", "seq"])
    .execute()
  await s.createIndex("amber_tasks_state").ifNotExists().on("amber_tasks").column("state").execute()
  await s
    .createTable("amber_workers")
    .ifNotExists()
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("host", "text", (c) => c.notNull())
    .addColumn("pid", "integer", (c) => c.notNull())
    .addColumn("concurrency", "integer", (c) => c.notNull())
    .addColumn("started_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("beat_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
}
