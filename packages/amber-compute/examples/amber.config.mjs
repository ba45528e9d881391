// amber.config.mjs: the mesh and the layers, for `amber` and its workers.
// With DATABASE_URL (postgres://...), the store and the jobs live in PostgreSQL
// and `amber run` hands its tasks to `amber worker` processes; without it, a
// SQLite file in the working directory and in-process computing.
import { Effect, Layer, Schema } from "effect"
import { createHash } from "node:crypto"
import { FeatureSpec, FeatureStore } from "@org/amber-store"
import { PostgresStorage } from "@org/storage/pg"
import { SqliteStorage } from "@org/storage/sqlite"
import { Algorithm, AmberConfig, EntitySource, Mesh } from "@org/amber-compute"

const Size = FeatureSpec.make({ name: "artwork.size", version: 1, entity: "artwork", value: Schema.Number })
const Bucket = FeatureSpec.make({ name: "artwork.bucket", version: 1, entity: "artwork", value: Schema.String })

const mesh = await Effect.runPromise(
  Mesh.make([
    Algorithm.make({
      feature: Size,
      inputs: { image: Algorithm.asset("image") },
      compute: ({ inputs }) => Effect.succeed(inputs.image.contentHash.length)
    }),
    Algorithm.make({
      feature: Bucket,
      inputs: { size: Algorithm.feature(Size) },
      compute: ({ inputs }) => Effect.succeed(inputs.size > 12 ? "large" : "small")
    })
  ])
)

// your catalog: EntitySource.layerJasper adapts Jasper's; here, three artworks in memory
const Source = EntitySource.layerMemory({
  entities: ["art-1", "art-2", "art-3"].map((id) => ({ id, kind: "artwork" })),
  assets: ["art-1", "art-2", "art-3"].map((id) => ({
    entityId: id,
    role: "image",
    contentHash: createHash("sha256").update(id).digest("hex")
  }))
})

const url = process.env.DATABASE_URL
const Storage = url ? PostgresStorage.layer({ url }) : SqliteStorage.layer({ filename: "amber.db" })

export default AmberConfig.define({
  mesh,
  layer: Layer.mergeAll(FeatureStore.layer(), Source).pipe(Layer.provideMerge(Storage)),
  ...(url ? { distributed: { url, workerTimeoutMs: 30_000 } } : {})
})
