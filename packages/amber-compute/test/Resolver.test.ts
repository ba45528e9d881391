import { describe, expect, it, layer } from "@effect/vitest"
import type { Vitest } from "@effect/vitest"
import { Effect, Layer, Queue, Schema, type Scope } from "effect"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"
import { Database } from "@org/storage"
import { StorageTesting } from "@org/storage/testing"
import { sql } from "kysely"
import {
  Algorithm,
  AmberConfig,
  DistributedExecutor,
  EntitySource,
  Executor,
  Mesh,
  Plan,
  Resolver,
  Trigger,
  Worker
} from "@org/amber-compute"
import type { RunEvent } from "@org/amber-compute"
import { Calls, catalog, chain, sha, uid } from "./fixtures/mesh.js"

type Build = (
  mesh: Mesh.Mesh<any>,
  source: EntitySource.Service,
  options?: { readonly concurrency?: number; readonly batchSize?: number }
) => Effect.Effect<Resolver.Service, unknown, FeatureStore.FeatureStore | Scope.Scope>

const withExecutor =
  (source: EntitySource.Service, concurrency: number | undefined) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(
      Effect.provideService(EntitySource.EntitySource, source),
      Effect.provideService(Executor.Executor, Executor.makeLocal({ concurrency: concurrency ?? 4 }))
    )

/** The resolver's own options (the executor's concurrency goes to the executor). */
const resolverOptions = (options: { readonly batchSize?: number }): Resolver.Options =>
  options.batchSize === undefined ? {} : { batchSize: options.batchSize }

const buildMemory: Build = (mesh, source, options = {}) =>
  withExecutor(source, options.concurrency)(Resolver.makeMemory(mesh, resolverOptions(options)))

const entriesOf = (plan: Plan.Plan, feature: string) =>
  Object.fromEntries(plan.features.find((f) => f.feature === feature)!.entries.map((e) => [e.entity, e.state]))

const drain = (queue: Queue.Dequeue<RunEvent.RunEvent>) => Queue.takeAll(queue).pipe(Effect.map((c) => [...c]))

