/**
 * The distributed executor on PostgreSQL: workers in this process (fibers) and
 * retries, failures and options; the process tests (kill, CLI) are in
 * DistributedProcesses.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Layer, Queue } from "effect"
import * as path from "node:path"
import pg from "pg"
import { StorageTesting } from "@org/storage/testing"
import { FeatureStore } from "@org/amber-store"
import { AmberConfig, DistributedExecutor, EntitySource, Executor, Mesh, Resolver, Worker } from "@org/amber-compute"
import type { RunEvent } from "@org/amber-compute"
import * as DistributedQueue from "../src/internal/distributedQueue.js"
import { type Handle, runWorker } from "../src/internal/distributedWorker.js"
import { Calls, catalog, chain, uid } from "./fixtures/mesh.js"

const url = StorageTesting.pgUrl
const suffix = `${process.pid}_${Date.now().toString(36)}`
const storeSchema = `amber_dist_store_${suffix}`
const queueSchema = `amber_dist_jobs_${suffix}`

process.env.AMBER_PG_URL = url ?? ""
process.env.AMBER_STORE = `pg:${storeSchema}`
process.env.AMBER_QUEUE_SCHEMA = queueSchema
process.env.AMBER_ENTITIES = "60"
process.env.AMBER_FAIL_ENTITY = "art-7"
process.env.AMBER_MAX_ATTEMPTS = "2"

const configPath = path.join(import.meta.dirname, "fixtures/distributed.config.ts")

/** Drops these schemas (a test's own queue schema when it ends). */
const dropSchema = (...schemas: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    const pool = new pg.Pool({ connectionString: url })
    await pool.query(schemas.map((schema) => `drop schema if exists ${schema} cascade`).join("; "))
    await pool.end()
  })

const dropSchemas = dropSchema(storeSchema, queueSchema)

/** A worker fiber on `queue` for the test's scope, live (its heartbeat seen) when this returns. */
const liveWorker = (queue: DistributedQueue.Queue, concurrency: number, handle: Handle<never>) =>
  Effect.gen(function* () {
    yield* Effect.forkScoped(runWorker(queue, { concurrency, handle }))
    while ((yield* queue.workers).length === 0) yield* Effect.sleep("50 millis")
  })

/** The caller's side of a run of these levels on the distributed executor (the workers run the tasks). */
const runLevels = (options: DistributedExecutor.Options, run: string, levels: Executor.Job["levels"]) =>
  Effect.flatMap(DistributedExecutor.make(options), (executor) =>
    executor.execute({ run, levels, runTask: () => Effect.die("the distributed executor runs tasks in workers") })
  )

const callerLayer = (config: AmberConfig.AmberConfig) =>
  Resolver.layer(config.mesh, { batchSize: 10 }).pipe(
    Layer.provide(DistributedExecutor.layer(config.distributed!)),
    Layer.provideMerge(config.layer)
  )

