import { describe, expect, it, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer } from "effect"
import { type Generated, sql } from "kysely"
import { Database, Vector } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"

const items = {
  "0001_items": {
    up: async (db: any, caps: Database.Capabilities) => {
      await db.schema
        .createTable("items")
        .addColumn("id", caps.types.bigint, (c: any) => caps.autoIncrementPrimaryKey(c))
        .addColumn("name", "text", (c: any) => c.notNull().unique())
        .addColumn("doc", caps.types.json)
        .addColumn("vec", caps.types.binary)
        .execute()
    }
  }
} satisfies Database.Migrations

/** The tables `items` creates, as a package declares them beside its migrations. */
interface ItemTables {
  items: { id: Generated<number | string>; name: string; doc: string | null; vec: Uint8Array | null }
}

const count = (table: string) =>
  Database.use("count", (db) =>
    db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow()
  ).pipe(Effect.map((r) => Number(r.n)))

const insert = (name: string) => Database.use("insert", (db) => db.insertInto("items").values({ name }).execute())

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Database conformance on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    console.warn(`[storage] ${adapter.skip}`)
    continue
  }

  layer(adapter.layer)(`Database conformance on ${adapter.name}`, (it) => {
    it.effect("applies a package's migrations once and records them in its own table", () =>
      Effect.gen(function* () {
        yield* Database.migrate("@org/test-items", items)
        yield* Database.migrate("@org/test-items", items)
        yield* insert("a")
        expect(yield* count("items")).toBe(1)
        expect(yield* count("migrations_org_test_items")).toBe(1)
      })
    )

    it.effect("queries through a package's declared tables (Database.typed): tsc checks the names", () =>
      Effect.gen(function* () {
        yield* Database.migrate("@org/test-items", items)
        const use = Database.typed<ItemTables>(yield* Database.Database)
        const name = `typed-${Date.now().toString(36)}`
        yield* use("typed.insert", (k) => k.insertInto("items").values({ name }).execute())
        const row = yield* use("typed.get", (k) =>
          k.selectFrom("items").select(["id", "name"]).where("name", "=", name).executeTakeFirst()
        )
        expect(row?.name).toBe(name)
        // what tsc refuses (type-checked by `npm run typecheck`, never run)
        const misspelled = () =>
          // @ts-expect-error: no column "nmae" in items
          use("typed.bad-column", (k) => k.selectFrom("items").select("nmae").execute())
        const unknown = () =>
          // @ts-expect-error: no table "itms"
          use("typed.bad-table", (k) => k.selectFrom("itms").selectAll().execute())
        expect([typeof misspelled, typeof unknown]).toEqual(["function", "function"])
      })
    )

    it.effect("reports its capabilities", () =>
      Effect.gen(function* () {
        const db = yield* Database.Database
        expect(db.capabilities.returning).toBe(true)
        expect(db.capabilities.transactionalDdl).toBe(true)
        expect(db.capabilities.skipLocked).toBe(adapter.name === "pg")
        expect(db.label).not.toContain("password")
      })
    )

    it.effect("leaves nothing behind when a migration fails", () =>
      Effect.gen(function* () {
        const broken = {
          "0001_ok": {
            up: async (db: any) => void (await db.schema.createTable("half").addColumn("x", "text").execute())
          },
          "0002_bad": { up: async (db: any) => void (await sql`this is not sql`.execute(db)) }
        } satisfies Database.Migrations
        const error = yield* Effect.flip(Database.migrate("@org/test-broken", broken))
        expect(error._tag).toBe("StorageError")
        expect(error.operation).toBe("migrate:@org/test-broken")
        expect(error.message).toContain("0002_bad")
        const exists = yield* Effect.exit(count("half"))
        expect(Exit.isFailure(exists)).toBe(true)
        // once fixed, both run
        yield* Database.migrate("@org/test-broken", { ...broken, "0002_bad": { up: async () => undefined } })
        expect(yield* count("half")).toBe(0)
      })
    )

    it.effect("commits a transaction that succeeds", () =>
      Effect.gen(function* () {
        yield* Database.migrate("@org/test-items", items)
        const before = yield* count("items")
        yield* Database.transaction(Effect.zipRight(insert("t1"), insert("t2")))
        expect(yield* count("items")).toBe(before + 2)
      })
    )

    it.effect("rolls back a transaction that fails, dies or is interrupted", () =>
      Effect.gen(function* () {
        yield* Database.migrate("@org/test-items", items)
        const before = yield* count("items")
        const failed = yield* Effect.exit(
          Database.transaction(Effect.zipRight(insert("r1"), Effect.fail("boom" as const)))
        )
        expect(Exit.isFailure(failed) && Cause.failureOption(failed.cause)._tag === "Some").toBe(true)
        yield* Effect.exit(Database.transaction(Effect.zipRight(insert("r2"), Effect.die(new Error("defect")))))
        const fiber = yield* Effect.fork(Database.transaction(Effect.zipRight(insert("r3"), Effect.never)))
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 50)))
        yield* Fiber.interrupt(fiber)
        expect(yield* count("items")).toBe(before)
        // a unique violation inside the transaction also rolls back the earlier insert
        yield* insert("dup")
        const dup = yield* Effect.flip(Database.transaction(Effect.zipRight(insert("r4"), insert("dup"))))
        expect(dup._tag).toBe("StorageError")
        expect(yield* count("items")).toBe(before + 1)
      })
    )

    it.effect("nested transactions join the outer one", () =>
      Effect.gen(function* () {
        yield* Database.migrate("@org/test-items", items)
        const before = yield* count("items")
        const db = yield* Database.Database
        const result = yield* Effect.exit(
          db.transaction(
            Effect.gen(function* () {
              yield* db.transaction(insert("n1"))
              expect(yield* db.inTransaction).toBe(true)
              // the inner write is visible inside the outer transaction
              expect(yield* count("items")).toBe(before + 1)
              return yield* Effect.fail("outer fails")
            })
          )
        )
        expect(Exit.isFailure(result)).toBe(true)
        expect(yield* count("items")).toBe(before)
        expect(yield* db.inTransaction).toBe(false)
      })
    )

    it.effect("stores vectors as bytes and reads them back bit for bit", () =>
      Effect.gen(function* () {
        yield* Database.migrate("@org/test-items", items)
        const v = Float32Array.from({ length: 512 }, (_, i) => Math.sin(i) * 1e-3 + (i === 7 ? -0 : 0))
        const bytes = yield* Vector.encode(v, { dimension: 512, finite: true })
        yield* Database.use("insert-vec", (db) => db.insertInto("items").values({ name: "vec", vec: bytes }).execute())
        const row = yield* Database.use("read-vec", (db) =>
          db.selectFrom("items").select("vec").where("name", "=", "vec").executeTakeFirstOrThrow()
        )
        const back = yield* Vector.decode(row.vec, 512)
        expect(Buffer.from(back.buffer).equals(Buffer.from(v.buffer))).toBe(true)
        const wrong = yield* Effect.flip(Vector.decode(row.vec, 128))
        expect(wrong.message).toContain("expected 128")
      })
    )

    it.effect("stores JSON and filters on a field through the capability helper", () =>
      Effect.gen(function* () {
        yield* Database.migrate("@org/test-items", items)
        const db = yield* Database.Database
        const encode = (v: unknown) => JSON.stringify(v)
        yield* db.use("insert-json", (k) =>
          k
            .insertInto("items")
            .values([
              { name: "j1", doc: encode({ genre: "thriller", n: 1 }) },
              { name: "j2", doc: encode({ genre: "comedy", n: 2 }) }
            ])
            .execute()
        )
        const rows = yield* db.use("filter-json", (k) =>
          k
            .selectFrom("items")
            .select("name")
            .where(sql.raw(db.capabilities.jsonText("doc", ["genre"])), "=", "thriller")
            .execute()
        )
        expect(rows.map((r) => r.name)).toEqual(["j1"])
        // numbers compare as numbers; text where a number is expected is NULL, never a failing cast
        yield* db.use("insert-json", (k) =>
          k
            .insertInto("items")
            .values({ name: "j3", doc: encode({ genre: "drama", n: "ten" }) })
            .execute()
        )
        const numeric = yield* db.use("filter-json-number", (k) =>
          k
            .selectFrom("items")
            .select("name")
            .where(sql.raw(db.capabilities.jsonNumber("doc", ["n"])), ">=", 2)
            .execute()
        )
        expect(numeric.map((r) => r.name)).toEqual(["j2"])
        const nulls = yield* db.use("filter-json-number-null", (k) =>
          k
            .selectFrom("items")
            .select("name")
            .where(sql.raw(db.capabilities.jsonNumber("doc", ["genre"])), "is", null)
            .where("name", "like", "j%")
            .execute()
        )
        expect(nulls.map((r) => r.name).sort()).toEqual(["j1", "j2", "j3"])
      })
    )

    it.effect("refuses JSON keys that could carry SQL", () =>
      Effect.gen(function* () {
        yield* Database.migrate("@org/test-items", items)
        const db = yield* Database.Database
        const error = yield* Effect.flip(
          db.use("filter-json", (k) =>
            k
              .selectFrom("items")
              .select("name")
              .where(sql.raw(db.capabilities.jsonText("doc", ["x') or 1=1 --"])), "=", "a")
              .execute()
          )
        )
        expect(error.message).toContain("must be 1 to 128 letters")
      })
    )

    it.effect("wraps a failing query in a StorageError naming the operation", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Database.use("items.bogus", (db) => sql`select * from no_such_table`.execute(db))
        )
        expect(error._tag).toBe("StorageError")
        expect(error.operation).toBe("items.bogus")
        expect(error.message).toContain("items.bogus failed")
      })
    )
  })

  if (adapter.name !== "sqlite-memory") {
    it.live(`two connections migrating at once migrate once (${adapter.name})`, () =>
      Effect.gen(function* () {
        const key = `race_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`
        const shared = adapter.shared(key)
        const counted = {
          "0001_t": {
            up: async (db: any) => {
              await db.schema.createTable("runs").addColumn("x", "integer").execute()
              await db.insertInto("runs").values({ x: 1 }).execute()
            }
          }
        } satisfies Database.Migrations
        const once = Effect.gen(function* () {
          yield* Database.migrate("@org/test-race", counted)
          return yield* count("runs")
        }).pipe(Effect.provide(shared.layer))
        const results = yield* Effect.all([once, once, once], { concurrency: "unbounded" })
        expect(results).toEqual([1, 1, 1])
        // clean up the shared location
        yield* Database.use("cleanup", async (db) => {
          if (shared.location.kind === "pg")
            await sql`drop schema if exists ${sql.id(shared.location.schema!)} cascade`.execute(db)
        }).pipe(Effect.provide(shared.layer))
      }).pipe(Effect.scoped)
    )
  }
}

