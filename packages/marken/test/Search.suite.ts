import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { StorageTesting } from "@org/storage/testing"
import { clustered, exactCosine, marken, rng, vec, withShared } from "./fixtures.js"

const Frame = AnnotationType.make({
  name: "frame",
  version: "1.0",
  payload: Schema.Struct({ bucket: Schema.Int, scene: Schema.String }),
  vectors: { embedding: { dimension: 16, metric: "cosine" }, colour: { dimension: 3, metric: "l2" } }
})

const N = 1500
const data = clustered(N, 16, 12, 42)
const producer = { algorithm: "embedder", version: "1" }

/** Writes N frames in one finished operation; bucket = i % 100 (so bucket 0 is 1%, buckets < 10 are 10%). */
const seed = Effect.gen(function* () {
  const registry = yield* Registry.Registry
  yield* registry.register(Frame)
  const annotations = yield* Annotations.Annotations
  const op = yield* annotations.start({ type: "frame", version: "1.0", producer })
  const written = yield* annotations.upsert(
    op.id,
    data.map((v, i) => ({
      entity: `video:${i % 7}`,
      key: `f${i}`,
      time: { startNs: i * 40_000_000, endNs: (i + 1) * 40_000_000 },
      payload: { bucket: i % 100, scene: `s${Math.floor(i / 50)}` },
      vectors: { embedding: v }
    }))
  )
  yield* annotations.finish(op.id)
  const idOf = new Map(written.written.map((w) => [w.id, w.index]))
  return { annotations, op, idOf }
})

