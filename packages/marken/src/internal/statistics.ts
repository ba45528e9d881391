/**
 * Planner statistics of the annotations table. Without them both planners guess, and
 * guess wrong for Marken's queries: SQLite (which never gathers statistics on its own)
 * takes a payload expression index with a range (`type, version, payload.x`) over the
 * entity index, reading half the table to return one entity's twenty rows; PostgreSQL
 * (whose autovacuum may be off, and is a minute late when on) walks the
 * `type, version, operation_id` index over every row of the run. `analyze` fixes both.
 *
 * So Marken analyzes the table itself: when the rows written or deleted since the last
 * `analyze` reach a tenth of the table (at least 50), checked where writes become
 * visible (`finish`, `cancel`, `create`, `update`, removals), after a payload index is
 * created (`Registry`) and once for databases written before (migration
 * `0004_statistics`). The row count of the last one is kept in `marken_meta`, so the
 * rule holds across restarts and processes; between those the cost is amortized, like
 * PostgreSQL's autovacuum rule it follows.
 */
import type { StorageError } from "@org/storage"
import { Effect } from "effect"
import { type Kysely, sql } from "kysely"
import type { Tables } from "./tables.js"

/** The `marken_meta` key holding the table's row count at the last `analyze`. */
const META_KEY = "statistics_rows"
/** Analyze again once the rows changed since the last time reach this share of the table... */
const SHARE = 0.1
/** ...and at least this many (a small table's plans do not matter). */
const MIN_ROWS = 50

const ANNOTATIONS: keyof Tables = "marken_annotations"

/** Runs `analyze` on the annotations table and records its row count; returns the count. */
export const analyze = async (k: Kysely<Tables>): Promise<number> => {
  await sql`analyze ${sql.table(ANNOTATIONS)}`.execute(k)
  const row = await k
    .selectFrom("marken_annotations")
    .select((eb) => eb.fn.countAll().as("n"))
    .executeTakeFirstOrThrow()
  const value = String(Number(row.n))
  await k
    .insertInto("marken_meta")
    .values({ key: META_KEY, value })
    .onConflict((oc) => oc.column("key").doUpdateSet({ value }))
    .execute()
  return Number(row.n)
}

export type Statistics = ReturnType<typeof make>

export const make = (
  use: <A>(operation: string, f: (k: Kysely<Tables>) => Promise<A>) => Effect.Effect<A, StorageError.StorageError>
) => {
  /** Rows written or deleted by this process since its last check that analyzed. */
  let changed = 0
  /** The table's rows at the last `analyze` (read from `marken_meta` on first need). */
  let rows: number | undefined
  let running = false

  const readRows = use("marken.statistics.read", (k) =>
    k.selectFrom("marken_meta").select("value").where("key", "=", META_KEY).executeTakeFirst()
  ).pipe(Effect.map((r) => (r === undefined ? 0 : Number(r.value) || 0)))

  /**
   * `analyze` when the rows changed reach the threshold. Never fails: statistics only
   * guide plans, and the write that called this has been done.
   */
  const check: Effect.Effect<void> = Effect.suspend(() => {
    if (changed < MIN_ROWS || running) return Effect.void
    running = true
    return Effect.gen(function* () {
      rows ??= yield* readRows
      if (changed < Math.max(MIN_ROWS, SHARE * rows)) return
      const seen = changed
      rows = yield* use("marken.statistics", analyze)
      changed -= seen
    }).pipe(Effect.ignore, Effect.ensuring(Effect.sync(() => (running = false))))
  })

  return {
    /** Counts rows written or deleted (checked by `check`). */
    wrote: (n: number) => {
      changed += n
    },
    check
  }
}
