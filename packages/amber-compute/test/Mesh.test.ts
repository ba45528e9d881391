import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { FeatureSpec, FeatureStore } from "@org/amber-store"
import { Algorithm, ComputeError, EntitySource, Executor, Mesh, Resolver } from "@org/amber-compute"
import { SqliteStorage } from "@org/storage/sqlite"

const spec = (name: string, entity = "artwork", version = 1) =>
  FeatureSpec.make({ name, version, entity, value: Schema.Number })

let runs = 0
const algo = (feature: FeatureSpec.FeatureSpec<number>, inputs: Algorithm.Inputs = {}, name?: string) =>
  Algorithm.make({
    feature,
    inputs,
    ...(name ? { name } : {}),
    compute: () =>
      Effect.sync(() => {
        runs++
        return 1
      })
  })

describe("Mesh.make", () => {
  it.effect("refuses a cycle and names its path", () =>
    Effect.gen(function* () {
      const A = spec("a")
      const B = spec("b")
      const C = spec("c")
      const error = yield* Effect.flip(
        Mesh.make([
          algo(A, { c: Algorithm.feature(C) }),
          algo(B, { a: Algorithm.feature(A) }),
          algo(C, { b: Algorithm.feature(B) })
        ])
      )
      expect(error._tag).toBe("MeshCycleError")
      if (error._tag !== "MeshCycleError") return
      expect(error.path).toEqual(["a@1", "c@1", "b@1", "a@1"])
      expect(error.message).toBe("the mesh has a cycle: a@1 -> c@1 -> b@1 -> a@1")
      // a self-loop too
      const self = yield* Effect.flip(Mesh.make([algo(A, { me: Algorithm.feature(A) })]))
      expect(self.message).toContain("a@1 -> a@1")
    })
  )

  it.effect("refuses an input that nothing produces, naming consumer and input", () =>
    Effect.gen(function* () {
      const A = spec("a")
      const B = spec("b")
      const error = yield* Effect.flip(Mesh.make([algo(B, { a: Algorithm.feature(A) })]))
      expect(error).toMatchObject({ _tag: "MeshUnknownInputError", feature: "b@1", input: "a@1" })
      // another version is produced: said so
      const other = yield* Effect.flip(Mesh.make([algo(spec("a", "artwork", 2)), algo(B, { a: Algorithm.feature(A) })]))
      expect(other.message).toContain("produced: a@2")
    })
  )

  it.effect("refuses two producers of one feature version", () =>
    Effect.gen(function* () {
      const A = spec("a")
      const error = yield* Effect.flip(Mesh.make([algo(A, {}, "first"), algo(A, {}, "second")]))
      expect(error).toMatchObject({
        _tag: "MeshDuplicateProducerError",
        feature: "a@1",
        algorithms: ["first", "second"]
      })
      // two versions of one feature are fine
      const ok = yield* Mesh.make([algo(A), algo(spec("a", "artwork", 2))])
      expect(ok.order).toEqual(["a@1", "a@2"])
    })
  )

  it.effect("refuses an input whose schema, dimension or entity kind differs from its producer's", () =>
    Effect.gen(function* () {
      const E4 = FeatureSpec.embedding({ name: "emb", version: 1, entity: "artwork", dimension: 4 })
      const E8 = FeatureSpec.embedding({ name: "emb", version: 1, entity: "artwork", dimension: 8 })
      const dim = yield* Effect.flip(
        Mesh.make([
          Algorithm.make({ feature: E4, inputs: {}, compute: () => Effect.succeed(new Float32Array(4)) }),
          algo(spec("use"), { e: Algorithm.feature(E8) })
        ])
      )
      expect(dim).toMatchObject({ _tag: "MeshInputMismatchError", feature: "use@1", input: "emb@1" })
      expect(dim.message).toContain("dimension 8")
      expect(dim.message).toContain("dimension 4")
      const S = FeatureSpec.make({ name: "s", version: 1, entity: "artwork", value: Schema.String })
      const schema = yield* Effect.flip(
        Mesh.make([
          algo(spec("s")),
          Algorithm.make({ feature: spec("t"), inputs: { s: Algorithm.feature(S) }, compute: () => Effect.succeed(1) })
        ])
      )
      expect(schema._tag).toBe("MeshInputMismatchError")
      const kind = yield* Effect.flip(
        Mesh.make([algo(spec("k", "title")), algo(spec("u"), { k: Algorithm.children(spec("k", "artwork")) })])
      )
      expect(kind.message).toContain("entity title")
    })
  )

  it.effect("nothing runs on a bad mesh", () =>
    Effect.gen(function* () {
      runs = 0
      const A = spec("a")
      const program = Effect.gen(function* () {
        const mesh = yield* Mesh.make([algo(A, { a: Algorithm.feature(A) })])
        const resolver = yield* Resolver.makeMemory(mesh)
        return yield* resolver.materialize(A, ["x"])
      }).pipe(
        Effect.provide(
          Layer.mergeAll(
            FeatureStore.layerMemory(),
            EntitySource.layerMemory({ entities: [{ id: "x", kind: "artwork" }] }),
            Executor.layerLocal()
          )
        )
      )
      const error = yield* Effect.flip(program)
      expect(error._tag).toBe("MeshCycleError")
      expect(runs).toBe(0)
    })
  )

  it.effect("Resolver options are decoded: a bad or unknown option is a ComputeConfigError", () =>
    Effect.gen(function* () {
      const mesh = yield* Mesh.make([algo(spec("a"))])
      const build = (options: Resolver.Options) =>
        Effect.flip(
          Resolver.makeMemory(mesh, options).pipe(
            Effect.provide(
              Layer.mergeAll(FeatureStore.layerMemory(), EntitySource.layerMemory(), Executor.layerLocal())
            )
          )
        )
      expect(yield* build({ batchSize: 0 })).toMatchObject({ _tag: "ComputeConfigError", option: "batchSize" })
      const unknown = yield* build({ batchsize: 10 } as any)
      expect(unknown.message).toContain('unknown option "batchsize"')
    })
  )

  it.effect("Resolver.make and Resolver.layer decode their options too (fingerprintCache, unknown ones)", () =>
    Effect.gen(function* () {
      const mesh = yield* Mesh.make([algo(spec("a"))])
      const services = Layer.mergeAll(FeatureStore.layer(), EntitySource.layerMemory(), Executor.layerLocal()).pipe(
        Layer.provideMerge(SqliteStorage.layer({ filename: ":memory:" }))
      )
      const viaMake = (options: Resolver.Options) =>
        Effect.flip(Effect.scoped(Resolver.make(mesh, options).pipe(Effect.provide(services))))
      const viaLayer = (options: Resolver.Options) =>
        Effect.flip(Effect.scoped(Layer.build(Resolver.layer(mesh, options).pipe(Layer.provide(services)))))
      for (const build of [viaMake, viaLayer]) {
        expect(yield* build({ fingerprintCache: -1 })).toMatchObject({
          _tag: "ComputeConfigError",
          option: "fingerprintCache"
        })
        const unknown = yield* build({ fingerprintcache: 0 } as any)
        expect(unknown).toMatchObject({ _tag: "ComputeConfigError", option: "fingerprintcache" })
        expect(unknown.message).toContain('unknown option "fingerprintcache"')
      }
      // good options still build
      const resolver = yield* Effect.scoped(Resolver.make(mesh, { fingerprintCache: 0 }).pipe(Effect.provide(services)))
      expect(resolver.mesh).toBe(mesh)
    })
  )

  it("failures travel as JSON and come back as their tagged classes", () => {
    const blocked = new ComputeError.BlockedError({
      feature: "f",
      version: 2,
      entity: "e",
      message: "blocked",
      dependency: { feature: "g", version: 1, entity: "x" }
    })
    const back = ComputeError.fromJson(JSON.parse(JSON.stringify(ComputeError.failureJson(blocked))))
    expect(back).toBeInstanceOf(ComputeError.BlockedError)
    expect(back).toMatchObject({ feature: "f", version: 2, entity: "e", dependency: { feature: "g" } })
    const timeout = ComputeError.fromJson(
      ComputeError.failureJson(
        new ComputeError.ComputeTimeoutError({ feature: "f", version: 1, entity: "e", message: "late", timeoutMs: 5 })
      ) as any
    )
    expect(timeout).toMatchObject({ _tag: "ComputeTimeoutError", timeoutMs: 5 })
  })

  it("Algorithm.make refuses malformed options with a ComputeConfigError", () => {
    const A = spec("a")
    expect(() => Algorithm.make({ feature: A, inputs: {} })).toThrow(/exactly one of compute/)
    expect(() => algo(A, { x: Algorithm.feature(spec("b", "title")) })).toThrow(
      expect.objectContaining({ _tag: "ComputeConfigError", option: "inputs.x" })
    )
    expect(() => Algorithm.make({ feature: A, inputs: {}, batchSize: 0, compute: () => Effect.succeed(1) })).toThrow(
      expect.objectContaining({ option: "batchSize" })
    )
    expect(() =>
      Algorithm.make({ feature: A, inputs: {}, timeout: "-1 millis", compute: () => Effect.succeed(1) })
    ).toThrow(/timeout/)
    expect(() =>
      Algorithm.make({ feature: A, inputs: { i: Algorithm.asset("") }, compute: () => Effect.succeed(1) })
    ).toThrow(/needs a role/)
  })

  it.effect("orders features producers first with their levels; upstream and downstream", () =>
    Effect.gen(function* () {
      const A = spec("a")
      const B = spec("b")
      const T = spec("t", "title")
      const mesh = yield* Mesh.make([
        algo(T, { b: Algorithm.children(B) }),
        algo(B, { a: Algorithm.feature(A) }),
        algo(A, { image: Algorithm.asset("image") })
      ])
      expect(mesh.order).toEqual(["a@1", "b@1", "t@1"])
      expect([...mesh.levels]).toEqual([
        ["a@1", 0],
        ["b@1", 1],
        ["t@1", 2]
      ])
      expect(Mesh.downstreamOf(mesh, "b@1")).toEqual(["b@1", "t@1"])
      expect(Mesh.upstreamOf(mesh, "b@1")).toEqual(["a@1", "b@1"])
      expect((yield* Effect.flip(Mesh.algorithm(mesh, "zzz")))._tag).toBe("UnknownFeatureError")
      expect((yield* Mesh.algorithm(mesh, "t")).feature).toBe(T)
    })
  )
})
