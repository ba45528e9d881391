import { describe, expect, it, layer } from "@effect/vitest"
import { FetchHttpClient } from "@effect/platform"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Annotations, AnnotationType, MarkenApi, MarkenClient } from "@org/marken"
import { StorageTesting } from "@org/storage/testing"
import { baseUrl, clustered, raw, server, Shot, tokens, withShared } from "./fixtures.js"

/** The failing field of a 400 answer: `path` of Marken errors, the first issue's path of decode errors. */
const fieldOf = (body: any): string =>
  typeof body?.path === "string" ? body.path : (body?.issues?.[0]?.path ?? []).map(String).join(".")

const definition = AnnotationType.definition(Shot)
const vector = (i: number) => Array.from({ length: 8 }, (_, j) => Math.sin(i * 7 + j))

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Marken HTTP on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }

  layer(Layer.mergeAll(server(adapter.layer), FetchHttpClient.layer), { timeout: 60_000 })(
    `Marken HTTP on ${adapter.name}`,
    (it) => {
      it.effect("the typed client drives the whole API; the OpenAPI document describes it", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const client = yield* MarkenClient.make({ baseUrl: url, token: "writer-token" })
          const registered = yield* client.types.register({ payload: definition })
          expect(registered.version).toBe("1.0")
          expect((yield* client.types.list()).map((t) => t.name)).toContain("shot")
          const op = yield* client.operations.start({
            payload: { type: "shot", version: "1.0", producer: { algorithm: "http", version: "1" } }
          })
          const result = yield* client.operations.upsert({
            path: { id: op.id },
            payload: {
              items: Array.from({ length: 30 }, (_, i) => ({
                entity: `e${i % 3}`,
                key: `k${i}`,
                time: { startNs: i * 1000, endNs: i * 1000 + 500 },
                payload: { kind: i % 2 ? "cut" : "fade", score: i / 30 },
                label: i % 5 === 0 ? "Key frame" : "frame",
                confidence: 0.5 + i / 100,
                vectors: { embedding: vector(i) }
              }))
            }
          })
          expect(result.written.length).toBe(30)
          expect((yield* client.annotations.query({ payload: { producer: "http" } })).items).toEqual([])
          const finished = yield* client.operations.finish({ path: { id: op.id } })
          expect(finished.current).toBe(true)
          const page = yield* client.annotations.query({
            payload: {
              producer: "http",
              where: [{ field: "kind", op: "eq", value: "cut" }],
              sort: "confidence",
              order: "desc",
              limit: 5
            }
          })
          expect(page.items.length).toBe(5)
          expect(page.next).toBeDefined()
          const counts = yield* client.annotations.count({ payload: { query: { producer: "http" }, by: "entity" } })
          expect(counts).toEqual([
            { key: "e0", count: 10 },
            { key: "e1", count: 10 },
            { key: "e2", count: 10 }
          ])
          const knn = {
            type: "shot",
            version: "1.0",
            field: "embedding",
            vector: vector(4),
            k: 3,
            filter: { producer: "http" }
          }
          const hits = yield* client.search.knn({ payload: knn })
          expect(hits.length).toBe(3)
          expect(hits[0]!.payload).toBeUndefined()
          const withPayload = yield* client.search.knn({ payload: { ...knn, includePayload: true } })
          expect(withPayload.map((h) => h.id)).toEqual(hits.map((h) => h.id))
          expect(withPayload[0]!.payload).toEqual({ kind: "fade", score: 4 / 30 })
          const top = yield* client.annotations.get({ path: { id: hits[0]!.id }, urlParams: { withVectors: true } })
          expect(top.key).toBe("k4")
          expect(top.vectors!.embedding!.length).toBe(8)
          const pairs = yield* client.search.pairs({
            payload: {
              type: "shot",
              version: "1.0",
              field: "embedding",
              left: { entities: ["e0"] },
              right: { entities: ["e1"] },
              k: 4
            }
          })
          expect(pairs.length).toBe(4)
          const updated = yield* client.annotations.update({ path: { id: top.id }, payload: { label: "renamed" } })
          expect(updated.label).toBe("renamed")
          yield* client.annotations.remove({ path: { id: top.id } })
          const gone = yield* Effect.flip(client.annotations.get({ path: { id: top.id }, urlParams: {} }))
          expect(gone._tag).toBe("AnnotationNotFoundError")
          const ops = yield* client.operations.list({ urlParams: { type: "shot", producer: "http" } })
          expect(ops.map((o) => o.id)).toContain(op.id)

          const doc = yield* raw("GET", `${url}/openapi.json`)
          expect(doc.status).toBe(200)
          expect(Object.keys(doc.body.paths)).toEqual(
            expect.arrayContaining(["/annotations", "/query", "/search", "/operations/{id}/finish", "/types"])
          )
          expect(doc.body.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" })
        })
      )

      it.effect("a query failing its schema is the same InvalidQueryError from code and over HTTP", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const annotations = yield* Annotations.Annotations
          for (const q of [{ time: { startNs: 1_000_000_005, endNs: 1 } }, { limit: 0 }, { minConfidence: 7 }]) {
            const fromCode = yield* Effect.flip(annotations.query(q))
            const overHttp = yield* raw("POST", `${url}/query`, { token: "reader-token", body: q })
            expect(overHttp.status).toBe(400)
            expect(overHttp.body).toEqual({
              _tag: "InvalidQueryError",
              path: (fromCode as any).path,
              message: fromCode.message
            })
          }
        })
      )

      it.effect("every endpoint checks its scope: a table of every endpoint and every token", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const paths = MarkenApi.openApi().paths as Record<string, Record<string, any>>
          const endpoints = Object.entries(paths).flatMap(([p, ops]) =>
            Object.entries(ops).map(([method, op]) => ({
              method: method.toUpperCase(),
              path: p.replace(/\{[^}]+\}/g, "00000000-0000-7000-8000-000000000000"),
              scope: op.security[0].bearer[0] as "read" | "write",
              body: op.requestBody ? {} : undefined
            }))
          )
          expect(endpoints.length).toBe(17)
          expect(endpoints.filter((e) => e.scope === "read").length).toBe(9)
          const callers: Array<[string, string | undefined, ReadonlyArray<string>]> = [
            ["no token", undefined, []],
            ["unknown token", "not-a-token", []],
            ...tokens.map((t): [string, string, ReadonlyArray<string>] => [t.name, t.token, t.scopes])
          ]
          const table: Array<string> = []
          const expected: Array<string> = []
          for (const e of endpoints) {
            for (const [who, token, scopes] of callers) {
              const r = yield* raw(e.method, `${url}${e.path}`, {
                ...(token ? { token } : {}),
                ...(e.body ? { body: e.body } : {})
              })
              const want = token === undefined || token === "not-a-token" ? 401 : scopes.includes(e.scope) ? "ok" : 403
              const got = r.status === 401 || r.status === 403 ? r.status : "ok"
              table.push(`${e.method} ${e.path} as ${who}: ${got}`)
              expected.push(`${e.method} ${e.path} as ${who}: ${want}`)
              if (got === 403) expect(r.body).toMatchObject({ _tag: "ForbiddenError", scope: e.scope })
            }
          }
          expect(table).toEqual(expected)
        })
      )

      it.effect(
        "security: 401 without a token, 403 for a read token writing, 400 naming the field with nothing written, 413 for big bodies",
        () =>
          Effect.gen(function* () {
            const url = yield* baseUrl
            const writer = yield* MarkenClient.make({ baseUrl: url, token: "writer-token" })
            yield* writer.types.register({ payload: definition })
            const total = () =>
              raw("POST", `${url}/count`, { token: "reader-token", body: { query: {}, by: "type" } }).pipe(
                Effect.map((r) => (r.body as Array<{ count: number }>).reduce((s, g) => s + g.count, 0))
              )
            const before = yield* total()
            const good = {
              type: "shot",
              version: "1.0",
              producer: { algorithm: "sec", version: "1" },
              entity: "t",
              payload: { kind: "cut", score: 0.5 }
            }

            expect((yield* raw("GET", `${url}/types`)).status).toBe(401)
            expect((yield* raw("POST", `${url}/annotations`, { body: good })).status).toBe(401)
            expect((yield* raw("POST", `${url}/annotations`, { body: good, token: "not-a-token" })).status).toBe(401)
            const forbidden = yield* raw("POST", `${url}/annotations`, { body: good, token: "reader-token" })
            expect(forbidden.status).toBe(403)
            expect(forbidden.body._tag).toBe("ForbiddenError")
            expect(
              (yield* raw("POST", `${url}/operations`, {
                body: { type: "shot", version: "1.0", producer: good.producer },
                token: "reader-token"
              })).status
            ).toBe(403)
            expect((yield* raw("GET", `${url}/types`, { token: "reader-token" })).status).toBe(200)

            const cases: Array<[string, unknown, string]> = [
              ["payload failing its schema", { ...good, payload: { kind: "cut", score: 7 } }, "payload.score"],
              ["payload missing a field", { ...good, payload: { kind: "cut" } }, "payload.score"],
              [
                "payload with an unknown field",
                { ...good, payload: { kind: "cut", score: 0.1, evil: 1 } },
                "payload.evil"
              ],
              ["wrong vector dimension", { ...good, vectors: { embedding: [1, 2, 3] } }, "vectors.embedding"],
              [
                "vector component beyond float32",
                { ...good, vectors: { embedding: [0, 0, 0, 1e39, 0, 0, 0, 0] } },
                "vectors.embedding"
              ],
              ["unknown type", { ...good, type: "nope" }, "type"],
              ["unknown version", { ...good, version: "7.0" }, "type"],
              [
                "region outside [0,1]",
                { ...good, region: { _tag: "Box", x: 1.2, y: 0, width: 0.1, height: 0.1 } },
                "region"
              ],
              ["inverted time range", { ...good, time: { startNs: 10, endNs: 5 } }, "time.endNs"],
              ["negative time", { ...good, time: { startNs: -10, endNs: 5 } }, "time.startNs"]
            ]
            for (const [what, body, field] of cases) {
              const r = yield* raw("POST", `${url}/annotations`, { body, token: "writer-token" })
              expect({ what, status: r.status }).toEqual({ what, status: 400 })
              expect({ what, field: fieldOf(r.body) }).toEqual({ what, field: expect.stringContaining(field) })
            }
            const op = yield* writer.operations.start({
              payload: { type: "shot", version: "1.0", producer: good.producer }
            })
            const batch = yield* raw("POST", `${url}/operations/${op.id}/annotations`, {
              token: "writer-token",
              body: {
                items: [
                  { entity: "t", payload: { kind: "cut", score: 0.5 } },
                  { entity: "t", payload: { kind: "cut", score: "high" } }
                ]
              }
            })
            expect(batch.status).toBe(400)
            expect(fieldOf(batch.body)).toBe("items.1.payload.score")
            const overflow = yield* raw("POST", `${url}/operations/${op.id}/annotations`, {
              token: "writer-token",
              body: {
                items: [
                  {
                    entity: "t",
                    payload: { kind: "cut", score: 0.5 },
                    vectors: { embedding: [1e39, 0, 0, 0, 0, 0, 0, 0] }
                  }
                ]
              }
            })
            expect(overflow.status).toBe(400)
            expect(overflow.body.message).toContain("component 0")
            const query = yield* raw("POST", `${url}/search`, {
              token: "reader-token",
              body: { type: "shot", version: "1.0", field: "embedding", vector: [0, 1, 0, 0, 0, 0, 0, -1e39], k: 3 }
            })
            expect(query.status).toBe(400)
            expect(query.body).toMatchObject({ _tag: "InvalidQueryError", path: "vector" })
            expect(query.body.message).toContain("component 7")
            expect((yield* writer.annotations.query({ payload: { operationId: op.id } })).items).toEqual([])

            const notJson = yield* raw("POST", `${url}/annotations`, { text: "{ not json", token: "writer-token" })
            expect(notJson.status).toBe(400)
            expect(fieldOf(notJson.body)).toBe("body")
            const huge = {
              ...good,
              payload: { kind: "cut", score: 0.5, tags: Array.from({ length: 40_000 }, () => "xxxxxxxx") }
            }
            const big = yield* raw("POST", `${url}/annotations`, { body: huge, token: "writer-token" })
            expect(big.status).toBe(413)
            const bigChunked = yield* raw("POST", `${url}/annotations`, {
              body: huge,
              token: "writer-token",
              chunked: true
            })
            expect([413, -1]).toContain(bigChunked.status)
            expect(yield* total()).toBe(before)

            // injection strings in query fields are inert
            yield* writer.annotations.create({ payload: good })
            const after = yield* total()
            expect(after).toBe(before + 1)
            for (const s of ["' or '1'='1", "x'); drop table marken_annotations; --", '" or 1=1 --']) {
              for (const q of [
                { label: s },
                { entities: [s] },
                { type: s },
                { where: [{ field: "kind", op: "eq", value: s }] },
                { producer: s }
              ]) {
                const r = yield* raw("POST", `${url}/query`, { body: q, token: "reader-token" })
                expect(r.status).toBe(200)
                expect(r.body.items).toEqual([])
              }
              const field = yield* raw("POST", `${url}/query`, {
                body: { where: [{ field: s, op: "exists" }] },
                token: "reader-token"
              })
              expect(field.status).toBe(400)
              expect(fieldOf(field.body)).toContain("where.0.field")
              const group = yield* raw("POST", `${url}/count`, {
                body: { query: {}, by: `payload.${s}` },
                token: "reader-token"
              })
              expect(group.status).toBe(400)
            }
            expect(yield* total()).toBe(after)
          })
      )
    }
  )

  if (adapter.name !== "sqlite-memory") {
    it.live(
      `an index file deleted or truncated while the server is stopped is rebuilt and answers correctly (${adapter.name})`,
      () =>
        withShared(adapter, "mhttp", (shared, dir) =>
          Effect.gen(function* () {
            const data = clustered(300, 8, 5, 11)
            const run = <A, E>(f: (client: MarkenClient.Client) => Effect.Effect<A, E>) =>
              Effect.scoped(
                Effect.gen(function* () {
                  const url = yield* baseUrl
                  const client = yield* MarkenClient.make({ baseUrl: url, token: "writer-token" })
                  return yield* f(client)
                }).pipe(Effect.provide(Layer.mergeAll(server(shared.layer, dir), FetchHttpClient.layer)))
              )
            const search = (client: MarkenClient.Client) =>
              client.search.knn({
                payload: { type: "shot", version: "1.0", field: "embedding", vector: Array.from(data[7]!), k: 5 }
              })
            const expected = yield* run((client) =>
              Effect.gen(function* () {
                yield* client.types.register({ payload: definition })
                const op = yield* client.operations.start({
                  payload: { type: "shot", version: "1.0", producer: { algorithm: "idx", version: "1" } }
                })
                yield* client.operations.upsert({
                  path: { id: op.id },
                  payload: {
                    items: data.map((v, i) => ({
                      entity: "v",
                      key: `${i}`,
                      payload: { kind: "cut", score: 0.5 },
                      vectors: { embedding: Array.from(v) }
                    }))
                  }
                })
                yield* client.operations.finish({ path: { id: op.id } })
                return yield* search(client)
              })
            )
            expect(expected.length).toBe(5)
            const file = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith(".hnsw"))!)
            fs.rmSync(file)
            expect(yield* run(search)).toEqual(expected)
            expect(fs.existsSync(file)).toBe(true)
            fs.truncateSync(file, 100)
            expect(yield* run(search)).toEqual(expected)
            expect(fs.statSync(file).size).toBeGreaterThan(100)
          })
        )
    )
  }
}
