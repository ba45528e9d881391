/**
 * A three-feature mesh with a related-entity input, on SQLite: defined, planned,
 * materialized, then kept up to date by a trigger.
 * Run: npx tsx examples/quickstart.ts [media.db]
 */
import { Effect, Layer, Stream } from "effect"
import { FeatureSpec, FeatureStore } from "@org/amber-store"
import { SqliteStorage } from "@org/storage/sqlite"
import { Algorithm, EntitySource, Executor, Mesh, Plan, Resolver, Trigger } from "@org/amber-compute"

// 1. Features: what is computed, for which kind of entity, with which value.
const Tensor = FeatureSpec.embedding({ name: "artwork.tensor", version: 1, entity: "artwork", dimension: 8 })
const Color = FeatureSpec.embedding({ name: "artwork.color", version: 1, entity: "artwork", dimension: 3 })
const ArtworkSet = FeatureSpec.embedding({ name: "title.artwork_set", version: 1, entity: "title", dimension: 3 })

// 2. Algorithms: how each feature is computed from its inputs.
const tensor = Algorithm.make({
  feature: Tensor,
  inputs: { image: Algorithm.asset("image") },
  // a real algorithm decodes the image (e.g. with @org/jasper's Image module); here, its content hash
  compute: ({ inputs }) =>
    Effect.sync(() => Float32Array.from({ length: 8 }, (_, i) => inputs.image.contentHash.charCodeAt(i) / 255))
})
const color = Algorithm.make({
  feature: Color,
  inputs: { tensor: Algorithm.feature(Tensor) },
  params: { gain: 2 },
  compute: ({ inputs, params }) =>
    Effect.sync(() => {
      const t = inputs.tensor
      return Float32Array.from([t[0]! + t[1]!, t[2]! + t[3]!, t[4]! + t[5]!].map((x) => x * params.gain))
    })
})
const artworkSet = Algorithm.make({
  feature: ArtworkSet,
  // the colours of every artwork child of the title, in id order
  inputs: { artworks: Algorithm.children(Color) },
  compute: ({ inputs }) =>
    Effect.sync(() => {
      const mean = new Float32Array(3)
      for (const { value } of inputs.artworks)
        for (let i = 0; i < 3; i++) mean[i]! += value[i]! / inputs.artworks.length
      return mean
    })
})

// 3. The catalog: an in-memory one here (EntitySource.layerJasper reads @org/jasper's catalog instead).
const catalog = EntitySource.memory({
  entities: [
    { id: "title-1", kind: "title" },
    { id: "title-2", kind: "title" },
    { id: "artwork-1", kind: "artwork", parentId: "title-1" },
    { id: "artwork-2", kind: "artwork", parentId: "title-1" },
    { id: "artwork-3", kind: "artwork", parentId: "title-2" }
  ],
  assets: [
    {
      entityId: "artwork-1",
      role: "image",
      contentHash: "9f2c4a7e1bdb9c4ca12a6dcbac07c6d7ba24f753702aa5e3da44dbcda2ef802d"
    },
    {
      entityId: "artwork-2",
      role: "image",
      contentHash: "41d8cd98f0bc2cf6251f35a95c8fef2382bfeead851738e1bf4cac1e7807e92f"
    },
    {
      entityId: "artwork-3",
      role: "image",
      contentHash: "e3b0c44298bd587d6bc60285b5cc8a4024b296feeaa92c65f7af446d9ab78f70"
    }
  ]
})

const program = Effect.gen(function* () {
  const resolver = yield* Resolver.Resolver
  // the library prints nothing: it publishes events, the program renders them
  yield* resolver.events.pipe(
    Stream.runForEach((event) =>
      event._tag === "Finished"
        ? Effect.log(`run ${event.run}: ${event.computed} computed, ${event.cached} cached, ${event.failed} failed`)
        : Effect.void
    ),
    Effect.forkScoped
  )
  yield* Effect.sleep(10)

  // plan: what would be computed, and why
  const plan = yield* resolver.plan(ArtworkSet, ["title-1", "title-2"])
  console.log(Plan.render(plan))

  // materialize: computes what is missing, in dependency order
  const first = yield* resolver.materialize(ArtworkSet, ["title-1", "title-2"])
  console.log(`first run: ${first.computed} computed, ${first.cached} cached, ${first.failed.length} failed`)

  // a trigger follows the catalog's change feed from a cursor kept in the database
  const trigger = yield* Trigger.make({ name: "artwork-sets", features: [ArtworkSet] })
  yield* trigger.catchUp // the feed so far: everything is stored already
  yield* catalog.putEntity({ id: "artwork-4", kind: "artwork", parentId: "title-2" })
  yield* catalog.putAsset({
    entityId: "artwork-4",
    role: "image",
    contentHash: "a1b2c3d4e5e32ac31e84e954c4ef30f7a6799948cdf08f30e85de505e237155c"
  })
  yield* catalog.putAsset({
    entityId: "artwork-1",
    role: "image",
    contentHash: "9f2c4a7e1bdb9c4ca12a6dcbac07c6d7ba24f753702aa5e3da44dbcda2ef802d",
    labels: { crop: "wide" }
  })
  for (const step of yield* trigger.catchUp) {
    const computed = step.runs.reduce((n, r) => n + r.computed, 0)
    console.log(`trigger: changes ${step.from + 1}..${step.to}: ${computed} computed for ${step.entities.join(", ")}`)
  }
  const after = yield* resolver.plan(ArtworkSet, ["title-1", "title-2"])
  console.log(Plan.render(after))
})

// the mesh is validated when it is made: a cycle, an unknown input or a mismatch fails here
const ResolverLive = Layer.unwrapEffect(
  Effect.map(Mesh.make([tensor, color, artworkSet]), (mesh) => Resolver.layer(mesh))
)

const App = ResolverLive.pipe(
  Layer.provideMerge(
    Layer.mergeAll(FeatureStore.layer(), EntitySource.layerMemory(catalog), Executor.layerLocal({ concurrency: 4 }))
  ),
  Layer.provideMerge(SqliteStorage.layer({ filename: process.argv[2] ?? "media.db" }))
)

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(App))).catch((error) => {
  console.error(error)
  process.exit(1)
})
