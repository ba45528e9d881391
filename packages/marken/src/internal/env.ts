/**
 * What every part of the `Annotations` service shares: the database, the registry,
 * the clock and the tuning read from the options once.
 */
import type { Database, StorageError } from "@org/storage"
import type { Effect } from "effect"
import type { Kysely } from "kysely"
import type { IndexEvent } from "../Annotations.js"
import type { Tables } from "./tables.js"
import type { IndexTuning } from "./hnsw.js"
import type { Statistics } from "./statistics.js"
import type * as Registry from "../Registry.js"

export interface Env {
  readonly db: Database.Service
  readonly registry: Registry.Service
  readonly caps: Database.Capabilities
  /** Milliseconds from the `Clock` (tests drive it with `TestClock`). */
  readonly nowMs: () => number
  readonly tuning: IndexTuning
  readonly syncInterval: number
  readonly directory: string | undefined
  /** `db.use` over marken's tables (`Kysely<Tables>`). */
  readonly use: <A>(
    operation: string,
    f: (k: Kysely<Tables>) => Promise<A>
  ) => Effect.Effect<A, StorageError.StorageError>
  /** The database's instance id (index files carry it). */
  readonly instance: { readonly value: string }
  /** Publishes an index event (never blocks). */
  readonly emit: (event: IndexEvent) => void
  /** Rows changed since the planner statistics were taken; `check` refreshes them when due. */
  readonly statistics: Statistics
}

export const toNumber = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v))