const recall = (got: ReadonlyArray<number>, want: ReadonlyArray<number>) => {
  const w = new Set(want)
  return got.filter((g) => w.has(g)).length / Math.max(1, want.length)
}

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Marken search on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }

  layer(marken({ exactThreshold: 64 })(adapter.layer), { timeout: 120_000 })(
    `Marken search on ${adapter.name}`,
    (it) => {
      it.effect(
        "kNN matches exact search, filtered kNN returns k whenever k match, runs stay invisible until finish",
        () =>
          Effect.gen(function* () {
            const { annotations, idOf } = yield* seed
            const all = data.map((_, i) => i)
            const queries = clustered(20, 16, 12, 42).map((v) =>
              Float32Array.from(v, (x, j) => x + (j % 2 ? 0.01 : -0.01))
            )
            let r = 0
            for (const q of queries) {
              const hits = yield* annotations.search({
                type: "frame",
                version: "1.0",
                field: "embedding",
                vector: q,
                k: 10,
                ef: 100
              })
              expect(hits.length).toBe(10)
              r += recall(
                hits.map((h) => idOf.get(h.id)!),
                exactCosine(q, data, all, 10).map((e) => e.i)
              )
              expect([...hits].sort((a, b) => a.distance - b.distance)).toEqual(hits)
            }
            expect(r / queries.length).toBeGreaterThanOrEqual(0.95)

            // filtered: 1% (15 match, exact), 10% (150 match, widened HNSW), 3 match (< k)
            for (const [where, expected] of [
              [[{ field: "bucket", op: "eq", value: 0 }], all.filter((i) => i % 100 === 0)],
              [[{ field: "bucket", op: "range", lt: 10 }], all.filter((i) => i % 100 < 10)],
              [
                [
                  { field: "scene", op: "in", values: ["s3"] },
                  { field: "bucket", op: "range", gte: 50, lt: 53 }
                ],
                all.filter((i) => Math.floor(i / 50) === 3 && i % 100 >= 50 && i % 100 < 53)
              ]
            ] as const) {
              let fr = 0
              for (const q of queries.slice(0, 10)) {
                const hits = yield* annotations.search({
                  type: "frame",
                  version: "1.0",
                  field: "embedding",
                  vector: q,
                  k: 10,
                  filter: { where: where as any }
                })
                expect(hits.length).toBe(Math.min(10, expected.length))
                const got = hits.map((h) => idOf.get(h.id)!)
                expect(got.every((i) => expected.includes(i))).toBe(true)
                fr += recall(
                  got,
                  exactCosine(q, data, expected, 10).map((e) => e.i)
                )
              }
              expect(fr / 10).toBeGreaterThanOrEqual(0.95)
            }
            // filters on entity and time combine with the index too
            const byEntity = yield* annotations.search({
              type: "frame",
              version: "1.0",
              field: "embedding",
              vector: queries[0]!,
              k: 25,
              filter: { entities: ["video:3"], time: { startNs: 0, endNs: 20_000_000_000 } }
            })
            const expectedEntity = all.filter((i) => i % 7 === 3 && i * 40_000_000 <= 20_000_000_000)
            expect(byEntity.length).toBe(25)
            expect(byEntity.every((h) => expectedEntity.includes(idOf.get(h.id)!))).toBe(true)

            // a new run is invisible to search until it finishes, then replaces the old one
            const run = yield* annotations.start({ type: "frame", version: "1.0", producer })
            const target = Float32Array.from({ length: 16 }, (_, j) => (j === 0 ? 1 : 0))
            yield* annotations.upsert(run.id, [
              { entity: "video:new", key: "n", payload: { bucket: 1, scene: "x" }, vectors: { embedding: target } }
            ])
            const before = yield* annotations.search({
              type: "frame",
              version: "1.0",
              field: "embedding",
              vector: target,
              k: 3
            })
            expect(before.every((h) => idOf.has(h.id))).toBe(true)
            const inRun = yield* annotations.search({
              type: "frame",
              version: "1.0",
              field: "embedding",
              vector: target,
              k: 3,
              filter: { operationId: run.id }
            })
            expect(inRun.length).toBe(1)
            // a filtered search (its matching set cached) sees the run only once it finishes
            const byNewEntity = annotations.search({
              type: "frame",
              version: "1.0",
              field: "embedding",
              vector: target,
              k: 3,
              filter: { entities: ["video:new"] }
            })
            expect(yield* byNewEntity).toEqual([])
            expect(yield* byNewEntity).toEqual([])
            yield* annotations.finish(run.id)
            expect((yield* byNewEntity).length).toBe(1)
            const after = yield* annotations.search({
              type: "frame",
              version: "1.0",
              field: "embedding",
              vector: target,
              k: 3
            })
            expect(after.length).toBe(1)
            expect(after[0]!.distance).toBeCloseTo(0, 5)
            // deleting it removes it from the index
            yield* annotations.remove(after[0]!.id)
            expect(yield* byNewEntity).toEqual([])
            expect(
              yield* annotations.search({ type: "frame", version: "1.0", field: "embedding", vector: target, k: 3 })
            ).toEqual([])
            // bad searches
            const dim = yield* Effect.flip(
              annotations.search({ type: "frame", version: "1.0", field: "embedding", vector: [1, 2], k: 3 })
            )
            expect(dim).toMatchObject({ _tag: "InvalidQueryError", path: "vector" })
            const field = yield* Effect.flip(
              annotations.search({ type: "frame", version: "1.0", field: "nope", vector: [1], k: 3 })
            )
            expect(field).toMatchObject({ _tag: "InvalidQueryError", path: "field" })
          })
      )

      it.effect("pairs: the top-K most similar pairs between two sets match brute force", () =>
        Effect.gen(function* () {
          const annotations = yield* Annotations.Annotations
          const registry = yield* Registry.Registry
          yield* registry.register(Frame)
          const r = rng(9)
          const op = yield* annotations.start({
            type: "frame",
            version: "1.0",
            producer: { algorithm: "pairs", version: "1" }
          })
          const left = Array.from({ length: 30 }, () => vec(r, 3))
          const right = Array.from({ length: 40 }, () => vec(r, 3))
          const w = yield* annotations.upsert(op.id, [
            ...left.map((v, i) => ({
              entity: "L",
              key: `l${i}`,
              payload: { bucket: 0, scene: "l" },
              vectors: { colour: v }
            })),
            ...right.map((v, i) => ({
              entity: "R",
              key: `r${i}`,
              payload: { bucket: 0, scene: "r" },
              vectors: { colour: v }
            }))
          ])
          yield* annotations.finish(op.id)
          const ids = w.written.map((x) => x.id)
          const pairs = yield* annotations.pairs({
            type: "frame",
            version: "1.0",
            field: "colour",
            left: { entities: ["L"], producer: "pairs" },
            right: { entities: ["R"], producer: "pairs" },
            k: 15
          })
          const brute: Array<{ l: number; r: number; d: number }> = []
          left.forEach((a, i) =>
            right.forEach((b, j) => brute.push({ l: i, r: j, d: a.reduce((s, x, t) => s + (x - b[t]!) ** 2, 0) }))
          )
          brute.sort((a, b) => a.d - b.d)
          expect(pairs.map((p) => [ids.indexOf(p.left), ids.indexOf(p.right) - 30])).toEqual(
            brute.slice(0, 15).map((b) => [b.l, b.r])
          )
          pairs.forEach((p, i) => expect(p.distance).toBeCloseTo(brute[i]!.d, 4))
        })
      )
    }
  )

  if (adapter.name !== "sqlite-memory") {
    it.live(
      `index files: persisted, reused, caught up when stale, rebuilt when missing, truncated or corrupt (${adapter.name})`,
      () =>
        withShared(adapter, "marken", (shared, dir) =>
          Effect.gen(function* () {
            const key = { type: "frame", version: "1.0", field: "embedding" }
            const q = data[5]!
            const session = <A, E>(
              f: Effect.Effect<A, E, Annotations.Annotations | Registry.Registry>,
              withIndex = true
            ) => Effect.scoped(Effect.provide(f, marken(withIndex ? { indexDirectory: dir } : {})(shared.layer)))
            const top = Effect.flatMap(Annotations.Annotations, (a) =>
              a.search({ type: "frame", version: "1.0", field: "embedding", vector: q, k: 5 })
            )
            const first = yield* session(
              Effect.gen(function* () {
                yield* seed
                const a = yield* Annotations.Annotations
                const stats = yield* a.loadIndex(key)
                expect(stats.origin).toBe("rebuilt (missing)")
                return yield* top
              })
            )
            const files = fs.readdirSync(dir)
            expect(files.filter((f) => f.endsWith(".hnsw")).length).toBe(1)
            const indexFile = path.join(dir, files.find((f) => f.endsWith(".hnsw"))!)
            // reused as is
            expect(yield* session(Effect.flatMap(Annotations.Annotations, (a) => a.loadIndex(key)))).toMatchObject({
              origin: "file",
              size: N
            })
            // written by a process without the index: the file is stale and catches up
            const extra = yield* session(
              Effect.gen(function* () {
                const a = yield* Annotations.Annotations
                const op = yield* a.start({ type: "frame", version: "1.0", producer })
                yield* a.upsert(op.id, [
                  { entity: "late", key: "late", payload: { bucket: 1, scene: "z" }, vectors: { embedding: q } }
                ])
                yield* a.finish(op.id)
                return op.id
              }),
              false
            )
            const caught = yield* session(
              Effect.gen(function* () {
                const a = yield* Annotations.Annotations
                const stats = yield* a.loadIndex(key)
                const hits = yield* top
                return { stats, hits, ids: (yield* a.query({ operationId: extra })).items.map((x) => x.id) }
              })
            )
            expect(caught.stats.origin).toBe("file (caught up with the database)")
            expect(caught.stats.size).toBe(N + 1)
            expect(caught.hits[0]!.id).toBe(caught.ids[0])
            // deleted, truncated, corrupted: rebuilt, same answers
            const check = (expected: string) =>
              session(
                Effect.gen(function* () {
                  const a = yield* Annotations.Annotations
                  const stats = yield* a.loadIndex(key)
                  expect(stats.origin).toContain(expected)
                  expect(stats.size).toBe(N + 1)
                  expect((yield* top).map((h) => h.id)).toEqual(caught.hits.map((h) => h.id))
                })
              )
            fs.rmSync(indexFile)
            yield* check("rebuilt (missing)")
            fs.truncateSync(indexFile, Math.floor(fs.statSync(indexFile).size / 2))
            yield* check("rebuilt (truncated")
            const bytes = fs.readFileSync(indexFile)
            for (let i = 100; i < bytes.length; i += 997) bytes[i] = bytes[i]! ^ 0xff
            fs.writeFileSync(indexFile, bytes)
            yield* check("rebuilt (corrupt")
            yield* check("file")
            expect(first.length).toBe(5)
          })
        )
    )
  }
}
