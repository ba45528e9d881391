import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { sql } from "kysely"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { Database } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"
import { VectorIndex } from "../src/internal/hnsw.js"
import { dbIndexName, PayloadMirror } from "../src/internal/payloadIndex.js"
import * as Sql from "../src/internal/query.js"
import { clustered, exactCosine } from "./fixtures.js"

const Item = AnnotationType.make({
  name: "px-item",
  version: "1.0",
  payload: Schema.Struct({ genre: Schema.String, score: Schema.Int, flag: Schema.Boolean, note: Schema.String }),
  vectors: { embedding: { dimension: 16, metric: "cosine" } },
  indexes: ["payload.genre", "payload.score", "payload.flag"]
})
/** The next minor version leaves `payload.score` out: its index goes. */
const ItemV11 = AnnotationType.make({
  name: "px-item",
  version: "1.1",
  payload: Schema.Struct({ genre: Schema.String, score: Schema.Int, flag: Schema.Boolean, note: Schema.String }),
  vectors: { embedding: { dimension: 16, metric: "cosine" } },
  indexes: ["payload.genre", "payload.flag"]
})

const N = 1500
const data = clustered(N, 16, 12, 7)
const producer = { algorithm: "px", version: "1" }
const payloadOf = (i: number, run = 0) => ({
  genre: `g${(i + run) % 10}`,
  score: (i + run) % 100,
  flag: i % 3 === 0,
  note: `n${i % 5}`
})

const services = (storage: Layer.Layer<Database.Database, any>) =>
  Annotations.layerWithRegistry().pipe(Layer.provideMerge(storage))

/** The payload indexes present in the database. */
const indexNames = (adapter: string) =>
  Database.use("px.indexes", async (k) => {
    const r =
      adapter === "pg"
        ? await sql<{
            name: string
          }>`select indexname as name from pg_indexes where schemaname = current_schema() and indexname like 'marken_px_%'`.execute(
            k
          )
        : await sql<{
            name: string
          }>`select name from sqlite_master where type = 'index' and name like 'marken_px_%'`.execute(k)
    return r.rows.map((x) => x.name).sort()
  })

let plans = 0

/** The plan of the SQL `query` writes for a filter, with sequential scans discouraged on PostgreSQL. */
const planOf = (adapter: string, where: Parameters<typeof Sql.conditions>[1]) =>
  Effect.gen(function* () {
    const db = yield* Database.Database
    const conds = Sql.conditions(db.capabilities, where)
    // a new statement each time (SQLite's statement cache would explain a statement prepared before a change)
    const body = sql`select a.id, ${sql.lit(plans++)} as n from marken_annotations a where ${sql.join(conds, sql` and `)}`
    if (adapter !== "pg") {
      const r = yield* db.use("px.plan", (k) => sql<{ detail: string }>`explain query plan ${body}`.execute(k))
      return r.rows.map((x) => String(x.detail)).join("\n")
    }
    return yield* db.transaction(
      db.use("px.plan", async (k) => {
        await sql`analyze marken_annotations`.execute(k)
        await sql`set local enable_seqscan = off`.execute(k)
        const r = await sql<Record<string, string>>`explain ${body}`.execute(k)
        return r.rows.map((x) => Object.values(x).join(" ")).join("\n")
      })
    )
  })

const seed = (run = 0) =>
  Effect.gen(function* () {
    const annotations = yield* Annotations.Annotations
    const op = yield* annotations.start({ type: "px-item", version: "1.0", producer })
    const written = yield* annotations.upsert(
      op.id,
      data.map((v, i) => ({
        entity: `video:${i % 7}`,
        key: `k${i}`,
        payload: payloadOf(i, run),
        vectors: { embedding: v }
      }))
    )
    yield* annotations.finish(op.id)
    return new Map(written.written.map((w) => [w.id, w.index]))
  })

