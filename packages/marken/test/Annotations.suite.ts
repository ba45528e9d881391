import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Either, Fiber, Schema } from "effect"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { StorageTesting } from "@org/storage/testing"
import { marken, producer, rng, Shot, ShotV11, ShotV2, vec } from "./fixtures.js"

/** Real time (it.effect runs on the TestClock). */
const pause = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))

const setup = Effect.gen(function* () {
  const registry = yield* Registry.Registry
  yield* registry.register(Shot)
  return { registry, annotations: yield* Annotations.Annotations }
})

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Marken on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    console.warn(`[marken] ${adapter.skip}`)
    continue
  }

  layer(marken()(adapter.layer), { timeout: 60_000 })(`Marken store on ${adapter.name}`, (it) => {
    it.effect("registers types idempotently and enforces the evolution rules", () =>
      Effect.gen(function* () {
        const { registry } = yield* setup
        yield* registry.register(Shot)
        yield* registry.register(ShotV11)
        yield* registry.register(ShotV2)
        const stored = yield* registry.get("shot", "1.1")
        expect((stored.jsonSchema as any).properties.note).toEqual({ type: "string" })
        // a minor version adding a required field is refused
        const bad = AnnotationType.make({
          name: "shot",
          version: "1.2",
          payload: Schema.Struct({
            kind: Schema.Literal("cut", "fade"),
            score: Schema.Number.pipe(Schema.between(0, 1)),
            tags: Schema.optional(Schema.Array(Schema.String)),
            meta: Schema.optional(Schema.Struct({ camera: Schema.String, flagged: Schema.Boolean })),
            note: Schema.optional(Schema.String),
            shots: Schema.Number
          })
        })
        const e1 = yield* Effect.flip(registry.register(bad))
        expect(e1._tag).toBe("IncompatibleTypeError")
        expect((e1 as any).path).toBe("payload.shots")
        // a minor version changing a field is refused
        const changed = AnnotationType.make({
          name: "shot",
          version: "1.2",
          payload: Schema.Struct({ kind: Schema.String, score: Schema.Number.pipe(Schema.between(0, 1)) })
        })
        const e2 = yield* Effect.flip(registry.register(changed))
        expect(e2._tag).toBe("IncompatibleTypeError")
        // re-registering a version with another schema is refused
        const e3 = yield* Effect.flip(
          registry.register(AnnotationType.make({ name: "shot", version: "1.0", payload: Schema.Struct({}) }))
        )
        expect(e3.message).toContain("different schema")
        const e4 = yield* Effect.flip(
          registry.register(AnnotationType.make({ name: "x", version: "v1", payload: Schema.String }))
        )
        expect((e4 as any).path).toBe("version")
        expect((yield* registry.list("shot")).map((d) => d.version)).toEqual(["1.0", "1.1", "2.0"])
      })
    )

    it.effect("stores payloads of every JSON kind and reads them back unchanged (a string stays a string)", () =>
      Effect.gen(function* () {
        const { registry, annotations } = yield* setup
        yield* registry.register(AnnotationType.make({ name: "note", version: "1.0", payload: Schema.Unknown }))
        for (const payload of ["123", "abc", "", 42, true, null, [1, "2"], { a: "b" }]) {
          const a = yield* annotations.create({ type: "note", version: "1.0", producer, entity: "title:json", payload })
          expect((yield* annotations.get(a.id)).payload).toEqual(payload)
        }
      })
    )

    it.effect("validates untyped payloads against the stored JSON Schema", () =>
      Effect.gen(function* () {
        const { registry } = yield* setup
        yield* registry.registerDefinition({
          name: "mood",
          version: "1.0",
          jsonSchema: {
            type: "object",
            required: ["mood"],
            properties: { mood: { enum: ["calm", "tense"] }, level: { type: "integer", minimum: 0, maximum: 5 } },
            additionalProperties: false
          },
          vectors: {}
        })
        expect(yield* registry.validate("mood", "1.0", { mood: "calm", level: 3 })).toEqual({ mood: "calm", level: 3 })
        const e = yield* Effect.flip(registry.validate("mood", "1.0", { mood: "calm", level: 9 }))
        expect(e._tag === "InvalidAnnotationError" && e.path).toBe("payload.level")
        const e2 = yield* Effect.flip(registry.validate("mood", "1.0", { level: 1 }))
        expect(e2._tag === "InvalidAnnotationError" && e2.path).toBe("payload.mood")
        const e3 = yield* Effect.flip(registry.validate("mood", "1.0", { mood: "calm", extra: 1 }))
        expect(e3._tag === "InvalidAnnotationError" && e3.path).toBe("payload.extra")
        const e4 = yield* Effect.flip(registry.validate("mood", "9.0", {}))
        expect(e4._tag).toBe("UnknownTypeError")
      })
    )

    it.effect("creates, reads, updates and deletes annotations; bad input writes nothing", () =>
      Effect.gen(function* () {
        const { annotations } = yield* setup
        const a = yield* annotations.create({
          type: "shot",
          version: "1.0",
          producer,
          entity: "title:1",
          time: { startNs: 1_000_000_000, endNs: 2_000_000_000 },
          frameRate: { num: 24000, den: 1001 },
          region: { _tag: "Box", x: 0.1, y: 0.2, width: 0.5, height: 0.5 },
          payload: { kind: "cut", score: 0.7 },
          label: "Hard cut",
          confidence: 0.9,
          vectors: { embedding: vec(rng(1)) }
        })
        expect(a.id).toMatch(/^[0-9a-f-]{36}$/)
        expect(a.time).toEqual({ startNs: 1_000_000_000, endNs: 2_000_000_000 })
        expect(a.vectors?.embedding?.length).toBe(8)
        const back = yield* annotations.get(a.id)
        expect(back.payload).toEqual({ kind: "cut", score: 0.7 })
        expect(back.region).toEqual({ _tag: "Box", x: 0.1, y: 0.2, width: 0.5, height: 0.5 })
        expect(back.producer).toEqual({ ...producer, key: "shot-detector" })

        const updated = yield* annotations.update(a.id, { label: "Soft cut", payload: { kind: "fade", score: 0.2 } })
        expect(updated.label).toBe("Soft cut")
        expect(updated.payload).toEqual({ kind: "fade", score: 0.2 })

        const before = (yield* annotations.query({ entities: ["title:1"] })).items.length
        const bad = [
          { payload: { kind: "cut", score: 2 }, path: "payload.score" },
          {
            payload: { kind: "cut", score: 0.5 },
            region: { _tag: "Box", x: 0.9, y: 0, width: 0.5, height: 0.1 },
            path: "region.width"
          },
          {
            payload: { kind: "cut", score: 0.5 },
            region: { _tag: "Box", x: 1.5, y: 0, width: 0, height: 0 },
            path: "region.x"
          },
          { payload: { kind: "cut", score: 0.5 }, time: { startNs: 5, endNs: 1 }, path: "time.endNs" },
          { payload: { kind: "cut", score: 0.5 }, vectors: { embedding: [1, 2, 3] }, path: "vectors.embedding" },
          { payload: { kind: "cut", score: 0.5 }, vectors: { other: [1] }, path: "vectors.other" }
        ]
        for (const { path, ...rest } of bad) {
          const e = yield* Effect.flip(
            annotations.create({ type: "shot", version: "1.0", producer, entity: "title:1", ...(rest as any) })
          )
          expect(e._tag).toBe("InvalidAnnotationError")
          expect((e as any).path).toBe(path)
        }
        const unknown = yield* Effect.flip(
          annotations.create({ type: "nope", version: "1.0", producer, entity: "title:1", payload: {} })
        )
        expect(unknown._tag).toBe("UnknownTypeError")
        expect((yield* annotations.query({ entities: ["title:1"] })).items.length).toBe(before)

        yield* annotations.remove(a.id)
        const gone = yield* Effect.flip(annotations.get(a.id))
        expect(gone._tag).toBe("AnnotationNotFoundError")
      })
    )

    it.effect(
      "vector components beyond float32 are refused on create, upsert, update and search, naming the component",
      () =>
        Effect.gen(function* () {
          const { annotations } = yield* setup
          const good = Array.from(vec(rng(7)))
          const over = (i: number, x = 1e39) => good.map((g, j) => (j === i ? x : g))
          const entity = "title:f32"
          const item = { entity, payload: { kind: "cut" as const, score: 0.5 } }
          for (const [i, x] of [
            [3, 1e39],
            [0, -1e39],
            [7, Number.MAX_VALUE]
          ] as const) {
            const e = yield* Effect.flip(
              annotations.create({
                type: "shot",
                version: "1.0",
                producer,
                ...item,
                vectors: { embedding: over(i, x) }
              })
            )
            expect(e._tag).toBe("InvalidAnnotationError")
            expect((e as any).path).toBe("vectors.embedding")
            expect(e.message).toContain(`component ${i}`)
          }
          const op = yield* annotations.start({ type: "shot", version: "1.0", producer: { ...producer, key: "f32" } })
          const result = yield* annotations.upsert(op.id, [
            { ...item, key: "ok", vectors: { embedding: good } },
            { ...item, key: "bad", vectors: { embedding: over(5) } }
          ])
          expect(result.written.map((w) => w.index)).toEqual([0])
          expect(result.rejected).toEqual([
            { index: 1, path: "vectors.embedding", message: expect.stringContaining("component 5") }
          ])
          const atomic = yield* Effect.flip(
            annotations.upsert(op.id, [{ ...item, key: "bad2", vectors: { embedding: over(2) } }], { atomic: true })
          )
          expect(atomic._tag).toBe("InvalidAnnotationError")
          expect(atomic.message).toContain("component 2")
          yield* annotations.finish(op.id)
          const id = result.written[0]!.id
          const patched = yield* Effect.flip(annotations.update(id, { vectors: { embedding: over(1) } }))
          expect(patched._tag).toBe("InvalidAnnotationError")
          expect((patched as any).path).toBe("vectors.embedding")
          expect(patched.message).toContain("component 1")
          // nothing stored holds an infinity
          const stored = yield* annotations.get(id, { withVectors: true })
          expect(Array.from(stored.vectors!.embedding!)).toEqual(Array.from(Float32Array.from(good)))
          expect((yield* annotations.query({ entities: [entity] })).items.map((a) => a.key)).toEqual(["ok"])
          const query = yield* Effect.flip(
            annotations.search({ type: "shot", version: "1.0", field: "embedding", vector: over(6), k: 3 })
          )
          expect(query._tag).toBe("InvalidQueryError")
          expect((query as any).path).toBe("vector")
          expect(query.message).toContain("component 6")
          const hits = yield* annotations.search({
            type: "shot",
            version: "1.0",
            field: "embedding",
            vector: good,
            k: 50
          })
          expect(hits.length).toBeGreaterThan(0)
          for (const h of hits) expect(Number.isFinite(h.distance)).toBe(true)
        })
    )

    it.effect("queries from code are decoded against their schema: one validation, one error", () =>
      Effect.gen(function* () {
        const { annotations } = yield* setup
        const cases: Array<[string, Effect.Effect<unknown, { readonly _tag: string }>, string]> = [
          ["inverted time range", annotations.query({ time: { startNs: 1_000_000_005, endNs: 1 } }), "time.endNs"],
          ["limit out of range", annotations.query({ limit: 5000 }), "limit"],
          ["negative time", annotations.query({ time: { startNs: -5, endNs: 1 } }), "time.startNs"],
          ["a bad condition", annotations.query({ where: [{ field: "a b", op: "exists" }] }), "where.0.field"],
          ["count by nonsense", annotations.count({}, "nonsense" as any), "by"],
          ["count with a bad query", annotations.count({ minConfidence: 2 }, "entity"), "minConfidence"],
          [
            "kNN with k = 0",
            annotations.search({ type: "shot", version: "1.0", field: "embedding", vector: vec(rng(1)), k: 0 }),
            "k"
          ],
          // unfiltered kNN skips the decoder only when the schema would accept it
          ...(
            [
              ["k = 2.5", { k: 2.5 }, "k"],
              ["k = 1001", { k: 1001 }, "k"],
              ["ef = 0", { k: 3, ef: 0 }, "ef"],
              ["ef = 1.5", { k: 3, ef: 1.5 }, "ef"],
              ["ef past 10000", { k: 3, ef: 10_001 }, "ef"],
              ["a numeric type", { k: 3, type: 7 }, "type"],
              ["includePayload = 1", { k: 3, includePayload: 1 }, "includePayload"]
            ] as const
          ).map(([what, change, path]): [string, Effect.Effect<unknown, { readonly _tag: string }>, string] => [
            `kNN with ${what}`,
            annotations.search({
              type: "shot",
              version: "1.0",
              field: "embedding",
              vector: vec(rng(1)),
              ...(change as unknown as { k: number })
            }),
            path
          ]),
          [
            "kNN with a bad filter",
            annotations.search({
              type: "shot",
              version: "1.0",
              field: "embedding",
              vector: vec(rng(1)),
              k: 3,
              filter: { time: { startNs: 9, endNs: 2 } }
            }),
            "filter.time.endNs"
          ],
          [
            "pairs with a bad side",
            annotations.pairs({
              type: "shot",
              version: "1.0",
              field: "embedding",
              left: { limit: 0 },
              right: {},
              k: 3
            }),
            "left.limit"
          ]
        ]
        for (const [what, effect, path] of cases) {
          const e = yield* Effect.flip(effect)
          expect({ what, tag: e._tag, path: (e as any).path }).toEqual({ what, tag: "InvalidQueryError", path })
          expect((e as any).message, what).not.toContain("\n")
        }
      })
    )

    it.effect("cursor pages are pinned to the runs of their first page, across a finish", () =>
      Effect.gen(function* () {
        const { annotations } = yield* setup
        const entity = "title:pages"
        const prod = { algorithm: "pager", version: "1" }
        const run = (tag: string) =>
          Effect.gen(function* () {
            const op = yield* annotations.start({ type: "shot", version: "1.0", producer: prod })
            const r = yield* annotations.upsert(
              op.id,
              Array.from({ length: 10 }, (_, i) => ({
                entity,
                key: `${tag}${i}`,
                payload: { kind: "cut" as const, score: i / 10 }
              }))
            )
            yield* annotations.finish(op.id)
            return { op, ids: r.written.map((w) => w.id) }
          })
        const a = yield* run("a")
        const page1 = yield* annotations.query({ entities: [entity], limit: 4, sort: "confidence" })
        const b = yield* run("b")
        const page2 = yield* annotations.query({
          entities: [entity],
          limit: 4,
          sort: "confidence",
          cursor: page1.next!
        })
        const page3 = yield* annotations.query({
          entities: [entity],
          limit: 4,
          sort: "confidence",
          cursor: page2.next!
        })
        expect(page3.next).toBeUndefined()
        const pagedIds = [...page1.items, ...page2.items, ...page3.items].map((x) => x.id)
        expect(new Set(pagedIds)).toEqual(new Set(a.ids))
        expect(pagedIds.length).toBe(10)
        // a query without a cursor reads the new run
        const fresh = yield* annotations.query({ entities: [entity], limit: 100 })
        expect(new Set(fresh.items.map((x) => x.id))).toEqual(new Set(b.ids))

        // more runs than a cursor carries: the cursor keeps their digest and fails clearly when they change
        const many = "title:many"
        for (let p = 0; p < 45; p++) {
          const op = yield* annotations.start({ type: "shot", version: "1.0", producer: { ...prod, key: `p${p}` } })
          yield* annotations.upsert(op.id, [{ entity: many, payload: { kind: "fade" as const, score: 0.5 } }])
          yield* annotations.finish(op.id)
        }
        const first = yield* annotations.query({ entities: [many], limit: 10 })
        const second = yield* annotations.query({ entities: [many], limit: 10, cursor: first.next! })
        expect(second.items.length).toBe(10)
        const op = yield* annotations.start({ type: "shot", version: "1.0", producer: { ...prod, key: "p3" } })
        yield* annotations.finish(op.id)
        const stale = yield* Effect.flip(annotations.query({ entities: [many], limit: 10, cursor: second.next! }))
        expect(stale._tag).toBe("InvalidQueryError")
        expect((stale as any).path).toBe("cursor")
        expect(stale.message).toContain("changed since its first page")
      })
    )

    it.effect("bulk delete by ids and by query: one transaction, the index updated once", () =>
      Effect.gen(function* () {
        const { annotations } = yield* setup
        const entity = "title:bulk"
        const r = rng(11)
        const op = yield* annotations.start({ type: "shot", version: "1.0", producer: { ...producer, key: "bulk" } })
        const written = yield* annotations.upsert(
          op.id,
          Array.from({ length: 1200 }, (_, i) => ({
            entity,
            key: `b${i}`,
            payload: { kind: i % 2 ? ("cut" as const) : ("fade" as const), score: (i % 100) / 100 },
            vectors: { embedding: vec(r) }
          }))
        )
        yield* annotations.finish(op.id)
        const ids = written.written.map((w) => w.id)
        const total = () =>
          annotations.count({ entities: [entity] }, "entity").pipe(Effect.map((g) => g[0]?.count ?? 0))
        expect(yield* total()).toBe(1200)
        // by query: every "cut" with score >= 0.5 (300 of them)
        const byQuery = yield* annotations.removeWhere({
          entities: [entity],
          where: [
            { field: "kind", op: "eq", value: "cut" },
            { field: "score", op: "range", gte: 0.5 }
          ]
        })
        expect(byQuery.removed).toBe(300)
        expect(yield* total()).toBe(900)
        // by ids, unknown ids skipped
        const some = ids.filter((_, i) => i % 2 === 0).slice(0, 500)
        expect((yield* annotations.removeMany([...some, "00000000-0000-7000-8000-000000000000"])).removed).toBe(500)
        expect(yield* total()).toBe(400)
        const left = new Set((yield* annotations.query({ entities: [entity], limit: 1000 })).items.map((a) => a.id))
        // the index holds only what is left
        const hits = yield* annotations.search({
          type: "shot",
          version: "1.0",
          field: "embedding",
          vector: vec(r),
          k: 50,
          filter: { entities: [entity] }
        })
        expect(hits.length).toBe(50)
        for (const h of hits) expect(left.has(h.id)).toBe(true)
        const bad = yield* Effect.flip(annotations.removeWhere({ limit: 0 }))
        expect(bad._tag).toBe("InvalidQueryError")
        expect(yield* total()).toBe(400)
      })
    )

    it.effect("an operation becomes visible at finish, replaces the previous run, and can be cancelled", () =>
      Effect.gen(function* () {
        const { annotations } = yield* setup
        const entity = "title:op"
        const producer = { algorithm: "op-test", version: "1" }
        const run1 = yield* annotations.start({ type: "shot", version: "1.0", producer })
        const r1 = yield* annotations.upsert(run1.id, [
          { entity, key: "s1", payload: { kind: "cut", score: 0.1 } },
          { entity, key: "s2", payload: { kind: "cut", score: 0.2 } },
          { entity, key: "bad", payload: { kind: "zoom", score: 0.2 } }
        ])
        expect(r1.written.map((w) => w.index)).toEqual([0, 1])
        expect(r1.rejected).toEqual([{ index: 2, path: "payload.kind", message: expect.any(String) }])
        // upserting the same key replaces it
        yield* annotations.upsert(run1.id, [{ entity, key: "s2", payload: { kind: "fade", score: 0.25 } }])
        expect((yield* annotations.query({ entities: [entity] })).items).toEqual([])
        expect((yield* annotations.query({ entities: [entity], operationId: run1.id })).items.length).toBe(2)
        yield* annotations.finish(run1.id)
        const seen1 = yield* annotations.query({ entities: [entity], sort: "confidence" })
        expect(seen1.items.map((a) => a.key).sort()).toEqual(["s1", "s2"])
        expect(seen1.items.find((a) => a.key === "s2")!.payload).toEqual({ kind: "fade", score: 0.25 })

        const run2 = yield* annotations.start({ type: "shot", version: "1.0", producer })
        yield* annotations.upsert(run2.id, [{ entity, key: "n1", payload: { kind: "cut", score: 0.9 } }])
        expect((yield* annotations.query({ entities: [entity] })).items.map((a) => a.key).sort()).toEqual(["s1", "s2"])
        const done = yield* annotations.finish(run2.id)
        expect(done.current).toBe(true)
        expect((yield* annotations.query({ entities: [entity] })).items.map((a) => a.key)).toEqual(["n1"])
        // the earlier run stays queryable by its id
        expect((yield* annotations.query({ entities: [entity], operationId: run1.id })).items.length).toBe(2)
        expect((yield* annotations.operation(run1.id)).current).toBe(false)

        const run3 = yield* annotations.start({ type: "shot", version: "1.0", producer })
        yield* annotations.upsert(run3.id, [{ entity, key: "x", payload: { kind: "cut", score: 0.5 } }])
        const cancelled = yield* annotations.cancel(run3.id)
        expect(cancelled.status).toBe("cancelled")
        expect((yield* annotations.query({ entities: [entity], operationId: run3.id })).items).toEqual([])
        const closed = yield* Effect.flip(annotations.upsert(run3.id, [{ entity, payload: { kind: "cut", score: 0 } }]))
        expect(closed._tag).toBe("OperationClosedError")
        const again = yield* Effect.flip(annotations.finish(run2.id))
        expect(again._tag).toBe("OperationClosedError")
        expect((yield* annotations.query({ entities: [entity] })).items.map((a) => a.key)).toEqual(["n1"])
        const ops = yield* annotations.operations({ type: "shot", version: "1.0", producer: "op-test" })
        expect(ops.map((o) => o.status)).toEqual(["cancelled", "finished", "finished"])
        // atomic upsert: one bad item, nothing written
        const run4 = yield* annotations.start({ type: "shot", version: "1.0", producer })
        const e = yield* Effect.flip(
          annotations.upsert(
            run4.id,
            [
              { entity, payload: { kind: "cut", score: 0.5 } },
              { entity, payload: { kind: "cut" } }
            ],
            { atomic: true }
          )
        )
        expect(e._tag === "InvalidAnnotationError" && e.path).toBe("items.1.payload.score")
        expect((yield* annotations.query({ operationId: run4.id })).items).toEqual([])
      })
    )

    it.effect("readers polling during a run see the previous complete run until finish, then the new one at once", () =>
      Effect.gen(function* () {
        const { annotations } = yield* setup
        const entity = "title:concurrent"
        const prod = { algorithm: "scorer", version: "1" }
        const first = yield* annotations.start({ type: "shot", version: "1.0", producer: prod })
        yield* annotations.upsert(
          first.id,
          Array.from({ length: 20 }, (_, i) => ({
            entity,
            key: `a${i}`,
            payload: { kind: "cut" as const, score: 0.1 }
          }))
        )
        yield* annotations.finish(first.id)
        // each reader records what it saw, in its own order (pushes of different readers
        // into one array would not be ordered by when their queries ran)
        const perReader: Array<Array<string>> = [[], [], []]
        let stop = false
        const reader = (seen: Array<string>) =>
          Effect.gen(function* () {
            while (!stop) {
              const page = yield* annotations.query({ entities: [entity], limit: 1000 })
              const runs = new Set(page.items.map((a) => a.operationId))
              seen.push(`${page.items.length}:${runs.size}:${[...runs].join(",")}`)
              yield* pause(2)
            }
          })
        const readers = yield* Effect.fork(Effect.all(perReader.map(reader), { concurrency: "unbounded" }))
        const second = yield* annotations.start({ type: "shot", version: "1.0", producer: prod })
        for (let b = 0; b < 6; b++) {
          yield* annotations.upsert(
            second.id,
            Array.from({ length: 5 }, (_, i) => ({
              entity,
              key: `b${b}-${i}`,
              payload: { kind: "fade" as const, score: 0.9 }
            }))
          )
          yield* pause(5)
        }
        yield* annotations.finish(second.id)
        yield* pause(30)
        stop = true
        yield* Fiber.join(readers)
        // every observation is exactly one complete run: 20 of the first or 30 of the second
        const allowed = new Set([`20:1:${first.id}`, `30:1:${second.id}`])
        const observed = perReader.flat()
        expect(observed.length).toBeGreaterThan(10)
        expect(observed.filter((o) => !allowed.has(o))).toEqual([])
        expect(observed).toContain(`20:1:${first.id}`)
        for (const seen of perReader) {
          expect(seen[seen.length - 1]).toBe(`30:1:${second.id}`)
          // once a reader has seen the new run, the old one never comes back to it
          const firstNew = seen.indexOf(`30:1:${second.id}`)
          expect(seen.slice(firstNew).every((o) => o === `30:1:${second.id}`)).toBe(true)
        }
      })
    )

    it.effect("queries by entity, time, region, payload, label, confidence; sorts and pages; counts groups", () =>
      Effect.gen(function* () {
        const { annotations } = yield* setup
        const op = yield* annotations.start({
          type: "shot",
          version: "1.0",
          producer: { algorithm: "q", version: "1" }
        })
        const r = rng(7)
        const items = Array.from({ length: 40 }, (_, i) => ({
          entity: `video:${i % 4}`,
          key: `k${i}`,
          time: { startNs: i * 1_000_000_000, endNs: i * 1_000_000_000 + 500_000_000 },
          region: { _tag: "Box" as const, x: (i % 5) * 0.2, y: 0, width: 0.1, height: 0.1 },
          payload: {
            kind: i % 2 === 0 ? ("cut" as const) : ("fade" as const),
            score: i / 40,
            ...(i % 3 === 0 ? { tags: ["a"] } : {}),
            ...(i % 10 === 0 ? { meta: { camera: `cam${i}`, flagged: i % 20 === 0 } } : {})
          },
          label: i % 4 === 0 ? "Opening Title" : "scene",
          confidence: r(),
          vectors: { embedding: vec(r) }
        }))
        yield* annotations.upsert(op.id, items)
        yield* annotations.finish(op.id)
        const base = { type: "shot", version: "1.0", producer: "q" }
        const ids = (p: Annotations.Page) => p.items.map((a) => a.key)
        expect((yield* annotations.query({ ...base, entities: ["video:1"], limit: 1000 })).items.length).toBe(10)
        expect(
          ids(yield* annotations.query({ ...base, time: { startNs: 2_600_000_000, endNs: 4_000_000_001 } }))
        ).toEqual(["k3", "k4"])
        expect(
          ids(yield* annotations.query({ ...base, time: { startNs: 2_400_000_000, endNs: 2_400_000_000 } }))
        ).toEqual(["k2"])
        // numeric conditions on a field holding text match nothing (no failing cast)
        expect(
          (yield* annotations.query({ ...base, where: [{ field: "kind", op: "range", gte: 0 }], limit: 1000 })).items
        ).toEqual([])
        expect(
          (yield* annotations.query({ ...base, where: [{ field: "kind", op: "eq", value: 1 }], limit: 1000 })).items
        ).toEqual([])
        expect(
          (yield* annotations.query({ ...base, where: [{ field: "score", op: "range", gte: 0.5 }], limit: 1000 })).items
            .length
        ).toBe(20)
        // ranges are half-open: k3 is [3.0 s, 3.5 s), k4 starts at 4.0 s
        expect(
          ids(yield* annotations.query({ ...base, time: { startNs: 3_500_000_000, endNs: 4_000_000_000 } }))
        ).toEqual([])
        expect(
          ids(yield* annotations.query({ ...base, time: { startNs: 3_000_000_000, endNs: 3_000_000_000 } }))
        ).toEqual(["k3"])
        const inRegion = yield* annotations.query({
          ...base,
          region: { _tag: "Box", x: 0.41, y: 0.05, width: 0.1, height: 0.1 },
          limit: 1000
        })
        expect(inRegion.items.every((a) => (a.region as any).x === 0.4)).toBe(true)
        expect(inRegion.items.length).toBe(8)
        expect(
          (yield* annotations.query({ ...base, where: [{ field: "kind", op: "eq", value: "fade" }], limit: 1000 }))
            .items.length
        ).toBe(20)
        expect(
          (yield* annotations.query({
            ...base,
            where: [{ field: "score", op: "range", gte: 0.5, lt: 0.6 }]
          })).items.map((a) => a.key)
        ).toEqual(["k20", "k21", "k22", "k23"])
        expect(
          (yield* annotations.query({ ...base, where: [{ field: "score", op: "eq", value: 0.5 }] })).items.map(
            (a) => a.key
          )
        ).toEqual(["k20"])
        expect(
          (yield* annotations.query({ ...base, where: [{ field: "tags", op: "exists" }], limit: 1000 })).items.length
        ).toBe(14)
        expect(
          (yield* annotations.query({
            ...base,
            where: [{ field: "meta.camera", op: "in", values: ["cam10", "cam30", "nope"] }]
          })).items.map((a) => a.key)
        ).toEqual(["k10", "k30"])
        expect(
          (yield* annotations.query({ ...base, where: [{ field: "meta.flagged", op: "eq", value: true }] })).items.map(
            (a) => a.key
          )
        ).toEqual(["k0", "k20"])
        expect(
          (yield* annotations.query({ ...base, where: [{ field: "meta.flagged", op: "eq", value: false }] })).items.map(
            (a) => a.key
          )
        ).toEqual(["k10", "k30"])
        expect((yield* annotations.query({ ...base, label: "opening", limit: 1000 })).items.length).toBe(10)
        const confident = yield* annotations.query({ ...base, minConfidence: 0.5, limit: 1000 })
        expect(confident.items.every((a) => a.confidence! >= 0.5)).toBe(true)
        expect(confident.items.length).toBe(items.filter((i) => i.confidence >= 0.5).length)

        // sorting and cursor pagination walk every row once, in order
        for (const sort of ["id", "confidence", "start", "created"] as const) {
          for (const order of ["asc", "desc"] as const) {
            const seen: Array<Annotations.Page["items"][number]> = []
            let cursor: string | undefined
            do {
              const page: Annotations.Page = yield* annotations.query({
                ...base,
                sort,
                order,
                limit: 7,
                ...(cursor ? { cursor } : {})
              })
              seen.push(...page.items)
              cursor = page.next
            } while (cursor)
            expect(seen.length).toBe(40)
            expect(new Set(seen.map((a) => a.id)).size).toBe(40)
            if (sort === "confidence") {
              const cs = seen.map((a) => a.confidence!)
              expect(cs).toEqual([...cs].sort((x, y) => (order === "asc" ? x - y : y - x)))
            }
          }
        }
        const byKind = yield* annotations.count(base, "payload.kind")
        expect(byKind).toEqual([
          { key: "cut", count: 20 },
          { key: "fade", count: 20 }
        ])
        const byEntity = yield* annotations.count({ ...base, label: "scene" }, "entity")
        expect(byEntity.reduce((s, g) => s + g.count, 0)).toBe(30)
        const badCursor = yield* Effect.flip(annotations.query({ ...base, cursor: "garbage" }))
        expect(badCursor._tag).toBe("InvalidQueryError")
      })
    )

    it.effect("query strings are inert: injection attempts match nothing and change nothing", () =>
      Effect.gen(function* () {
        const { annotations } = yield* setup
        yield* annotations.create({
          type: "shot",
          version: "1.0",
          producer,
          entity: "safe",
          payload: { kind: "cut", score: 0.5 },
          label: "x"
        })
        const total = (yield* annotations.count({}, "type")).reduce((s, g) => s + g.count, 0)
        const attacks = ["' or 1=1 --", "x'); drop table marken_annotations; --", "%' or '1'='1", "\\' or 1=1"]
        for (const s of attacks) {
          expect((yield* annotations.query({ label: s })).items).toEqual([])
          expect((yield* annotations.query({ entities: [s] })).items).toEqual([])
          expect((yield* annotations.query({ type: s })).items).toEqual([])
          expect((yield* annotations.query({ where: [{ field: "kind", op: "eq", value: s }] })).items).toEqual([])
          expect((yield* annotations.query({ where: [{ field: "kind", op: "in", values: [s] }] })).items).toEqual([])
        }
        const badField = yield* Effect.flip(annotations.query({ where: [{ field: "kind') or 1=1 --", op: "exists" }] }))
        expect(badField._tag).toBe("InvalidQueryError")
        expect((yield* annotations.count({}, "type")).reduce((s, g) => s + g.count, 0)).toBe(total)
      })
    )

    it.effect("migrates the latest runs to a new major version and keeps the old ones readable", () =>
      Effect.gen(function* () {
        const { annotations, registry } = yield* setup
        yield* registry.register(ShotV2)
        const op = yield* annotations.start({
          type: "shot",
          version: "1.0",
          producer: { algorithm: "mig", version: "1" }
        })
        yield* annotations.upsert(op.id, [
          {
            entity: "m",
            key: "1",
            payload: { kind: "cut", score: 0.3, tags: ["x"] },
            vectors: { embedding: vec(rng(3)) }
          },
          { entity: "m", key: "2", payload: { kind: "fade", score: 0.6 } }
        ])
        yield* annotations.finish(op.id)
        const result = yield* annotations.migrate({
          from: Shot,
          to: ShotV2,
          migrate: (p) => ({ transition: p.kind, score: p.score, tags: p.tags ?? [] })
        })
        expect(result.annotations).toBeGreaterThanOrEqual(2)
        const v2 = yield* annotations.query({ type: "shot", version: "2.0", entities: ["m"], sort: "id" })
        expect(v2.items.map((a) => a.payload).sort((a: any, b: any) => a.score - b.score)).toEqual([
          { transition: "cut", score: 0.3, tags: ["x"] },
          { transition: "fade", score: 0.6, tags: [] }
        ])
        const typed = yield* annotations.decode(ShotV2, v2.items[0]!)
        expect(["cut", "fade"]).toContain(typed.payload.transition)
        const v1 = yield* annotations.query({ type: "shot", version: "1.0", entities: ["m"] })
        expect(v1.items.length).toBe(2)
        const withVec = yield* annotations.query({ type: "shot", version: "2.0", entities: ["m"], withVectors: true })
        expect(withVec.items.filter((a) => a.vectors?.embedding).length).toBe(1)
      })
    )
  })
}

void Either