const conformance = (it: Vitest.MethodsNonLive<any, true>, build: Build, durable: boolean, timeout = 5_000) => {
  const test = (name: string, self: Parameters<typeof it.scoped>[1]) => it.scoped(name, self, timeout)
  test("materializes a 3-level mesh with a related-entity input once; a re-run computes nothing", () =>
    Effect.gen(function* () {
      const prefix = uid("m")
      const calls = new Calls()
      const { TitleSet, Color, algorithms } = chain(prefix, calls)
      const mesh = yield* Mesh.make(algorithms)
      const { source, titleIds, artworkIds } = catalog(prefix, 2, 3)
      const resolver = yield* build(mesh, source)
      const first = yield* resolver.materialize(TitleSet, titleIds)
      expect(first.failed).toEqual([])
      expect(first.computed).toBe(6 + 6 + 2)
      expect(first.features[FeatureSpec.label(TitleSet)]).toEqual({ computed: 2, cached: 0, failed: 0 })
      expect(calls.since(0)).toHaveLength(14)
      // each compute function ran once per key
      expect(new Set(calls.list).size).toBe(14)
      const again = yield* resolver.materialize(TitleSet, titleIds)
      expect(again.computed).toBe(0)
      expect(again.cached).toBe(2)
      expect(calls.list).toHaveLength(14)
      // lineage: producer = algorithm@version, run id
      const store = yield* FeatureStore.FeatureStore
      const lineage = yield* store.list({ feature: Color, entity: artworkIds[0]! })
      expect(lineage).toHaveLength(1)
      expect(lineage[0]!.producer).toBe(`${prefix}.color@1`)
      expect(lineage[0]!.run).toBe(first.run)
      expect(lineage[0]!.inputs.params).toEqual({ scale: 0.5 })
      expect(lineage[0]!.inputs.upstream).toHaveLength(1)
      // the set embedding is the mean of its artworks' colours, in id order
      const plan = yield* resolver.plan(TitleSet, titleIds)
      expect(Object.values(entriesOf(plan, FeatureSpec.label(TitleSet)))).toEqual(["stored", "stored"])
    }))

  test("plans stored, missing, stale-version, stale-input and blocked, as a tree and as JSON", () =>
    Effect.gen(function* () {
      const prefix = uid("p")
      const calls = new Calls()
      const v1 = chain(prefix, calls)
      const { source, titleIds } = catalog(prefix, 2, 2)
      const r1 = yield* build(yield* Mesh.make(v1.algorithms), source)
      yield* r1.materialize(v1.TitleSet, [titleIds[0]!])
      // a new image for t0-a0 (stale-input), an artwork without an image under t1 (blocked)
      yield* source.putAsset({ entityId: `${prefix}-t0-a0`, role: "image", contentHash: sha("new") })
      yield* source.putEntity({ id: `${prefix}-t1-bare`, kind: "artwork", parentId: titleIds[1]! })
      const v2 = chain(prefix, calls, { color: 2 })
      const r2 = yield* build(yield* Mesh.make(v2.algorithms), source)
      const plan = yield* r2.plan(v2.TitleSet, titleIds)
      const tensor = entriesOf(plan, FeatureSpec.label(v2.Tensor))
      expect(tensor).toEqual({
        [`${prefix}-t0-a0`]: "stale-input",
        [`${prefix}-t0-a1`]: "stored",
        [`${prefix}-t1-a0`]: "missing",
        [`${prefix}-t1-a1`]: "missing",
        [`${prefix}-t1-bare`]: "blocked"
      })
      const color = entriesOf(plan, FeatureSpec.label(v2.Color))
      expect(color[`${prefix}-t0-a1`]).toBe("stale-version")
      expect(color[`${prefix}-t1-a0`]).toBe("missing")
      expect(color[`${prefix}-t1-bare`]).toBe("blocked")
      const set = entriesOf(plan, FeatureSpec.label(v2.TitleSet))
      expect(set).toEqual({ [titleIds[0]!]: "stale-input", [titleIds[1]!]: "blocked" })
      const text = Plan.render(plan)
      expect(text.split("\n")[0]).toBe(`${prefix}.set@1 (2 entities: 1 stale-input, 1 blocked)`)
      expect(text).toContain(`children [artworks] ${prefix}.color@2`)
      expect(text).toContain(
        `${prefix}-t1-bare: blocked (${prefix}.tensor@1 for ${prefix}-t1-bare: no asset in role image)`
      )
      expect(text).toContain("asset image [image]")
      const json = JSON.parse(JSON.stringify(Plan.toJson(plan)))
      expect(json.features.map((f: any) => f.feature)).toEqual([
        `${prefix}.tensor@1`,
        `${prefix}.color@2`,
        `${prefix}.set@1`
      ])
      expect(json.features[2].counts).toMatchObject({ "stale-input": 1, blocked: 1, total: 2 })
      // tasks in dependency order, batched
      const levels = Plan.tasks(plan, 2)
      expect(levels.map((l) => l.map((t) => t.feature))).toEqual([
        [`${prefix}.tensor@1`, `${prefix}.tensor@1`],
        [`${prefix}.color@2`, `${prefix}.color@2`],
        [`${prefix}.set@1`]
      ])
      expect(levels[0]!.flatMap((t) => t.entities)).toEqual([`${prefix}-t0-a0`, `${prefix}-t1-a0`, `${prefix}-t1-a1`])
      // planning computed nothing
      expect(calls.list).toHaveLength(2 + 2 + 1)
    }))

  test("one entity's failure (throw, defect, timeout, invalid value, missing asset) stays its own; a re-run retries only the failures", () =>
    Effect.gen(function* () {
      const prefix = uid("f")
      const Score = FeatureSpec.make({
        name: `${prefix}.score`,
        version: 1,
        entity: "artwork",
        value: Schema.Number.pipe(Schema.nonNegative())
      })
      const Best = FeatureSpec.make({ name: `${prefix}.best`, version: 1, entity: "title", value: Schema.Number })
      const mode = new Map<string, string>()
      const calls = new Calls()
      const mesh = yield* Mesh.make([
        Algorithm.make({
          feature: Score,
          inputs: { image: Algorithm.asset("image") },
          timeout: "200 millis",
          compute: ({ entity }) => {
            calls.add("score", entity.id)
            switch (mode.get(entity.id)) {
              case "fail":
                return Effect.fail(new Error("model unavailable"))
              case "throw":
                throw new Error("index out of range")
              case "hang":
                return Effect.never
              case "invalid":
                return Effect.succeed(-1)
              default:
                return Effect.succeed(entity.id.length)
            }
          }
        }),
        Algorithm.make({
          feature: Best,
          inputs: { scores: Algorithm.children(Score) },
          compute: ({ entity, inputs }) => {
            calls.add("best", entity.id)
            return Effect.succeed(Math.max(0, ...inputs.scores.map((s) => s.value)))
          }
        })
      ])
      const { source, titleIds, artworkIds } = catalog(prefix, 3, 2)
      // t0: both fine; t1: a0 fails, a1 throws; t2: a0 hangs, a1 is invalid; plus one without an image
      mode.set(artworkIds[2]!, "fail")
      mode.set(artworkIds[3]!, "throw")
      mode.set(artworkIds[4]!, "hang")
      mode.set(artworkIds[5]!, "invalid")
      const bare = `${prefix}-bare`
      yield* source.putEntity({ id: bare, kind: "artwork" })
      const resolver = yield* build(mesh, source)
      const result = yield* resolver.materialize(Score, [...artworkIds, bare])
      const byEntity = Object.fromEntries(result.failed.map((f) => [f.entity, f]))
      expect(result.computed).toBe(2)
      expect(byEntity[artworkIds[2]!]).toMatchObject({
        _tag: "ComputeFailedError",
        feature: `${prefix}.score`,
        version: 1
      })
      expect(byEntity[artworkIds[2]!]!.message).toContain("model unavailable")
      expect(byEntity[artworkIds[3]!]).toMatchObject({ _tag: "ComputeFailedError" })
      expect(byEntity[artworkIds[3]!]!.message).toContain("index out of range")
      expect(byEntity[artworkIds[4]!]).toMatchObject({ _tag: "ComputeTimeoutError", timeoutMs: 200 })
      expect(byEntity[artworkIds[5]!]).toMatchObject({ _tag: "InvalidOutputError" })
      expect(byEntity[bare]).toMatchObject({ _tag: "MissingAssetError", role: "image" })
      expect(result.failed).toHaveLength(5)
      // nothing stored for the failures
      const store = yield* FeatureStore.FeatureStore
      for (const id of [artworkIds[2]!, artworkIds[3]!, artworkIds[4]!, artworkIds[5]!, bare]) {
        expect(yield* store.list({ feature: Score, entity: id })).toEqual([])
      }
      expect(yield* store.list({ feature: Score, entity: artworkIds[0]! })).toHaveLength(1)
      // status shows them, with the last error
      const [status] = yield* resolver.status([Score])
      expect(status).toMatchObject({ feature: `${prefix}.score@1`, stored: 2, failed: 5 })
      expect(status!.lastError?._tag).toBeDefined()
      expect((yield* resolver.failures(Score)).map((f) => f.entity).sort()).toEqual(
        [artworkIds[2]!, artworkIds[3]!, artworkIds[4]!, artworkIds[5]!, bare].sort()
      )
      // a title over failed artworks is blocked, the healthy one is computed
      const titles = yield* resolver.materialize(Best, titleIds)
      expect(
        titles.failed
          .filter((f) => f._tag === "BlockedError")
          .map((f) => f.entity)
          .sort()
      ).toEqual([titleIds[1]!, titleIds[2]!].sort())
      expect(calls.list.filter((c) => c.startsWith("best|"))).toEqual([`best|${titleIds[0]}`])
      // fix two of them: a re-run retries only the failures
      mode.delete(artworkIds[2]!)
      mode.delete(artworkIds[4]!)
      const mark = calls.mark
      const rerun = yield* resolver.materialize(Score, [...artworkIds, bare])
      expect(calls.since(mark)).toEqual(
        [artworkIds[2]!, artworkIds[3]!, artworkIds[4]!, artworkIds[5]!].map((id) => `score|${id}`).sort()
      )
      expect(rerun.computed).toBe(2)
      expect(rerun.failed.map((f) => f.entity).sort()).toEqual([artworkIds[3]!, artworkIds[5]!, bare].sort())
      expect((yield* resolver.failures(Score)).map((f) => f.entity).sort()).toEqual(
        [artworkIds[3]!, artworkIds[5]!, bare].sort()
      )
      const failure = (yield* resolver.failures(Score)).find((f) => f.entity === artworkIds[3]!)!
      // the first run, the run of the titles (which retried them as inputs), the re-run
      expect(failure.attempts).toBe(3)
      // another writer stores one of them: the next run here finds it stored and its failure is over
      const [asset] = yield* source.assets([artworkIds[3]!], "image")
      const fp = yield* Fingerprint.make({ assets: { image: asset!.contentHash }, upstream: [], params: null })
      yield* store.put(Score, artworkIds[3]!, fp, 7)
      yield* resolver.materialize(Score, [artworkIds[3]!])
      expect((yield* resolver.failures(Score)).map((f) => f.entity).sort()).toEqual([artworkIds[5]!, bare].sort())
    }))

  test("batches computeBatch calls and bounds concurrency", () =>
    Effect.gen(function* () {
      const prefix = uid("b")
      const Len = FeatureSpec.make({ name: `${prefix}.len`, version: 1, entity: "artwork", value: Schema.Number })
      const Slow = FeatureSpec.make({ name: `${prefix}.slow`, version: 1, entity: "artwork", value: Schema.Number })
      const batches: Array<number> = []
      let inFlight = 0
      let maxInFlight = 0
      const mesh = yield* Mesh.make([
        Algorithm.make({
          feature: Len,
          inputs: { image: Algorithm.asset("image") },
          batchSize: 3,
          computeBatch: (inputs) =>
            Effect.sync(() => {
              batches.push(inputs.length)
              return inputs.map((i) => i.inputs.image.contentHash.length)
            })
        }),
        Algorithm.make({
          feature: Slow,
          inputs: { len: Algorithm.feature(Len) },
          concurrency: 2,
          compute: ({ inputs }) =>
            Effect.gen(function* () {
              inFlight++
              maxInFlight = Math.max(maxInFlight, inFlight)
              yield* Effect.sleep("20 millis")
              inFlight--
              return inputs.len + 1
            })
        })
      ])
      const { source, artworkIds } = catalog(prefix, 2, 5)
      const resolver = yield* build(mesh, source, { concurrency: 8, batchSize: 4 })
      const result = yield* resolver.materialize(Slow, artworkIds)
      expect(result.failed).toEqual([])
      expect(result.computed).toBe(20)
      expect(batches.reduce((a, b) => a + b, 0)).toBe(10)
      expect(Math.max(...batches)).toBeLessThanOrEqual(3)
      expect(maxInFlight).toBe(2)
      const again = yield* resolver.materialize(Slow, artworkIds)
      expect(again.computed).toBe(0)
      expect(batches.reduce((a, b) => a + b, 0)).toBe(10)
    }))

  test("publishes planned, started, computed, cached, failed and finished events", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const prefix = uid("e")
        const calls = new Calls()
        const { TitleSet, algorithms } = chain(prefix, calls)
        const { source, titleIds } = catalog(prefix, 2, 2)
        yield* source.putEntity({ id: `${prefix}-none`, kind: "title" })
        yield* source.putEntity({ id: `${prefix}-bad`, kind: "artwork", parentId: `${prefix}-none` })
        const resolver = yield* build(yield* Mesh.make(algorithms), source)
        const queue = yield* resolver.subscribe
        const result = yield* resolver.materialize(TitleSet, [...titleIds, `${prefix}-none`])
        const events = yield* drain(queue)
        const planned = events.find((e) => e._tag === "Planned")!
        expect(planned).toMatchObject({ run: result.run, entities: 3, tasks: 3 })
        expect(events.filter((e) => e._tag === "Started")).toHaveLength(3)
        const computed = events.filter((e): e is RunEvent.Computed => e._tag === "Computed")
        expect(computed.reduce((n, e) => n + e.entities, 0)).toBe(result.computed)
        expect(computed.every((e) => e.ms >= 0)).toBe(true)
        const failed = events.filter((e): e is RunEvent.Failed => e._tag === "Failed")
        expect(failed.length).toBe(0) // blocked by the walk: reported in the result and the plan
        expect(result.failed.map((f) => f._tag).sort()).toEqual(["BlockedError", "BlockedError", "MissingAssetError"])
        const finished = events.at(-1)!
        expect(finished).toMatchObject({ _tag: "Finished", computed: 10, failed: 3 })
        yield* resolver.materialize(TitleSet, titleIds)
        const second = yield* drain(queue)
        expect(second.map((e) => e._tag)).toEqual(["Planned", "Finished"])
        expect(second[1]).toMatchObject({ computed: 0, cached: 2 })
      })
    ))

  test("runTask computes one feature for a batch, ensuring its inputs", () =>
    Effect.gen(function* () {
      const prefix = uid("t")
      const calls = new Calls()
      const { TitleSet, Color, algorithms } = chain(prefix, calls)
      const { source, titleIds, artworkIds } = catalog(prefix, 2, 2)
      const resolver = yield* build(yield* Mesh.make(algorithms), source)
      const task = yield* resolver.runTask({ feature: FeatureSpec.label(TitleSet), entities: [titleIds[0]!] })
      expect(task).toMatchObject({ feature: `${prefix}.set@1`, computed: [titleIds[0]], cached: [], failed: [] })
      expect(calls.since(0)).toEqual(
        [
          `color|${artworkIds[0]}`,
          `color|${artworkIds[1]}`,
          `set|${titleIds[0]}`,
          `tensor|${artworkIds[0]}`,
          `tensor|${artworkIds[1]}`
        ].sort()
      )
      const colors = yield* resolver.runTask({ feature: FeatureSpec.label(Color), entities: artworkIds })
      expect([...colors.cached].sort()).toEqual(artworkIds.slice(0, 2))
      expect([...colors.computed].sort()).toEqual(artworkIds.slice(2))
      const unknown = yield* Effect.flip(resolver.runTask({ feature: "nope@1", entities: [] }))
      expect(unknown._tag).toBe("UnknownFeatureError")
    }))

  test("content change vs metadata change vs version bump: exactly the expected pairs recompute", () =>
    Effect.gen(function* () {
      const prefix = uid("c")
      const calls = new Calls()
      const { source, titleIds, artworkIds } = catalog(prefix, 3, 3)
      const v1 = chain(prefix, calls)
      const r1 = yield* build(yield* Mesh.make(v1.algorithms), source)
      const trigger = yield* Trigger.make({ name: `${prefix}-trigger`, features: [v1.TitleSet] }).pipe(
        Effect.provideService(Resolver.Resolver, r1),
        Effect.provideService(EntitySource.EntitySource, source)
      )
      yield* trigger.catchUp
      expect(calls.list).toHaveLength(9 + 9 + 3)

      // the expectation, computed from the relations: a content change on an artwork
      // changes its tensor, its colour and its title's set; a version bump of colour
      // changes every colour and every set; a metadata change, nothing
      const parentOf = (id: string) => id.replace(/-a\d+$/, "")
      const expectContent = (artwork: string) =>
        [`tensor|${artwork}`, `color|${artwork}`, `set|${parentOf(artwork)}`].sort()
      const expectBump = () => [...artworkIds.map((a) => `color|${a}`), ...titleIds.map((t) => `set|${t}`)].sort()

      let mark = calls.mark
      yield* source.putAsset({
        entityId: artworkIds[4]!,
        role: "image",
        contentHash: sha(`${artworkIds[4]}-v1`),
        labels: { note: "cropped" }
      })
      const meta = yield* trigger.catchUp
      expect(meta).toHaveLength(1)
      expect(meta[0]!.changes).toBe(1)
      expect(calls.since(mark)).toEqual([])

      mark = calls.mark
      yield* source.putAsset({ entityId: artworkIds[4]!, role: "image", contentHash: sha("new-content") })
      yield* trigger.catchUp
      expect(calls.since(mark)).toEqual(expectContent(artworkIds[4]!))

      mark = calls.mark
      const v2 = chain(prefix, calls, { color: 2 })
      const r2 = yield* build(yield* Mesh.make(v2.algorithms), source)
      const bump = yield* r2.materialize(v2.TitleSet, titleIds)
      expect(calls.since(mark)).toEqual(expectBump())
      expect(bump.computed).toBe(expectBump().length)
      // and the version bump leaves nothing to do afterwards
      mark = calls.mark
      yield* r2.materialize(v2.TitleSet, titleIds)
      expect(calls.since(mark)).toEqual([])
    }))

  test("a trigger follows the feed from its durable cursor (new artwork -> its title's set); backfill by filter", () =>
    Effect.gen(function* () {
      const prefix = uid("g")
      const calls = new Calls()
      const { TitleSet, algorithms } = chain(prefix, calls)
      const mesh = yield* Mesh.make(algorithms)
      const { source, titleIds } = catalog(prefix, 4, 1)
      const r = yield* build(mesh, source)
      const provide = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        self.pipe(Effect.provideService(Resolver.Resolver, r), Effect.provideService(EntitySource.EntitySource, source))
      // backfill the dramas (t0, t2) only
      const runs = yield* provide(Trigger.backfill([TitleSet], { attribute: { key: "genre", value: "drama" } }))
      expect(runs[0]!.entities).toBe(2)
      expect(calls.since(0).filter((c) => c.startsWith("set|"))).toEqual([`set|${titleIds[0]}`, `set|${titleIds[2]}`])
      const name = `${prefix}-follow`
      const trigger = yield* provide(Trigger.make({ name, features: [TitleSet], batchSize: 2 }))
      const steps = yield* trigger.catchUp
      expect(steps.map((s) => s.changes)).toEqual([2, 2])
      expect(yield* r.cursor(`trigger:${name}`)).toBe(4)
      // every set now exists; the dramas were not computed again
      expect(calls.list.filter((c) => c.startsWith("set|")).sort()).toEqual(titleIds.map((t) => `set|${t}`))
      // a new artwork under t1 changes t1's set, nothing else
      const mark = calls.mark
      yield* source.putEntity({ id: `${prefix}-new`, kind: "artwork", parentId: titleIds[1]! })
      yield* source.putAsset({ entityId: `${prefix}-new`, role: "image", contentHash: sha("fresh") })
      const [step] = yield* trigger.catchUp
      expect(step).toMatchObject({ from: 4, to: 5, changes: 1 })
      expect(calls.since(mark)).toEqual([`color|${prefix}-new`, `set|${titleIds[1]}`, `tensor|${prefix}-new`])
      expect((yield* trigger.step).changes).toBe(0)
      if (durable) {
        // the cursor outlives this resolver
        const other = yield* build(mesh, source)
        expect(yield* other.cursor(`trigger:${name}`)).toBe(5)
      }
    }))
}