describe.skipIf(!url)("DistributedExecutor (PostgreSQL)", () => {
  if (!url) console.warn(`${StorageTesting.PG_URL_ENV} is not set: distributed executor tests are skipped`)

  it.live(
    "materializes a 3-level mesh through workers and returns the local executor's result shape",
    () =>
      Effect.gen(function* () {
        const config = yield* AmberConfig.load(configPath)
        const workers = yield* Effect.forkScoped(
          Effect.all([Worker.run({ config, concurrency: 2 }), Worker.run({ config, concurrency: 2 })], {
            concurrency: "unbounded"
          })
        )
        const { events, result } = yield* Effect.gen(function* () {
          const resolver = yield* Resolver.Resolver
          const subscription = yield* resolver.subscribe
          const result = yield* resolver.materialize(
            "art.score@1",
            Array.from({ length: 60 }, (_, i) => `art-${i}`)
          )
          return { result, events: Chunk.toReadonlyArray(yield* Queue.takeAll(subscription)) }
        }).pipe(Effect.provide(callerLayer(config)))
        // the workers' progress is published in the caller's process
        const sum = (tag: string) =>
          events.filter((e) => e._tag === tag).reduce((n, e) => n + ("entities" in e ? e.entities : 1), 0)
        expect(sum("Computed")).toBe(177)
        expect(sum("Failed")).toBe(3)
        expect(events.at(-1)?._tag).toBe("Finished")
        expect(result.entities).toBe(60)
        // art-7 fails at the first level: its three values fail (tensor) or are blocked
        expect(result.failed.map((f) => `${f.feature}:${f.entity}`).sort()).toContain("art.tensor:art-7")
        expect(result.computed).toBe(59 * 3)
        yield* Fiber.interrupt(workers)
      }).pipe(Effect.scoped, Effect.ensuring(dropSchemas)),
    60_000
  )

  it.live(
    "a failing attempt is retried with backoff; after maxAttempts the task is failed, in the result and in status",
    () =>
      Effect.gen(function* () {
        const options = { url: url!, schema: `${queueSchema}_retry`, maxAttempts: 2, pollMs: 50, workerTimeoutMs: 2000 }
        const queue = yield* DistributedExecutor.queue(options)
        const attempts = new Map<number, number>()
        yield* Effect.forkScoped(
          runWorker(queue, {
            concurrency: 2,
            handle: (task) =>
              Effect.suspend(() => {
                const n = (attempts.get(task.seq) ?? 0) + 1
                attempts.set(task.seq, n)
                if (task.seq === 1) return Effect.fail(new Error(`broken batch ${task.entities.join(",")}`))
                if (n === 1) return Effect.die(new Error("flaky"))
                return Effect.succeed({ feature: task.feature, computed: task.entities, cached: [], failed: [], ms: 1 })
              })
          })
        )
        const executor = yield* DistributedExecutor.make(options)
        const t0 = Date.now()
        const results = yield* executor.execute({
          run: "retry-run",
          levels: [
            [
              { feature: "art.tensor@1", entities: ["a", "b"] },
              { feature: "art.tensor@1", entities: ["c"] }
            ]
          ],
          runTask: () => Effect.die("the distributed executor runs tasks in workers")
        })
        // graphile-worker waits exp(1) = 2.7 s before the second attempt
        expect(Date.now() - t0).toBeGreaterThan(2500)
        expect(Object.fromEntries(attempts)).toEqual({ 0: 2, 1: 2 })
        const byFeature = results.map((r) => ({
          computed: r.computed,
          failed: r.failed.map((f) => [f._tag, f.entity])
        }))
        expect(byFeature).toContainEqual({ computed: ["a", "b"], failed: [] })
        expect(byFeature).toContainEqual({ computed: [], failed: [["ComputeFailedError", "c"]] })
        const failure = results.flatMap((r) => r.failed)[0]!
        expect(failure.message).toMatch(/failed after 2 attempt\(s\): broken batch c/)
        const status = yield* DistributedExecutor.status(options, "retry-run")
        expect(status.byState).toMatchObject({ done: 1, failed: 1, queued: 0, running: 0 })
        expect(status.failed).toEqual([
          { run: "retry-run", seq: 1, feature: "art.tensor@1", attempts: 2, lastError: "broken batch c" }
        ])
        expect(status.workers.length).toBe(1)
      }).pipe(Effect.scoped, Effect.ensuring(dropSchema(`${queueSchema}_retry`))),
    60_000
  )

  it.live(
    "a level's last tasks are cut finer for the workers' slots, and NOTIFY wakes the waiting caller",
    () =>
      Effect.gen(function* () {
        // polls would come every 4 x 5 s: a run that settles in a few seconds was woken by NOTIFY
        const options = { url: url!, schema: `${queueSchema}_tail`, pollMs: 5000 }
        const queue = yield* DistributedExecutor.queue(options)
        const sizes: Array<ReadonlyArray<string>> = []
        // the worker is live (its 2 slots count) before the run starts
        yield* liveWorker(queue, 2, (task) =>
          Effect.sync(() => sizes.push(task.entities)).pipe(
            Effect.as({ feature: task.feature, computed: task.entities, cached: [], failed: [], ms: 1 })
          )
        )
        const entities = Array.from({ length: 60 }, (_, i) => `e${i}`)
        const level = Array.from({ length: 6 }, (_, i) => ({
          feature: "art.tensor@1",
          entities: entities.slice(10 * i, 10 * i + 10)
        }))
        const t0 = Date.now()
        const results = yield* runLevels(options, "tail-run", [level])
        expect(Date.now() - t0).toBeLessThan(4000)
        expect(results.flatMap((r) => r.computed).sort()).toEqual([...entities].sort())
        // every entity ran once; the first tasks are whole, the last ones smaller
        expect(sizes.flat().sort()).toEqual([...entities].sort())
        const bySeq = [...(yield* queue.tasks("tail-run"))].sort((a, b) => a.seq - b.seq).map((t) => t.entities.length)
        expect(bySeq.length).toBeGreaterThan(6)
        expect(bySeq[0]).toBe(10)
        expect(bySeq.at(-1)).toBeLessThanOrEqual(5)
        expect(bySeq.reduce((n, k) => n + k, 0)).toBe(60)
        // status names each live worker's slots
        const status = yield* DistributedExecutor.status(options)
        expect(status.workers.map((w) => w.concurrency)).toEqual([2])
      }).pipe(Effect.scoped, Effect.ensuring(dropSchema(`${queueSchema}_tail`))),
    60_000
  )

  it.live(
    "the waiting caller is told each start and settling, small results included; a result too big for a note is read from the table",
    () =>
      Effect.gen(function* () {
        const schema = `${queueSchema}_notes`
        const options = { url: url!, schema, pollMs: 5000 }
        const queue = yield* DistributedExecutor.queue(options)
        const listener = (yield* queue.listen("notes-run"))!
        expect(listener).toBeDefined()
        const other = (yield* queue.listen("other-run"))!
        const small = { feature: "art.tensor@1", computed: ["a"], cached: [], failed: [], ms: 1 }
        // over PostgreSQL's 8000-byte limit for a payload: the note says done, the result stays in the table
        const big = { ...small, computed: Array.from({ length: 800 }, (_, i) => `entity-with-a-long-name-${i}`) }
        yield* queue.insertTasks("notes-run", [
          { seq: 0, level: 0, feature: "art.tensor@1", entities: ["a"] },
          { seq: 1, level: 0, feature: "art.tensor@1", entities: big.computed },
          { seq: 2, level: 0, feature: "art.tensor@1", entities: ["c"] }
        ])
        expect(yield* queue.start("notes-run", 0, "w", 1)).toMatchObject({ seq: 0, state: "running" })
        yield* queue.finish("notes-run", 0, small)
        yield* queue.start("notes-run", 1, "w", 1)
        yield* queue.finish("notes-run", 1, big)
        yield* queue.start("notes-run", 2, "w", 1)
        yield* queue.fail("notes-run", 2, "boom", true)
        // each listener takes the notes of its own run only
        yield* queue.insertTasks("other-run", [{ seq: 0, level: 0, feature: "art.tensor@1", entities: ["z"] }])
        yield* queue.start("other-run", 0, "w", 1)
        const notes: Array<DistributedQueue.TaskNote> = []
        while (notes.length < 6) notes.push(...(yield* listener.wait(2000)))
        expect(notes.map((n) => [n.seq, n.kind])).toEqual([
          [0, "started"],
          [0, "done"],
          [1, "started"],
          [1, "done"],
          [2, "started"],
          [2, "failed"]
        ])
        expect(JSON.parse(notes[1]!.result!)).toEqual(small)
        expect(notes[3]!.result).toBeUndefined()
        expect(yield* other.wait(2000)).toEqual([{ seq: 0, kind: "started" }])
        // nothing more: the wait ends after its time with no note
        expect(yield* listener.wait(50)).toEqual([])
        expect(yield* other.wait(50)).toEqual([])
        // a bare run (the payload of earlier versions) is a note to read the table
        expect(DistributedQueue.parseNote("some-run")).toEqual({
          run: "some-run",
          note: { seq: undefined, kind: "done" }
        })
        expect(DistributedQueue.parseNote('r\n3\ndone\n{"a":"x\\ny"}')).toEqual({
          run: "r",
          note: { seq: 3, kind: "done", result: '{"a":"x\\ny"}' }
        })

        // end to end: the caller gets the big result from the table and the small ones from notes
        yield* liveWorker(queue, 1, (task) =>
          Effect.succeed(
            task.entities.length > 1 ? { ...big, computed: task.entities } : { ...small, computed: task.entities }
          )
        )
        const t0 = Date.now()
        const results = yield* runLevels(options, "notes-e2e", [
          [
            { feature: "art.tensor@1", entities: ["x"] },
            { feature: "art.tensor@1", entities: big.computed }
          ]
        ])
        // polls come every 4 x 5 s: the notes settled the run
        expect(Date.now() - t0).toBeLessThan(4000)
        expect(results.flatMap((r) => r.computed).sort()).toEqual(["x", ...big.computed].sort())
      }).pipe(Effect.scoped, Effect.ensuring(dropSchema(`${queueSchema}_notes`))),
    60_000
  )

  it.live("an interrupted caller takes its tasks back: jobs removed, tasks failed", () =>
    Effect.gen(function* () {
      const options = { url: url!, schema: `${queueSchema}_cancel`, pollMs: 50 }
      const executor = yield* DistributedExecutor.make(options)
      // no worker: the first level waits in the queue
      const fiber = yield* Effect.fork(
        executor.execute({
          run: "cancel-run",
          levels: [[{ feature: "art.tensor@1", entities: ["a"] }], [{ feature: "art.color@1", entities: ["a"] }]],
          runTask: () => Effect.die("the distributed executor runs tasks in workers")
        })
      )
      const pool = new pg.Pool({ connectionString: url })
      yield* Effect.addFinalizer(() => Effect.promise(() => pool.end()))
      const jobs = () =>
        Effect.promise(() => pool.query(`select key from ${options.schema}.jobs`).then((r) => r.rows.map((x) => x.key)))
      while ((yield* jobs()).length === 0) yield* Effect.sleep(20)
      const before = yield* DistributedExecutor.status(options, "cancel-run")
      expect(before.byState).toMatchObject({ pending: 1, queued: 1 })
      yield* Fiber.interrupt(fiber)
      expect(yield* jobs()).toEqual([])
      const after = yield* DistributedExecutor.status(options, "cancel-run")
      expect(after.byState).toMatchObject({ pending: 0, queued: 0, failed: 2 })
      expect(after.failed.map((t) => t.lastError)).toEqual(["the run was interrupted", "the run was interrupted"])
    }).pipe(Effect.scoped, Effect.ensuring(dropSchema(`${queueSchema}_cancel`)))
  )

  it.live("with no worker running: a WaitingForWorkers event, then NoWorkersError after noWorkersTimeoutMs", () =>
    Effect.gen(function* () {
      const options = {
        url: url!,
        schema: `${queueSchema}_alone`,
        pollMs: 50,
        waitingForWorkersMs: 300,
        noWorkersTimeoutMs: 1500
      }
      const prefix = uid("w")
      const { TitleSet, algorithms } = chain(prefix, new Calls())
      const { source, titleIds } = catalog(prefix, 1, 2)
      const resolver = yield* Resolver.makeMemory(yield* Mesh.make(algorithms)).pipe(
        Effect.provideService(EntitySource.EntitySource, source),
        Effect.provideService(Executor.Executor, yield* DistributedExecutor.make(options)),
        Effect.provide(FeatureStore.layerMemory())
      )
      const subscription = yield* resolver.subscribe
      const t0 = Date.now()
      const error = yield* Effect.flip(resolver.materialize(TitleSet, titleIds))
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1500)
      expect(error._tag).toBe("NoWorkersError")
      expect(error).toMatchObject({ tasks: 1 })
      expect(error.message).toMatch(/no worker took the tasks of run .*: 1 task\(s\) waited \d+ ms with no live worker/)
      const events = Chunk.toReadonlyArray(yield* Queue.takeAll(subscription))
      const waiting = events.filter((e) => e._tag === "WaitingForWorkers")
      expect(waiting).toHaveLength(1)
      expect(waiting[0]).toMatchObject({ tasks: 1 })
      expect((waiting[0] as RunEvent.WaitingForWorkers).waitedMs).toBeGreaterThanOrEqual(300)
      // the run's tasks (three levels) were taken back: no job left, the tasks failed with the reason
      const status = yield* DistributedExecutor.status(options)
      expect(status.byState).toMatchObject({ queued: 0, pending: 0, failed: 3 })
      expect(status.failed[0]!.lastError).toMatch(/^the caller gave up: no worker took the tasks/)
      const pool = new pg.Pool({ connectionString: url })
      const { rows } = yield* Effect.promise(() => pool.query(`select count(*)::int as n from ${options.schema}.jobs`))
      yield* Effect.promise(() => pool.end())
      expect(rows[0].n).toBe(0)
      // bad values of the new options are refused with their name
      const bad = yield* Effect.flip(DistributedExecutor.config({ url: url!, noWorkersTimeoutMs: 0 }))
      expect(bad.option).toBe("noWorkersTimeoutMs")
    }).pipe(Effect.scoped, Effect.ensuring(dropSchema(`${queueSchema}_alone`)))
  )

  it.effect("rejects bad options with the option's name", () =>
    Effect.gen(function* () {
      const bad = yield* Effect.exit(DistributedExecutor.config({ url: "mysql://x" }))
      expect(Exit.isFailure(bad)).toBe(true)
      const error = yield* Effect.flip(DistributedExecutor.config({ url: url!, schema: "Bad-Name" }))
      expect(error._tag).toBe("ComputeConfigError")
      expect(error.option).toBe("schema")
      const beat = yield* Effect.flip(
        DistributedExecutor.config({ url: url!, workerTimeoutMs: 1000, heartbeatMs: 900 })
      )
      expect(beat.option).toBe("heartbeatMs")
    })
  )
})
