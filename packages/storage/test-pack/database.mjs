// Migrations, a transaction and a vector round trip through the installed @org/storage, on a SQLite file
// (better-sqlite3) and on PostgreSQL (pg, ORG_TEST_PG_URL) in a fresh schema that is dropped afterwards.
// Without ORG_TEST_PG_URL the PostgreSQL part is skipped with a message, except under CI where that is a failure.
import { Effect } from "effect"
import { Database, Vector } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"

const program = Effect.gen(function* () {
  const db = yield* Database.Database
  yield* db.migrate("pack-test", {
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
  const embedding = yield* Vector.encode(new Float32Array([0.25, -1, 3]), { dimension: 3, finite: true })
  yield* db.transaction(db.use("items.insert", (k) => k.insertInto("items").values({ id: "a", embedding }).execute()))
  // a failing transaction writes nothing
  const failed = yield* db
    .transaction(
      Effect.zipRight(
        db.use("items.insert", (k) => k.insertInto("items").values({ id: "b", embedding }).execute()),
        Effect.fail("boom")
      )
    )
    .pipe(Effect.flip)
  if (failed !== "boom") throw new Error(`expected the transaction to fail, got ${failed}`)
  const rows = yield* db.use("items.select", (k) => k.selectFrom("items").selectAll().execute())
  if (rows.length !== 1) throw new Error(`expected 1 row after the rolled back transaction, got ${rows.length}`)
  const back = Array.from(yield* Vector.decode(rows[0].embedding, 3))
  if (back.join() !== "0.25,-1,3") throw new Error(`vector round trip gave ${back}`)
  return `migrated, rolled back a failed transaction, vector ${back.join(",")}`
})

const url = process.env.ORG_TEST_PG_URL
if (!url) {
  if (process.env.CI) throw new Error("ORG_TEST_PG_URL is not set under CI: the PostgreSQL part must run")
  console.log("SKIPPED storage on PostgreSQL: ORG_TEST_PG_URL is not set")
}
// a temporary SQLite file, and PostgreSQL in a fresh schema dropped at the end (both from @org/storage/testing)
for (const [name, layer] of [
  ["SQLite file", StorageTesting.sqliteFile],
  ...(url ? [["PostgreSQL (fresh schema, dropped)", StorageTesting.pgFresh(url)]] : [])
]) {
  console.log(`storage on ${name}: ${await Effect.runPromise(program.pipe(Effect.provide(layer)))}`)
}