const queries = clustered(12, 16, 12, 7).map((v) => Float32Array.from(v, (x, j) => x + (j % 2 ? 0.02 : -0.02)))

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Marken payload indexes on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }

  layer(services(adapter.layer), { timeout: 120_000 })(`Marken payload indexes on ${adapter.name}`, (it) => {
    it.effect(
      "declared indexes are database indexes the query plans use, created and dropped as type versions change",
      () =>
        Effect.gen(function* () {
          const registry = yield* Registry.Registry
          yield* registry.register(Item)
          expect((yield* registry.get("px-item", "1.0")).indexes).toEqual([
            "payload.genre",
            "payload.score",
            "payload.flag"
          ])
          const names = yield* indexNames(adapter.name)
          expect(names).toEqual(
            [dbIndexName("text", ["genre"]), dbIndexName("number", ["score"]), dbIndexName("text", ["flag"])].sort()
          )
          yield* seed()
          const where = { type: "px-item", version: "1.0" } as const
          const scorePlan = yield* planOf(adapter.name, {
            ...where,
            where: [{ field: "score", op: "range", gte: 3, lt: 4 }]
          })
          expect(scorePlan).toContain(dbIndexName("number", ["score"]))
          const genrePlan = yield* planOf(adapter.name, {
            ...where,
            where: [{ field: "genre", op: "eq", value: "g3" }]
          })
          expect(genrePlan).toContain(dbIndexName("text", ["genre"]))
          // queries through the index answer as before
          const annotations = yield* Annotations.Annotations
          const page = yield* annotations.query({
            ...where,
            where: [
              { field: "score", op: "range", gte: 3, lt: 5 },
              { field: "genre", op: "eq", value: "g3" }
            ],
            limit: 1000
          })
          expect(page.items.length).toBe(data.filter((_, i) => i % 100 === 3).length)
          // the newest version leaves payload.score out: its index is dropped, the others stay
          yield* registry.register(ItemV11)
          expect(yield* indexNames(adapter.name)).toEqual(
            [dbIndexName("text", ["genre"]), dbIndexName("text", ["flag"])].sort()
          )
          const unindexed = yield* planOf(adapter.name, {
            ...where,
            where: [{ field: "score", op: "range", gte: 3, lt: 4 }]
          })
          expect(unindexed).not.toContain(dbIndexName("number", ["score"]))
          // registering the same version again with other indexes changes only the indexes
          yield* registry.register(AnnotationType.make({ ...ItemV11, indexes: ["payload.genre", "payload.score"] }))
          expect((yield* registry.get("px-item", "1.1")).indexes).toEqual(["payload.genre", "payload.score"])
          expect(yield* indexNames(adapter.name)).toEqual(
            [dbIndexName("text", ["genre"]), dbIndexName("number", ["score"])].sort()
          )
          // a path that is not a payload field is refused
          const bad = yield* Effect.flip(
            registry.register(AnnotationType.make({ ...ItemV11, version: "1.2", indexes: ["genre; drop table x"] }))
          )
          expect(bad._tag).toBe("IncompatibleTypeError")
          expect((bad as any).path).toBe("indexes.0")
        })
    )

    it.effect("filtered kNN on indexed fields: k whenever k match, as exact search, following writes", () =>
      Effect.gen(function* () {
        const registry = yield* Registry.Registry
        yield* registry.register(Item)
        let idOf = yield* seed()
        const annotations = yield* Annotations.Annotations
        const all = data.map((_, i) => i)
        const check = (
          where: ReadonlyArray<any>,
          accept: (i: number) => boolean,
          extra: Record<string, unknown> = {},
          minRecall = 0.95
        ) =>
          Effect.gen(function* () {
            let r = 0
            for (const q of queries) {
              const hits = yield* annotations.search({
                type: "px-item",
                version: "1.0",
                field: "embedding",
                vector: q,
                k: 10,
                filter: { type: "px-item", version: "1.0", where, ...extra }
              })
              const matching = all.filter(accept)
              expect(hits.length).toBe(Math.min(10, matching.length))
              const got = hits.map((h) => idOf.get(h.id)!)
              for (const g of got) expect(accept(g)).toBe(true)
              const want = exactCosine(q, data, matching, 10).map((e) => e.i)
              const w = new Set(want)
              r += want.length === 0 ? 1 : got.filter((g) => w.has(g)).length / want.length
            }
            expect(r / queries.length).toBeGreaterThanOrEqual(minRecall)
          })
        // 1% (exact over 15), 10% (traversal or exact by cost), 50%, eq on text, in, boolean, two conditions
        yield* check([{ field: "score", op: "range", gte: 7, lt: 8 }], (i) => i % 100 === 7)
        yield* check([{ field: "score", op: "range", gte: 10, lt: 20 }], (i) => i % 100 >= 10 && i % 100 < 20)
        yield* check([{ field: "score", op: "range", gt: 49 }], (i) => i % 100 > 49)
        yield* check([{ field: "genre", op: "eq", value: "g4" }], (i) => i % 10 === 4)
        yield* check([{ field: "genre", op: "in", values: ["g1", "g2"] }], (i) => i % 10 === 1 || i % 10 === 2)
        yield* check([{ field: "flag", op: "eq", value: true }], (i) => i % 3 === 0)
        yield* check(
          [
            { field: "genre", op: "eq", value: "g4" },
            { field: "score", op: "range", lte: 50 }
          ],
          (i) => i % 10 === 4 && i % 100 <= 50
        )
        // no match at all, and a condition on a field that is not indexed (SQL, same answers)
        yield* check([{ field: "score", op: "range", gt: 1000 }], () => false)
        yield* check([{ field: "note", op: "eq", value: "n2" }], (i) => i % 5 === 2)
        // an indexed condition with a non-payload one (entities): SQL, same answers
        yield* check([{ field: "score", op: "range", lt: 30 }], (i) => i % 100 < 30 && i % 7 === 3, {
          entities: ["video:3"]
        })
        // a new run with shifted payloads: the filtered search follows it at once
        idOf = yield* seed(1)
        yield* check([{ field: "score", op: "range", gte: 7, lt: 8 }], (i) => (i + 1) % 100 === 7)
        yield* check([{ field: "genre", op: "eq", value: "g4" }], (i) => (i + 1) % 10 === 4)
        // deletions: gone from the filtered answers
        const doomed = [...idOf].filter(([, i]) => (i + 1) % 10 === 4 && i % 2 === 0).map(([id]) => id)
        yield* annotations.removeMany(doomed)
        yield* check([{ field: "genre", op: "eq", value: "g4" }], (i) => (i + 1) % 10 === 4 && i % 2 !== 0)
      })
    )
  })
}

