import type { Database } from "@org/storage"

export const FAILURES = "amber_compute_failures"
export const CURSORS = "amber_compute_cursors"

/** The tables of this package. */
export interface Tables {
  readonly [FAILURES]: {
    feature: string
    version: number
    entity: string
    fingerprint: string | null
    tag: string
    message: string
    run: string
    attempts: number
    at: number
  }
  readonly [CURSORS]: {
    name: string
    position: number
    updated_at: number
  }
}

export const migrations: Database.Migrations = {
  "0001_amber_compute": {
    up: async (db, caps) => {
      await db.schema
        .createTable(FAILURES)
        .addColumn("feature", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("entity", "text", (c) => c.notNull())
        .addColumn("fingerprint", "text")
        .addColumn("tag", "text", (c) => c.notNull())
        .addColumn("message", "text", (c) => c.notNull())
        .addColumn("run", "text", (c) => c.notNull())
        .addColumn("attempts", "integer", (c) => c.notNull())
        .addColumn("at", caps.types.bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint("amber_compute_failures_pk", ["feature", "version", "entity"])
        .execute()
      await db.schema
        .createTable(CURSORS)
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("position", caps.types.bigint, (c) => c.notNull())
        .addColumn("updated_at", caps.types.bigint, (c) => c.notNull())
        .execute()
    }
  }
}
