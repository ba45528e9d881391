/**
 * The trigger with real processes: a child follows Jasper's change feed on a
 * shared database and is killed (SIGKILL) between processing its changes and
 * advancing its cursor. After a restart the changes are processed again, nothing
 * is computed twice, nothing is skipped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sql } from "kysely"
import { Database } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"
import { FeatureSpec, FeatureStore } from "@org/amber-store"
import { Catalog, Reader, TestMedia } from "@org/jasper"
import { EntitySource, Executor, Mesh, Resolver } from "@org/amber-compute"
import { Calls, chain, uid } from "./fixtures/mesh.js"
import { runFixture } from "./fixtures/spawn.js"

const runChild = (args: Record<string, unknown>, readyFile?: string) =>
  Effect.promise(() =>
    runFixture("trigger-child.ts", { ...args, readyFile }, readyFile === undefined ? {} : { killWhen: readyFile })
  )

const lines = (file: string) =>
  fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim().split("\n").filter(Boolean) : []

for (const adapter of StorageTesting.adapters().filter((a) => a.name !== "sqlite-memory")) {
  if (adapter.skip) {
    describe.skip(`Trigger kill test on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }
  describe(`Trigger kill test on ${adapter.name}`, () => {
    it.live(
      "a trigger killed between processing and advancing its cursor processes the changes again: nothing twice, nothing skipped",
      () =>
        Effect.gen(function* () {
          const prefix = uid("k")
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), "amber-trigger-"))
          const media = path.join(dir, "media")
          fs.mkdirSync(media)
          const shared = adapter.shared(prefix)
          const log = path.join(dir, "calls.log")
          const name = `${prefix}-follow`
          const args = { location: shared.location, prefix, name, log, roots: [media] }
          const calls = new Calls()
          const { TitleSet, algorithms } = chain(prefix, calls)
          const mesh = yield* Mesh.make(algorithms)
          const Jasper = Catalog.layer().pipe(Layer.provideMerge(Reader.layer({ roots: [media] })))
          const App = Layer.mergeAll(Resolver.layer(mesh), Jasper).pipe(
            Layer.provideMerge(
              Layer.mergeAll(
                FeatureStore.layer(),
                EntitySource.layerJasper.pipe(Layer.provide(Jasper)),
                Executor.layerLocal()
              )
            ),
            Layer.provideMerge(shared.layer)
          )
          yield* Effect.gen(function* () {
            const catalog = yield* Catalog.Catalog
            const resolver = yield* Resolver.Resolver
            const titles = [`${prefix}-t0`, `${prefix}-t1`]
            const artworks: Array<string> = []
            for (const [t, title] of titles.entries()) {
              yield* catalog.putEntity({ id: title, kind: "title" })
              for (let a = 0; a < 3; a++) {
                const id = `${title}-a${a}`
                artworks.push(id)
                yield* catalog.putEntity({ id, kind: "artwork", parentId: title })
                const file = yield* TestMedia.poster(path.join(media, `${id}.png`), {
                  width: 24,
                  height: 36,
                  seed: t * 10 + a + 1
                })
                yield* catalog.register({ entityId: id, role: "image", uri: file })
              }
            }
            const cursorName = `trigger:${name}`
            // 1. the child processes the six additions, then is killed before its cursor moves
            const ready = path.join(dir, "ready.json")
            const killed = yield* runChild(args, ready)
            expect(killed.signal).toBe("SIGKILL")
            expect(JSON.parse(fs.readFileSync(ready, "utf8"))).toEqual([...titles, ...artworks].sort())
            expect(yield* resolver.cursor(cursorName)).toBe(0)
            const first = lines(log)
            expect(first.sort()).toEqual(
              [...artworks.flatMap((a) => [`tensor|${a}`, `color|${a}`]), ...titles.map((t) => `set|${t}`)].sort()
            )
            // 2. restarted, it processes the same changes again and computes nothing
            const again = yield* runChild(args)
            expect(again.code, again.stderr).toBe(0)
            const { steps } = again.result()
            expect(steps).toEqual([{ from: 0, to: 6, changes: 6, computed: 0 }])
            expect(lines(log)).toHaveLength(first.length)
            expect(yield* resolver.cursor(cursorName)).toBe(6)
            // nothing skipped: every value is stored, once
            const plan = yield* resolver.plan(TitleSet, titles)
            for (const f of plan.features) expect(f.entries.every((e) => e.state === "stored")).toBe(true)
            const store = yield* FeatureStore.FeatureStore
            const sets = yield* store.list({ feature: FeatureSpec.label(TitleSet).split("@")[0]! })
            expect(sets).toHaveLength(2)
            // 3. new content for one artwork and a metadata edit of another: exactly the dependents recompute
            const file = yield* TestMedia.poster(path.join(media, "new.png"), { width: 24, height: 36, seed: 99 })
            yield* catalog.register({ entityId: artworks[4]!, role: "image", uri: file })
            const other = (yield* catalog.list({ entityId: artworks[0]!, role: "image" }))[0]!
            yield* catalog.updateLabels(other.id, { cropped: "yes" })
            const mark = lines(log).length
            const third = yield* runChild(args)
            expect(third.code, third.stderr).toBe(0)
            expect(lines(log).slice(mark).sort()).toEqual(
              [`color|${artworks[4]}`, `set|${titles[1]}`, `tensor|${artworks[4]}`].sort()
            )
            expect(yield* resolver.cursor(cursorName)).toBe(8)
            if (shared.location.kind === "pg") {
              yield* Database.use("drop", (k) =>
                sql`drop schema if exists ${sql.id(shared.location.schema!)} cascade`.execute(k)
              )
            }
          }).pipe(Effect.provide(App))
          fs.rmSync(dir, { recursive: true, force: true })
          if (shared.location.kind === "sqlite") {
            for (const suffix of ["", "-wal", "-shm"])
              fs.rmSync(`${shared.location.filename}${suffix}`, { force: true })
          }
        }),
      120_000
    )
  })
}
