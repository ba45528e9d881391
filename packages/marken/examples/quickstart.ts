/**
 * A typed annotation type, a run of annotations written as one operation, and a filtered vector query,
 * on a SQLite file with the HNSW index kept beside it.
 * Run: npx tsx quickstart.ts
 */
import { Effect, Layer, Schema } from "effect"
import { Annotations, AnnotationType, Registry } from "@org/marken"
import { SqliteStorage } from "@org/storage/sqlite"

// 1. a type, registered (its payload's JSON Schema is stored; a minor version may only add optional fields)
const Shot = AnnotationType.make({
  name: "shot",
  version: "1.0",
  payload: Schema.Struct({ kind: Schema.Literal("cut", "fade"), score: Schema.Number }),
  vectors: { embedding: { dimension: 512, metric: "cosine" } }
})

const embedding = new Float32Array(512).fill(0.01) // from your model

const program = Effect.gen(function* () {
  yield* (yield* Registry.Registry).register(Shot)
  const marken = yield* Annotations.Annotations

  // 2. an operation: invisible until finish, then it replaces the previous run of this producer at once
  const op = yield* marken.start({
    type: "shot",
    version: "1.0",
    producer: { algorithm: "shot-detector", version: "3.2" }
  })
  yield* marken.upsert(op.id, [
    {
      entity: "title:81",
      key: "shot-12",
      time: { startNs: 41_000_000_000, endNs: 43_500_000_000 },
      payload: { kind: "cut", score: 0.93 },
      confidence: 0.93,
      vectors: { embedding }
    }
  ])
  yield* marken.finish(op.id)

  // 3. a filtered vector query: k results whenever k annotations match
  return yield* marken.search({
    type: "shot",
    version: "1.0",
    field: "embedding",
    vector: embedding,
    k: 10,
    filter: { entities: ["title:81"], where: [{ field: "score", op: "range", gte: 0.8 }] }
  })
})

const Marken = Annotations.layerWithRegistry({ indexDirectory: "media.db.index" }).pipe(
  Layer.provide(SqliteStorage.layer({ filename: "media.db" }))
)
Effect.runPromise(program.pipe(Effect.provide(Marken))).then((hits) => console.log(hits))