describe("the cost model of filtered kNN", () => {
  it("scans small matching sets exactly and traverses the graph for large ones", () => {
    const tuning = { m: 16, efConstruction: 16, ef: 64, exactThreshold: undefined }
    const idx = new VectorIndex({ type: "t", version: "1.0", field: "f" }, 4, "cosine", tuning)
    idx.init(5_000)
    clustered(5_000, 4, 3, 1).forEach((v, i) => idx.add({ seq: i + 1, id: `a${i}`, op: "o", vector: v }))
    // 1% of 5,000: 50 exact distances beat a traversal fetching 2,000 candidates
    expect(idx.plan(50, 10, 64).exact).toBe(true)
    // 10%: 500 exact distances still beat a traversal of 216 candidates (about 32 native distances each)
    expect(idx.plan(500, 10, 64).exact).toBe(true)
    // 30%: a traversal of about 83 candidates beats 1,500 exact distances
    const thirty = idx.plan(1_500, 10, 64)
    expect(thirty.exact).toBe(false)
    expect(thirty.fetch).toBeLessThan(100)
    // every vector matching: a plain traversal; fewer matches than k: exact
    expect(idx.plan(5_000, 10, 64).exact).toBe(false)
    expect(idx.plan(5, 10, 64).exact).toBe(true)
    // a threshold set in the options wins
    const forced = new VectorIndex({ type: "t", version: "1.0", field: "f" }, 4, "cosine", {
      ...tuning,
      exactThreshold: 2_000
    })
    forced.init(5_000)
    clustered(5_000, 4, 3, 1).forEach((v, i) => forced.add({ seq: i + 1, id: `a${i}`, op: "o", vector: v }))
    expect(forced.plan(1_500, 10, 64).exact).toBe(true)
  })

  it("counts the exact scan that follows a traversal finding fewer than k: a 5% set scans at once", () => {
    const tuning = { m: 4, efConstruction: 8, ef: 64, exactThreshold: undefined }
    const idx = new VectorIndex({ type: "t", version: "1.0", field: "f" }, 4, "cosine", tuning)
    idx.init(20_000)
    clustered(20_000, 4, 3, 1).forEach((v, i) => idx.add({ seq: i + 1, id: `a${i}`, op: "o", vector: v }))
    // 5% of 20,000: a traversal of about 416 candidates (832 at m=4) beats a scan of 1,000 only if
    // it never falls back; with half the scan counted (500) the scan wins
    const five = idx.plan(1_000, 10, 64)
    expect(five.ef * 2 * tuning.m * 0.25).toBeLessThan(five.exactCost)
    expect(five.exact).toBe(true)
    expect(five.traverseCost).toBeGreaterThan(five.exactCost)
    // 10%: a traversal of 216 candidates (432, plus 1,000) still wins over a scan of 2,000
    expect(idx.plan(2_000, 10, 64).exact).toBe(false)
  })
})

