// The plan of an entity query with a payload range (issue 11: the HTTP query row of bench/marken).
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { sql } from "kysely"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { Database } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"
import { dbIndexName } from "../src/internal/payloadIndex.js"
import * as Sql from "../src/internal/query.js"

const Shot = AnnotationType.make({
  name: "plan-shot",
  version: "1.0",
  payload: Schema.Struct({ bucket: Schema.Int }),
  indexes: ["payload.bucket"]
})
const producer = { algorithm: "plan", version: "1" }
const ENTITIES = 20
const N = 2000

let plans = 0

/**
 * The plan of the statement `Annotations.query` runs for `q` (its conditions on the current
 * runs, ordered by id, one row more than the limit), on a new statement each time (SQLite's
 * statement cache). Sequential scans are discouraged on PostgreSQL (the table is small).
 */
const planOf = (adapter: string, q: Parameters<typeof Sql.conditions>[1]) =>
  Effect.gen(function* () {
    const db = yield* Database.Database
    const runs = yield* db.use("plan.runs", (k) =>
      sql<{ operation_id: string }>`select operation_id from marken_current`.execute(k)
    )
    const conds = Sql.conditions(
      db.capabilities,
      q,
      runs.rows.map((r) => r.operation_id)
    )
    const body = sql`select a.*, ${sql.lit(plans++)} as n from marken_annotations a where ${sql.join(conds, sql` and `)} order by a.id asc limit 21`
    if (adapter !== "pg") {
      const r = yield* db.use("plan", (k) => sql<{ detail: string }>`explain query plan ${body}`.execute(k))
      return r.rows.map((x) => String(x.detail)).join("\n")
    }
    return yield* db.transaction(
      db.use("plan", async (k) => {
        await sql`set local enable_seqscan = off`.execute(k)
        const r = await sql<Record<string, string>>`explain ${body}`.execute(k)
        return r.rows.map((x) => Object.values(x).join(" ")).join("\n")
      })
    )
  })

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Marken query plans on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }

  layer(Annotations.layerWithRegistry().pipe(Layer.provideMerge(adapter.layer)), { timeout: 120_000 })(
    `Marken query plans on ${adapter.name}`,
    (it) => {
      it.effect(
        "an entity query with a payload range reads the entity's rows through the entity index, not the payload index (statistics kept after a run)",
        () =>
          Effect.gen(function* () {
            yield* (yield* Registry.Registry).register(Shot)
            const annotations = yield* Annotations.Annotations
            const op = yield* annotations.start({ type: "plan-shot", version: "1.0", producer })
            yield* annotations.upsert(
              op.id,
              Array.from({ length: N }, (_, i) => ({
                entity: `video:${i % ENTITIES}`,
                key: `k${i}`,
                payload: { bucket: i % 100 }
              }))
            )
            yield* annotations.finish(op.id)
            const q = {
              type: "plan-shot",
              version: "1.0",
              entities: ["video:3"],
              where: [{ field: "bucket", op: "range", gte: 0, lt: 50 }],
              limit: 20
            } as const
            const plan = yield* planOf(adapter.name, q)
            expect(plan).toContain("marken_annotations_entity")
            expect(plan).not.toContain(dbIndexName("number", ["bucket"]))
            // and the answer: the entity's rows in the range, by id
            const page = yield* annotations.query(q)
            expect(page.items.length).toBe(20)
            for (const a of page.items) {
              expect(a.entity).toBe("video:3")
              expect((a.payload as { bucket: number }).bucket).toBeLessThan(50)
            }
            const ids = page.items.map((a) => a.id)
            expect(ids).toEqual([...ids].sort())
          })
      )
    }
  )
}