if (StorageTesting.pgUrl) {
  it.live("PostgreSQL: a package's migration tables in another schema do not confuse the migrator", () =>
    Effect.gen(function* () {
      const migrateAndCount = Effect.gen(function* () {
        yield* Database.migrate("@org/test-schemas", {
          "0001": {
            up: async (db: any) => void (await db.schema.createTable("only_here").addColumn("x", "integer").execute())
          }
        })
        return yield* count("only_here")
      })
      // the first schema stays open (with its migration tables) while the second migrates
      const first = yield* Layer.build(StorageTesting.pgFresh(StorageTesting.pgUrl!))
      expect(yield* Effect.provide(migrateAndCount, first)).toBe(0)
      const second = yield* Layer.build(StorageTesting.pgFresh(StorageTesting.pgUrl!))
      expect(yield* Effect.provide(migrateAndCount, second)).toBe(0)
    }).pipe(Effect.scoped)
  )
}

describe("Vector codec", () => {
  it.effect("refuses a wrong dimension, NaN, values beyond float32 and a byte length not divisible by 4", () =>
    Effect.gen(function* () {
      const dim = yield* Effect.flip(Vector.encode([1, 2, 3], { dimension: 4 }))
      expect(dim).toMatchObject({ _tag: "VectorError", expected: 4, actual: 3 })
      const nan = yield* Effect.flip(Vector.encode([1, Number.NaN], { finite: true }))
      expect(nan.message).toContain("component 1")
      // beyond float32 the stored value would be an infinity: refused, naming the component
      for (const big of [1e39, -1e39, Number.MAX_VALUE]) {
        const over = yield* Effect.flip(Vector.encode([0.5, 1, big], { finite: true }))
        expect(over.message).toContain("component 2")
        expect(over.message).toContain("float32")
      }
      // the largest float32 itself is accepted and read back exactly
      const max = yield* Vector.decode(yield* Vector.encode([3.4028234663852886e38, -1e-50], { finite: true }))
      expect(Array.from(max)).toEqual([3.4028234663852886e38, -0])
      const odd = yield* Effect.flip(Vector.decode(new Uint8Array(6)))
      expect(odd.message).toContain("not a multiple of 4")
      const ok = yield* Vector.decode(yield* Vector.encode([0.5, -2]))
      expect(Array.from(ok)).toEqual([0.5, -2])
    })
  )
})

// Layer is used in the conformance loop above
void Layer
