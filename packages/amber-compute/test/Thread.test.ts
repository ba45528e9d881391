/**
 * A compute function that blocks the event loop for longer than the store's lease
 * cannot keep its claim alive: two processes both compute it. Run in a worker
 * thread, the claim is renewed while it computes, and it runs once.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FeatureSpec, FeatureStore } from "@org/amber-store"
import { Algorithm, EntitySource, Executor, Mesh, Resolver } from "@org/amber-compute"
import { uid } from "./fixtures/mesh.js"
import { runFixture } from "./fixtures/spawn.js"

const blocking = path.join(import.meta.dirname, "fixtures/blocking.mjs")

/** Two processes materialize the same value at once; returns how many times it was computed. */
const race = (mode: "thread" | "inline") =>
  Effect.promise(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "amber-lease-"))
    const location = { kind: "sqlite", filename: path.join(dir, "db.sqlite") }
    const log = path.join(dir, "calls.log")
    const prefix = uid(mode)
    const go = path.join(dir, "go")
    const base = { location, prefix, mode, log, goFile: go, ms: 3500 }
    const running = [0, 1].map((i) =>
      runFixture("lease-child.ts", { ...base, readyFile: path.join(dir, `ready-${i}`) })
    )
    const deadline = Date.now() + 90_000
    while (![0, 1].every((i) => fs.existsSync(path.join(dir, `ready-${i}`)))) {
      if (Date.now() > deadline) throw new Error("the children did not start")
      await new Promise((r) => setTimeout(r, 20))
    }
    fs.writeFileSync(go, "go")
    const results = await Promise.all(running)
    for (const r of results) if (r.code !== 0) throw new Error(`child failed: ${r.stderr.slice(-2000)}`)
    const calls = fs.readFileSync(log, "utf8").trim().split("\n").length
    fs.rmSync(dir, { recursive: true, force: true })
    return { calls, results: results.map((r) => r.result()) }
  })

describe("blocking compute longer than the store's lease", () => {
  it.live(
    "inline it runs twice (the claim lapses); in a worker thread it runs once",
    () =>
      Effect.gen(function* () {
        const inline = yield* race("inline")
        expect(inline.calls).toBe(2)
        const thread = yield* race("thread")
        expect(thread.calls).toBe(1)
        expect(thread.results.map((r) => r.computed).sort()).toEqual([0, 1])
        expect(thread.results.map((r) => r.cached).sort()).toEqual([0, 1])
      }),
    180_000
  )

  it.live(
    "a thread's failure, timeout and result come back per entity",
    () =>
      Effect.gen(function* () {
        const Len = FeatureSpec.make({ name: uid("len"), version: 1, entity: "artwork", value: Schema.Number })
        const Bad = FeatureSpec.make({ name: uid("bad"), version: 1, entity: "artwork", value: Schema.Number })
        const Hang = FeatureSpec.make({ name: uid("hang"), version: 1, entity: "artwork", value: Schema.Number })
        const mesh = yield* Mesh.make([
          Algorithm.make({ feature: Len, inputs: {}, params: { ms: 1 }, thread: { module: blocking } }),
          Algorithm.make({ feature: Bad, inputs: {}, params: { ms: 1 }, thread: { module: blocking, export: "nope" } }),
          Algorithm.make({
            feature: Hang,
            inputs: {},
            params: { ms: 5000 },
            timeout: "300 millis",
            thread: { module: blocking }
          })
        ])
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "amber-thread-"))
        process.env.AMBER_BLOCKING_LOG = path.join(dir, "log")
        const program = Effect.gen(function* () {
          const resolver = yield* Resolver.makeMemory(mesh)
          const ok = yield* resolver.materialize(Len, ["abc", "abcdef"])
          expect(ok).toMatchObject({ computed: 2, failed: [] })
          const bad = yield* resolver.materialize(Bad, ["abc"])
          expect(bad.failed[0]).toMatchObject({ _tag: "ComputeFailedError", entity: "abc" })
          expect(bad.failed[0]!.message).toContain("no function export nope")
          const started = Date.now()
          const hang = yield* resolver.materialize(Hang, ["abc"])
          expect(hang.failed[0]).toMatchObject({ _tag: "ComputeTimeoutError", timeoutMs: 300 })
          expect(Date.now() - started).toBeLessThan(3000)
        })
        yield* program.pipe(
          Effect.provide(
            Layer.mergeAll(
              FeatureStore.layerMemory(),
              EntitySource.layerMemory({
                entities: [
                  { id: "abc", kind: "artwork" },
                  { id: "abcdef", kind: "artwork" }
                ]
              }),
              Executor.layerLocal()
            )
          )
        )
        fs.rmSync(dir, { recursive: true, force: true })
      }),
    30_000
  )
})