describe("the exact scan over the payload mirror's slots", () => {
  for (const metric of ["cosine", "l2"] as const) {
    it(`gives what a plain scan of every matching vector gives (${metric}, zero vectors, two operations, deletions)`, () => {
      const tuning = { m: 16, efConstruction: 32, ef: 64, exactThreshold: undefined }
      const idx = new VectorIndex({ type: "t", version: "1.0", field: "f" }, 16, metric, tuning)
      idx.init(3_000)
      const mirror = new PayloadMirror([["score"], ["genre"]], (label) => idx.slotOf(label))
      idx.mirror = mirror
      const vectors = clustered(3_000, 16, 10, 3).map((v, i) => (i % 97 === 0 ? new Float32Array(16) : v))
      vectors.forEach((vector, i) => {
        idx.add({
          seq: i + 1,
          id: `a${i}`,
          op: i % 5 === 0 ? "old" : "current",
          vector,
          payload: { score: i % 50, genre: i % 3 === 0 ? "drama" : "comedy" }
        })
      })
      for (let i = 0; i < 3_000; i += 11) idx.remove(i + 1)
      const visibleOp = (op: string) => op === "current"
      const visible = (label: number) => idx.labels.get(label)?.op === "current"
      // the reference: every live, visible, matching vector, its distance in plain double precision
      const plain = (q: Float32Array, where: ReadonlyArray<{ field: string } & Record<string, unknown>>, k: number) => {
        const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))
        const ranked: Array<{ label: number; distance: number }> = []
        vectors.forEach((v, i) => {
          const label = i + 1
          const payload = { score: i % 50, genre: i % 3 === 0 ? "drama" : "comedy" }
          if (!idx.labels.has(label) || !visible(label)) return
          const ok = where.every((c) =>
            c.field === "genre"
              ? payload.genre === c.value
              : c.op === "in"
                ? (c.values as Array<number>).includes(payload.score)
                : (c.gte === undefined || payload.score >= (c.gte as number)) &&
                  (c.gt === undefined || payload.score > (c.gt as number)) &&
                  (c.lt === undefined || payload.score < (c.lt as number)) &&
                  (c.lte === undefined || payload.score <= (c.lte as number))
          )
          if (!ok) return
          let distance = 0
          if (metric === "cosine") {
            let dot = 0
            for (let j = 0; j < 16; j++) dot += v[j]! * q[j]!
            const n = norm(v) * norm(q)
            distance = 1 - (n > 0 ? dot / n : 0)
          } else {
            for (let j = 0; j < 16; j++) distance += (v[j]! - q[j]!) ** 2
          }
          ranked.push({ label, distance })
        })
        return ranked.sort((a, b) => a.distance - b.distance).slice(0, k)
      }
      // equal up to ties (zero vectors tie): at each rank a label at the reference's distance, each label once
      const sameRanking = (
        got: ReadonlyArray<{ label: number; distance: number }>,
        want: ReadonlyArray<{ label: number; distance: number }>,
        all: ReadonlyMap<number, number>
      ) => {
        expect(got.length).toBe(want.length)
        expect(new Set(got.map((h) => h.label)).size).toBe(got.length)
        got.forEach((h, i) => {
          expect(h.distance).toBeCloseTo(want[i]!.distance, 4)
          expect(all.get(h.label)).toBeCloseTo(want[i]!.distance, 4)
        })
      }
      const wheres = [
        // 42 matches: not a whole number of the kernel's rounds of 8
        [{ field: "score", op: "range" as const, gte: 10, lt: 13 }],
        [{ field: "score", op: "in" as const, values: [3, 7, 41] }],
        // about 800 and 1,600 matches: more than one chunk of candidates
        [{ field: "genre", op: "eq" as const, value: "drama" }],
        [{ field: "genre", op: "eq" as const, value: "comedy" }],
        [
          { field: "genre", op: "eq" as const, value: "drama" },
          { field: "score", op: "range" as const, gt: 5, lte: 30 }
        ]
      ]
      for (const where of wheres) {
        const matching = mirror.match(where, visible)
        expect(matching.slots).toBeDefined()
        expect(matching.slots!.exact).toBe(where.length === 1)
        // (not vector 0: a zero vector, every cosine distance to it ties)
        for (const qi of [1, 5, 1234, 2999]) {
          const q = vectors[qi]!
          for (const k of [1, 10, 50]) {
            const all = plain(q, where, Number.POSITIVE_INFINITY)
            const want = all.slice(0, k)
            const distances = new Map(all.map((h) => [h.label, h.distance]))
            expect(want.length).toBe(k)
            sameRanking(
              idx.exactSlots(q, k, matching.slots!.parts, visibleOp, matching.slots!.exact, matching.accept),
              want,
              distances
            )
            sameRanking(idx.exact(q, k, matching.labels, undefined, matching.accept), want, distances)
          }
        }
      }
      // a mix of numbers and strings may list a label twice: no slots, the label path
      expect(mirror.match([{ field: "score", op: "in", values: [3, "3"] }], visible).slots).toBeUndefined()
    })
  }
})