describe("Resolver conformance on memory", () => {
  layer(FeatureStore.layerMemory({ leaseMs: 1000 }), { excludeTestServices: true })("memory", (it) =>
    conformance(it, buildMemory, false)
  )
})

for (const adapter of StorageTesting.adapters()) {
  if (adapter.skip) {
    describe.skip(`Resolver conformance on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    console.warn(`[amber-compute] ${adapter.skip}`)
    continue
  }
  const stack = FeatureStore.layer({ leaseMs: 1000 }).pipe(Layer.provideMerge(adapter.layer))
  layer(stack, { excludeTestServices: true })(`Resolver conformance on ${adapter.name}`, (it) => {
    const buildSql = ((mesh, source, options = {}) =>
      withExecutor(source, options.concurrency)(Resolver.make(mesh, resolverOptions(options)))) as Build
    conformance(it, buildSql, true)
  })
}

/**
 * The same suite on PostgreSQL with the distributed executor: the caller's
 * resolver hands its tasks to graphile-worker jobs, and a worker in this process
 * (`Worker.run`, fibers taking jobs) runs them on the same mesh, store and source.
 * Each resolver gets its own queue schema (a worker serves one mesh).
 */
const pgAdapter = StorageTesting.adapters().find((a) => a.name === "pg")!
if (pgAdapter.skip) {
  describe.skip(`Resolver conformance on pg with the distributed executor (${pgAdapter.skip})`, () => {
    it("skipped", () => undefined)
  })
  console.warn(`[amber-compute] ${pgAdapter.skip} (distributed executor conformance too)`)
} else {
  const url = StorageTesting.pgUrl!
  const stack = FeatureStore.layer({ leaseMs: 1000 }).pipe(Layer.provideMerge(pgAdapter.layer))
  let queues = 0
  const buildDistributed = ((mesh, source, options = {}) =>
    Effect.gen(function* () {
      const store = yield* FeatureStore.FeatureStore
      const database = yield* Database.Database
      const distributed = {
        url,
        schema: `amber_conf_q_${process.pid}_${Date.now().toString(36)}_${queues++}`,
        pollMs: 20,
        heartbeatMs: 250,
        workerTimeoutMs: 2_000
      }
      yield* Effect.addFinalizer(() =>
        database
          .use("drop-queue", (db) => sql`drop schema if exists ${sql.id(distributed.schema)} cascade`.execute(db))
          .pipe(Effect.ignore)
      )
      const config = AmberConfig.define({
        mesh,
        layer: Layer.mergeAll(
          Layer.succeed(FeatureStore.FeatureStore, store),
          Layer.succeed(EntitySource.EntitySource, source),
          Layer.succeed(Database.Database, database)
        ),
        distributed,
        ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize })
      })
      yield* Effect.forkScoped(Worker.run({ config, concurrency: options.concurrency ?? 4 }))
      const executor = yield* DistributedExecutor.make(distributed)
      return yield* Resolver.make(mesh, resolverOptions(options)).pipe(
        Effect.provideService(EntitySource.EntitySource, source),
        Effect.provideService(Executor.Executor, executor)
      )
    })) as Build
  layer(stack, { excludeTestServices: true })("Resolver conformance on pg with the distributed executor", (it) =>
    conformance(it, buildDistributed, true, 60_000)
  )
}

describe("Resolver fingerprint memo", () => {
  layer(FeatureStore.layerMemory({ leaseMs: 1000 }), { excludeTestServices: true })("memory", (it) =>
    it.scoped("a re-run takes remembered fingerprints: the same as a fresh walk's, never a stale one", () =>
      Effect.gen(function* () {
        const prefix = uid("f")
        const calls = new Calls()
        const { TitleSet, algorithms } = chain(prefix, calls)
        const mesh = yield* Mesh.make(algorithms)
        const { source, titleIds, artworkIds } = catalog(prefix, 2, 3)
        const withSource = <A, E, R>(self: Effect.Effect<A, E, R>) => withExecutor(source, 2)(self)
        const remembering = yield* withSource(Resolver.makeMemory(mesh))
        const fresh = yield* withSource(Resolver.makeMemory(mesh, { fingerprintCache: 0 }))
        const fingerprints = (plan: Plan.Plan) =>
          plan.features.flatMap((f) => f.entries.map((e) => `${f.feature}|${e.entity}|${e.fingerprint}`)).sort()
        const same = Effect.gen(function* () {
          const expected = fingerprints(yield* fresh.plan(TitleSet, titleIds))
          // runTask walks with the memo: what it stores is found by a fresh plan
          const run = yield* remembering.materialize(TitleSet, titleIds)
          expect(run.failed).toEqual([])
          const again = yield* remembering.materialize(TitleSet, titleIds)
          expect(again.computed).toBe(0)
          const plan = yield* fresh.plan(TitleSet, titleIds)
          expect(fingerprints(plan)).toEqual(expected)
          expect(plan.features.every((f) => f.entries.every((e) => e.state === "stored"))).toBe(true)
        })
        yield* same
        expect(calls.list).toHaveLength(6 + 6 + 2)
        // a content change, a new related entity: the memo does not answer for them
        let mark = calls.mark
        yield* source.putAsset({ entityId: artworkIds[0]!, role: "image", contentHash: sha("other content") })
        yield* same
        expect(calls.since(mark)).toEqual([`color|${artworkIds[0]}`, `set|${titleIds[0]}`, `tensor|${artworkIds[0]}`])
        mark = calls.mark
        const added = `${titleIds[1]}-a9`
        yield* source.putEntity({ id: added, kind: "artwork", parentId: titleIds[1]! })
        yield* source.putAsset({ entityId: added, role: "image", contentHash: sha(`${added}-v1`) })
        yield* same
        expect(calls.since(mark)).toEqual([`color|${added}`, `set|${titleIds[1]}`, `tensor|${added}`])
      })
    )
  )
})

/** A plan in small chunks, on the store in context (memory, SQLite, PostgreSQL). */
const chunkedPlan = (it: Vitest.MethodsNonLive<any, true>) =>
  it.scoped(
    "a plan of many entities in small chunks reads each feature's lineage once, with the states of a whole walk",
    () =>
      Effect.gen(function* () {
        const prefix = uid("k")
        const calls = new Calls()
        const { source, artworkIds } = catalog(prefix, 400, 3)
        const store = yield* FeatureStore.FeatureStore
        let lists = 0
        const counting: FeatureStore.Service = {
          ...store,
          list: (selector) => Effect.suspend(() => ((lists += 1), store.list(selector)))
        }
        const build = (mesh: Mesh.Mesh<any>, options: Resolver.Options) =>
          withExecutor(
            source,
            2
          )(Resolver.makeMemory(mesh, options)).pipe(Effect.provideService(FeatureStore.FeatureStore, counting))
        // version 1 of the tensor for 10 artworks: stale for version 2
        const v1 = chain(prefix, calls)
        const first = yield* (yield* build(yield* Mesh.make(v1.algorithms), {})).materialize(
          v1.Tensor,
          artworkIds.slice(0, 10)
        )
        expect(first.failed).toEqual([])
        const v2 = chain(prefix, calls, { tensor: 2 })
        const mesh = yield* Mesh.make(v2.algorithms)
        const label = `${prefix}.tensor@2`
        const whole = entriesOf(yield* (yield* build(mesh, { chunkSize: 10_000 })).plan(v2.Tensor, artworkIds), label)
        lists = 0
        // 1,200 entities in chunks of 100: one-by-one lookups would be 1,200 queries
        const chunked = yield* (yield* build(mesh, { chunkSize: 100 })).plan(v2.Tensor, artworkIds)
        expect(lists).toBe(1)
        expect(entriesOf(chunked, label)).toEqual(whole)
        expect(Object.values(whole).filter((s) => s === "stale-version")).toHaveLength(10)
        expect(Object.values(whole).filter((s) => s === "missing")).toHaveLength(1190)
      })
  )

describe("Resolver plan in chunks", () => {
  layer(FeatureStore.layerMemory({ leaseMs: 1000 }), { excludeTestServices: true })("memory", chunkedPlan)
  for (const adapter of StorageTesting.adapters()) {
    if (adapter.skip) continue
    layer(FeatureStore.layer({ leaseMs: 1000 }).pipe(Layer.provideMerge(adapter.layer)), {
      excludeTestServices: true
    })(adapter.name, chunkedPlan)
  }
})
