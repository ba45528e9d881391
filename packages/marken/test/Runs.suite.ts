// Readers during run switches made by another connection (issue 11, defect 1).
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema, TestClock } from "effect"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { StorageTesting } from "@org/storage/testing"
import { clustered, marken, producer, withShared } from "./fixtures.js"

const Clip = AnnotationType.make({
  name: "clip",
  version: "1.0",
  payload: Schema.Struct({ run: Schema.Int }),
  vectors: { embedding: { dimension: 32, metric: "cosine" } }
})

/** A turn of the event loop (I/O callbacks run), unlike `Effect.yieldNow`. */
const macrotask = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Marken runs on ${adapter.name} (${adapter.skip})`, () => it("skipped", () => undefined))
    continue
  }
  if (adapter.name === "sqlite-memory") continue

  it.effect(
    `kNN readers see the previous complete run or the new one, k hits each time, while another connection finishes runs (${adapter.name})`,
    () =>
      withShared(adapter, "mruns", (shared) =>
        Effect.gen(function* () {
          const data = clustered(300, 32, 6, 3)
          const items = (run: number) =>
            data.map((v, i) => ({ entity: `e${i}`, key: `k${i}`, payload: { run }, vectors: { embedding: v } }))
          const syncIntervalMs = 1000
          // the reader and the writer: two services, two connections, one database
          const reader = Layer.succeedContext(yield* Layer.build(marken({ syncIntervalMs })(shared.layer)))
          const writer = Layer.succeedContext(yield* Layer.build(marken()(shared.layer)))
          const write = (run: number) =>
            Effect.flatMap(Annotations.Annotations, (a) =>
              Effect.gen(function* () {
                const op = yield* a.start({ type: "clip", version: "1.0", producer })
                yield* a.upsert(op.id, items(run))
                yield* a.finish(op.id)
              })
            ).pipe(Effect.provide(writer))
          const runOf = new Map<string, number>()
          const search = (i: number) =>
            Effect.flatMap(Annotations.Annotations, (a) =>
              Effect.gen(function* () {
                const hits = yield* a.search({
                  type: "clip",
                  version: "1.0",
                  field: "embedding",
                  vector: data[i % data.length]!,
                  k: 5
                })
                // the runs the hits belong to
                const runs = new Set<number>()
                for (const h of hits) {
                  if (!runOf.has(h.id)) runOf.set(h.id, ((yield* a.get(h.id)).payload as { run: number }).run)
                  runs.add(runOf.get(h.id)!)
                }
                return { n: hits.length, runs: [...runs] }
              })
            ).pipe(Effect.provide(reader))

          yield* Effect.flatMap(Registry.Registry, (r) => r.register(Clip)).pipe(Effect.provide(writer))
          yield* write(0)
          expect(yield* search(0)).toEqual({ n: 5, runs: [0] })
          const seen: Array<string> = []
          for (let run = 1; run <= 4; run++) {
            yield* write(run)
            // within the sync interval the reader still answers from the previous complete run
            expect(yield* search(run)).toEqual({ n: 5, runs: [run - 1] })
            yield* TestClock.adjust(syncIntervalMs + 1)
            // several fibers search until they see the new run: one of them syncs, the others keep
            // searching while it reads the database
            const reader = (f: number) =>
              Effect.gen(function* () {
                for (let i = 0; i < 500; i++) {
                  const r = yield* search(run + f * 7 + i)
                  seen.push(`${r.n} hits from runs ${r.runs.join(",")}`)
                  expect(r.n).toBe(5)
                  expect([[run - 1], [run]]).toContainEqual(r.runs)
                  if (r.runs[0] === run) return i
                  yield* i % 2 ? Effect.yieldNow() : macrotask
                }
                return -1
              })
            const rounds = yield* Effect.all([reader(0), reader(1), reader(2)], { concurrency: "unbounded" })
            expect(rounds.every((n) => n >= 0)).toBe(true)
            expect(yield* search(run + 1)).toEqual({ n: 5, runs: [run] })
          }
          // readers did search while syncs were in flight
          expect(seen.length).toBeGreaterThan(0)
        })
      ).pipe(Effect.scoped),
    60_000
  )
}
