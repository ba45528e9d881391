/**
 * A table of this program's own, migrated once, written in a transaction, read back.
 * Run: npx tsx quickstart.ts (again and again: the migration runs once, the upsert is idempotent)
 */
import { Effect } from "effect"
import { Database, Vector } from "@org/storage"
import { SqliteStorage } from "@org/storage/sqlite"

const program = Effect.gen(function* () {
  const db = yield* Database.Database
  // each package registers its own ordered migrations, in their own migration table
  yield* db.migrate("my-app", {
    "0001_items": {
      up: async (k, caps) => {
        await k.schema
          .createTable("items")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("embedding", caps.types.binary)
          .execute()
      }
    }
  })
  const embedding = yield* Vector.encode(new Float32Array([0.1, 0.2]), { dimension: 2, finite: true })
  // one transaction: commits on success, rolls back on failure or interruption; nested use joins it
  yield* db.transaction(
    db.use("items.upsert", (k) =>
      k
        .insertInto("items")
        .values({ id: "a", embedding })
        .onConflict((oc) => oc.column("id").doUpdateSet({ embedding }))
        .execute()
    )
  )
  const rows = yield* db.use("items.count", (k) => k.selectFrom("items").select("id").execute())
  console.log(`items: ${rows.map((r) => r.id).join(", ")}`)
})

Effect.runPromise(program.pipe(Effect.provide(SqliteStorage.layer({ filename: "app.db" }))))
