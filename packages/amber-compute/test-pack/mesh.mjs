// The packed @org/amber-compute from plain JavaScript: a 3-level mesh with a
// related-entity input materialized on SQLite and (when ORG_TEST_PG_URL is set) PostgreSQL.
import { Effect, Layer, Schema } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FeatureSpec, FeatureStore } from "@org/amber-store"
import { Database } from "@org/storage"
import { SqliteStorage } from "@org/storage/sqlite"
import { PostgresStorage } from "@org/storage/pg"
import { Algorithm, EntitySource, Executor, Mesh, Plan, Resolver } from "@org/amber-compute"

const Size = FeatureSpec.make({ name: "pack.size", version: 1, entity: "artwork", value: Schema.Number })
const Double = FeatureSpec.make({ name: "pack.double", version: 1, entity: "artwork", value: Schema.Number })
const Total = FeatureSpec.make({ name: "pack.total", version: 1, entity: "title", value: Schema.Number })

const algorithms = [
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
    feature: Total,
    inputs: { art: Algorithm.children(Double) },
    compute: ({ inputs }) => Effect.succeed(inputs.art.reduce((n, a) => n + a.value, 0))
  })
]

const check = (label, storage, dropSchema) =>
  Effect.gen(function* () {
    const resolver = yield* Resolver.Resolver
    const plan = yield* resolver.plan(Total, ["t1", "t2"])
    if (!Plan.render(plan).startsWith("pack.total@1 (2 entities: 1 missing, 1 blocked)")) {
      throw new Error(`${label}: unexpected plan\n${Plan.render(plan)}`)
    }
    const first = yield* resolver.materialize(Total, ["t1", "t2"])
    const tags = first.failed
      .map((f) => f._tag)
      .sort()
      .join(",")
    if (first.computed !== 5 || tags !== "BlockedError,BlockedError,MissingAssetError") {
      throw new Error(`${label}: first run ${first.computed} computed, failures ${tags}`)
    }
    const second = yield* resolver.materialize(Total, ["t1"])
    if (second.computed !== 0 || second.cached !== 1)
      throw new Error(`${label}: the re-run computed ${second.computed}`)
    const [status] = yield* resolver.status([Size])
    if (status.stored !== 2 || status.failed !== 1) throw new Error(`${label}: status ${JSON.stringify(status)}`)
    if (dropSchema) {
      yield* Database.use("drop", (k) => k.schema.dropSchema(dropSchema).ifExists().cascade().execute())
    }
    return `${label}: 5 computed, 3 failures tagged, re-run cached`
  }).pipe(
    Effect.provide(
      Layer.unwrapEffect(Effect.map(Mesh.make(algorithms), (mesh) => Resolver.layer(mesh))).pipe(
        Layer.provideMerge(
          Layer.mergeAll(
            FeatureStore.layer(),
            EntitySource.layerMemory({
              entities: [
                { id: "t1", kind: "title" },
                { id: "t2", kind: "title" },
                { id: "a1", kind: "artwork", parentId: "t1" },
                { id: "a2", kind: "artwork", parentId: "t1" },
                { id: "a3", kind: "artwork", parentId: "t2" }
              ],
              assets: [
                { entityId: "a1", role: "image", contentHash: createHash("sha256").update("a1").digest("hex") },
                { entityId: "a2", role: "image", contentHash: createHash("sha256").update("a2").digest("hex") }
              ]
            }),
            Executor.layerLocal({ concurrency: 2 })
          )
        ),
        Layer.provideMerge(storage)
      )
    )
  )

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-amber-compute-"))
const lines = []
try {
  lines.push(await Effect.runPromise(check("sqlite", SqliteStorage.layer({ filename: path.join(dir, "db.sqlite") }))))
  const url = process.env.ORG_TEST_PG_URL
  if (url) {
    const schema = `pack_compute_${process.pid}`
    lines.push(await Effect.runPromise(check("pg", PostgresStorage.layer({ url, schema }), schema)))
  } else lines.push("pg: skipped (ORG_TEST_PG_URL is not set)")
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
console.log(`amber-compute mesh: ${lines.join("; ")}`)
