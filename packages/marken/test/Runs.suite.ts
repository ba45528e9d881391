// Readers during run switches made by another connection (issue 11, defect 1).
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { Annotations, Registry } from "@org/marken"
import { StorageTesting } from "@org/storage/testing"
import { Clip, clipItems, clustered, marken, producer, withShared } from "./fixtures.js"

const root = path.resolve(import.meta.dirname, "../../..")
const writerScript = path.join(import.meta.dirname, "runWriter.ts")

/** A turn of the event loop (I/O callbacks run), unlike `Effect.yieldNow`. */
const macrotask = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * A kNN search of `clip` for the i-th vector through `reader`: how many hits, and the runs they belong to
 * (each hit's run read once from its payload).
 */
const searcher = (data: ReadonlyArray<Float32Array>, k: number, reader: Layer.Layer<Annotations.Annotations>) => {
  const runOf = new Map<string, number>()
  return (i: number) =>
    Effect.flatMap(Annotations.Annotations, (a) =>
      Effect.gen(function* () {
        const hits = yield* a.search({
          type: "clip",
          version: "1.0",
          field: "embedding",
          vector: data[i % data.length]!,
          k
        })
        const runs = new Set<number>()
        for (const h of hits) {
          if (!runOf.has(h.id)) runOf.set(h.id, ((yield* a.get(h.id)).payload as { run: number }).run)
          runs.add(runOf.get(h.id)!)
        }
        return { n: hits.length, runs: [...runs] }
      })
    ).pipe(Effect.provide(reader))
}

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
          const items = (run: number) => clipItems(data, run)
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
          const search = searcher(data, 5, reader)

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
  it.live(
    `kNN readers see one complete run, k hits each time, while a writer process finishes runs (${adapter.name})`,
    () =>
      withShared(adapter, "mrunp", (shared) =>
        Effect.gen(function* () {
          const data = clustered(300, 32, 6, 3)
          const last = 8
          const k = 5
          // run 0 from this process, then runs 1..8 from another process while readers here search
          yield* Effect.flatMap(Annotations.Annotations, (a) =>
            Effect.gen(function* () {
              yield* Effect.flatMap(Registry.Registry, (r) => r.register(Clip))
              const op = yield* a.start({ type: "clip", version: "1.0", producer })
              yield* a.upsert(op.id, clipItems(data, 0))
              yield* a.finish(op.id)
            })
          ).pipe(Effect.provide(marken()(shared.layer)))
          const reader = Layer.succeedContext(yield* Layer.build(marken({ syncIntervalMs: 10 })(shared.layer)))
          const search = searcher(data, k, reader)
          expect(yield* search(0)).toEqual({ n: k, runs: [0] })

          const child = spawn(
            process.execPath,
            [
              "--conditions=@org/source",
              "--import",
              "tsx",
              writerScript,
              JSON.stringify({ location: shared.location, from: 1, to: last })
            ],
            { cwd: root, stdio: ["ignore", "pipe", "pipe"] }
          )
          let stdout = ""
          let stderr = ""
          child.stdout.on("data", (d) => (stdout += d))
          child.stderr.on("data", (d) => (stderr += d))
          let exited = false
          const exit = new Promise<number | null>((resolve) =>
            child.on("exit", (code) => {
              exited = true
              resolve(code)
            })
          )
          yield* Effect.addFinalizer(() => Effect.sync(() => exited || child.kill("SIGKILL")))

          // three reader fibers search until the writer is done: every answer has k hits, all of one
          // run, and a fiber never goes back to an older run
          const answers: Array<string> = []
          const readerFiber = (f: number) =>
            Effect.gen(function* () {
              let newest = 0
              for (let i = 0; !exited; i++) {
                const r = yield* search(f * 101 + i)
                answers.push(`${r.n} hits from runs ${r.runs.join(",")}`)
                if (r.n !== k || r.runs.length !== 1 || r.runs[0]! < newest) return answers.at(-1)!
                newest = r.runs[0]!
                yield* i % 2 ? Effect.yieldNow() : macrotask
              }
              return "ok"
            })
          const outcomes = yield* Effect.all([readerFiber(0), readerFiber(1), readerFiber(2)], {
            concurrency: "unbounded"
          })
          const code = yield* Effect.promise(() => exit)
          expect(code, stderr.slice(-2000)).toBe(0)
          expect(stdout.trim().split("\n")).toHaveLength(last)
          expect(outcomes).toEqual(["ok", "ok", "ok"])
          // the readers searched while runs were switching, and saw more than the first and the last
          const runsSeen = new Set(answers.map((a) => a.replace(/.* /, "")))
          expect(answers.length).toBeGreaterThan(20)
          expect(runsSeen.size).toBeGreaterThan(1)
          yield* Effect.sleep("30 millis")
          expect(yield* search(1)).toEqual({ n: k, runs: [last] })
        })
      ).pipe(Effect.scoped),
    120_000
  )
}
