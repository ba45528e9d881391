/**
 * The Jasper adapter reads in batches: Catalog's batched reads (entities, children,
 * latest assets of many ids; entities by kind with a cursor) and the EntitySource
 * over them, on every storage adapter, past the 500-id chunk boundary.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { StorageTesting } from "@org/storage/testing"
import { Catalog, Reader, TestMedia } from "@org/jasper"
import { EntitySource } from "@org/amber-compute"

const ARTWORKS = 1100

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip || adapter.name === "sqlite-memory") {
    describe.skip(`Jasper source on ${adapter.name} (${adapter.skip ?? "the file adapter covers SQLite"})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }
  describe(`Jasper source on ${adapter.name}`, () => {
    it.live(
      "reads entities, relations and latest assets of many ids in batches, and lists entities page by page",
      () =>
        Effect.gen(function* () {
          const media = fs.mkdtempSync(path.join(os.tmpdir(), "amber-jasper-src-"))
          const Jasper = Catalog.layer().pipe(
            Layer.provideMerge(Reader.layer({ roots: [media] })),
            Layer.provideMerge(adapter.layer)
          )
          yield* Effect.gen(function* () {
            const catalog = yield* Catalog.Catalog
            const source = yield* EntitySource.makeJasper
            yield* catalog.putEntity({ id: "t0", kind: "title" })
            yield* catalog.putEntity({ id: "t1", kind: "title" })
            const ids: Array<string> = []
            for (let i = 0; i < ARTWORKS; i++) {
              const id = `a${String(i).padStart(5, "0")}`
              ids.push(id)
              yield* catalog.putEntity({ id, kind: "artwork", parentId: i % 3 === 0 ? "t1" : "t0" })
            }
            const image = (name: string, seed: number) =>
              TestMedia.poster(path.join(media, `${name}.png`), { width: 16, height: 24, seed })
            yield* catalog.register({ entityId: "a00001", role: "image", uri: yield* image("one", 1) })
            yield* catalog.register({ entityId: "a01099", role: "image", uri: yield* image("last", 2) })
            yield* catalog.register({ entityId: "a00700", role: "image", uri: yield* image("v1", 3) })
            const v2 = yield* catalog.register({ entityId: "a00700", role: "image", uri: yield* image("v2", 4) })
            yield* catalog.register({ entityId: "a00002", role: "poster", uri: yield* image("poster", 5) })

            // Catalog: entities of many ids, in order, unknown ones undefined
            const asked = [...ids].reverse().concat(["nope", "t1", "a00001"])
            const entities = yield* catalog.getEntities(asked)
            expect(entities.map((e) => e?.id)).toEqual(asked.map((id) => (id === "nope" ? undefined : id)))
            expect(entities.at(-2)).toMatchObject({ id: "t1", kind: "title" })

            // children of many parents, each as `children` answers
            const kids = yield* catalog.childrenOf(["t0", "nope", "t1", "a00001"], { kind: "artwork" })
            expect(kids.map((k) => k.length)).toEqual([
              ARTWORKS - Math.ceil(ARTWORKS / 3),
              0,
              Math.ceil(ARTWORKS / 3),
              0
            ])
            expect(kids[2]!.map((e) => e.id)).toEqual(
              (yield* catalog.children("t1", { kind: "artwork" })).map((e) => e.id)
            )
            expect((yield* catalog.childrenOf(["t1"], { kind: "title" }))[0]).toEqual([])

            // the latest asset in a role of many entities
            const assets = yield* catalog.latestAssets(ids, "image")
            expect(assets.filter((a) => a !== undefined).map((a) => a!.entityId)).toEqual([
              "a00001",
              "a00700",
              "a01099"
            ])
            expect(assets[700]!.id).toBe(v2.id)
            expect(assets[700]!.version).toBe(2)
            expect(assets[2]).toBeUndefined()

            // every entity of a kind by pages: no repeats, none left out
            const seen: Array<string> = []
            let after: string | undefined
            for (;;) {
              const page = yield* catalog.listEntities({ kind: "artwork", limit: 300, ...(after ? { after } : {}) })
              seen.push(...page.map((e) => e.id))
              if (page.length < 300) break
              after = page.at(-1)!.id
            }
            expect(seen).toEqual(ids)
            expect((yield* catalog.listEntities()).length).toBe(1000)
            expect((yield* catalog.listEntities({ limit: 5000 })).length).toBe(ARTWORKS + 2)
            expect((yield* catalog.listEntities({ kind: "title" })).map((e) => e.id)).toEqual(["t0", "t1"])

            // the EntitySource over it
            const got = yield* source.getMany(["a00002", "nope", "t0"])
            expect(got).toEqual([
              { id: "a00002", kind: "artwork", parentId: "t0", attributes: {} },
              undefined,
              { id: "t0", kind: "title", parentId: undefined, attributes: {} }
            ])
            const parents = yield* source.related(["a00000", "a00001", "t0", "nope"], { _tag: "Parent" })
            expect(parents.map((ps) => ps.map((p) => p.id))).toEqual([["t1"], ["t0"], [], []])
            const children = yield* source.related(["t1", "a00000"], { _tag: "Children", kind: "artwork" })
            expect(children[0]!.length).toBe(Math.ceil(ARTWORKS / 3))
            expect(children[0]![0]!.id).toBe("a00000")
            expect(children[1]).toEqual([])
            const sourceAssets = yield* source.assets(["a00700", "a00002", "a01099"], "image")
            expect(sourceAssets.map((a) => a?.contentHash)).toEqual([
              assets[700]!.sha256,
              undefined,
              assets[1099]!.sha256
            ])
            expect((yield* source.list({ kind: "artwork" })).length).toBe(ARTWORKS)
            expect((yield* source.list()).length).toBe(ARTWORKS + 2)
            expect((yield* source.list({ kind: "artwork", parentId: "t1" })).length).toBe(Math.ceil(ARTWORKS / 3))
            expect((yield* source.list({ asset: { role: "image" } })).map((e) => e.id)).toEqual([
              "a00001",
              "a00700",
              "a01099"
            ])
            expect((yield* source.list({ ids: ["a00003", "nope", "t0"] })).map((e) => e.id)).toEqual(["a00003", "t0"])
          }).pipe(
            Effect.provide(Jasper),
            Effect.ensuring(Effect.sync(() => fs.rmSync(media, { recursive: true, force: true })))
          )
        }),
      240_000
    )
  })
}
