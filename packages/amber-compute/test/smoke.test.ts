import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { FeatureSpec, FeatureStore } from "@org/amber-store"
import { Algorithm, EntitySource, Executor, Mesh, Plan, Resolver } from "@org/amber-compute"

const Size = FeatureSpec.make({ name: "artwork.size", version: 1, entity: "artwork", value: Schema.Number })
const Double = FeatureSpec.make({ name: "artwork.double", version: 1, entity: "artwork", value: Schema.Number })
const Sum = FeatureSpec.make({ name: "title.sum", version: 1, entity: "title", value: Schema.Number })

describe("smoke", () => {
  it.effect("materializes a 3-level mesh", () =>
    Effect.gen(function* () {
      const mesh = yield* Mesh.make([
        Algorithm.make({
          feature: Size,
          inputs: { image: Algorithm.asset("image") },
          compute: ({ inputs }) => Effect.succeed(inputs.image.contentHash.length)
        }),
        Algorithm.make({
          feature: Double,
          inputs: { size: Algorithm.feature(Size) },
          compute: ({ inputs }) => Effect.succeed(inputs.size * 2)
        }),
        Algorithm.make({
          feature: Sum,
          inputs: { art: Algorithm.children(Double) },
          compute: ({ inputs }) => Effect.succeed(inputs.art.reduce((s, a) => s + a.value, 0))
        })
      ])
      const source = EntitySource.memory({
        entities: [
          { id: "t1", kind: "title" },
          { id: "a1", kind: "artwork", parentId: "t1" },
          { id: "a2", kind: "artwork", parentId: "t1" }
        ],
        assets: [
          { entityId: "a1", role: "image", contentHash: "abc" },
          { entityId: "a2", role: "image", contentHash: "abcd" }
        ]
      })
      const layer = Resolver.layerMemory(mesh).pipe(
        Layer.provideMerge(
          Layer.mergeAll(FeatureStore.layerMemory(), EntitySource.layerMemory(source), Executor.layerLocal())
        )
      )
      yield* Effect.gen(function* () {
        const resolver = yield* Resolver.Resolver
        const p = yield* resolver.plan(Sum, ["t1"])
        console.log(Plan.render(p))
        const r = yield* resolver.materialize(Sum, ["t1"])
        expect(r.computed).toBe(5)
        expect(r.failed).toEqual([])
        const again = yield* resolver.materialize(Sum, ["t1"])
        expect(again.computed).toBe(0)
        const p2 = yield* resolver.plan(Sum, ["t1"])
        console.log(Plan.render(p2))
        console.log(JSON.stringify(Plan.tasks(p)))
      }).pipe(Effect.provide(layer))
    })
  )
})
