// The installed @org/marken on a SQLite file: a kNN search over an HNSW index (hnswlib-node) checked against the
// exact cosine neighbours and persisted in its index folder, then the HTTP server on 127.0.0.1 (a free port)
// answering the typed client (register, operation, query, kNN) and refusing a request without a token.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FetchHttpClient, HttpServer } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import { SqliteStorage } from "@org/storage/sqlite"
import { Annotations, AnnotationType, MarkenClient, MarkenServer, Registry } from "@org/marken"

const dimension = 16
const Shot = AnnotationType.make({
  name: "shot",
  version: "1.0",
  payload: Schema.Struct({ kind: Schema.Literal("cut", "fade"), score: Schema.Number }),
  vectors: { embedding: { dimension, metric: "cosine" } }
})
let seed = 11
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}
// clustered vectors (uniform random ones are a worst case for HNSW)
const centres = Array.from({ length: 8 }, () => Array.from({ length: dimension }, () => random() * 2 - 1))
const vectors = Array.from({ length: 400 }, (_, i) =>
  Float32Array.from(centres[i % 8], (x) => x + (random() * 2 - 1) * 0.2)
)
const cosine = (a, b) => {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return 1 - dot / Math.sqrt(na * nb)
}
const items = (producer) =>
  vectors.map((v, i) => ({
    entity: `title:${i % 10}`,
    key: `${producer}-${i}`,
    time: { startNs: i * 1_000_000, endNs: i * 1_000_000 + 500_000 },
    payload: { kind: i % 2 ? "cut" : "fade", score: (i % 100) / 100 },
    confidence: 0.5,
    vectors: { embedding: v }
  }))

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-marken-"))
const indexDirectory = path.join(dir, "index")
const storage = SqliteStorage.layer({ filename: path.join(dir, "marken.db") })
const marken = Annotations.layerWithRegistry({ indexDirectory }).pipe(Layer.provide(storage))

const library = Effect.gen(function* () {
  yield* (yield* Registry.Registry).register(Shot)
  const service = yield* Annotations.Annotations
  const op = yield* service.start({ type: "shot", version: "1.0", producer: { algorithm: "library", version: "1" } })
  const written = yield* service.upsert(op.id, items("library"))
  if (written.written.length !== vectors.length) throw new Error(`wrote ${written.written.length} of ${vectors.length}`)
  yield* service.finish(op.id)
  const k = 10
  let found = 0
  for (let q = 0; q < 20; q++) {
    const query = vectors[q * 17]
    const hits = yield* service.search({ type: "shot", version: "1.0", field: "embedding", vector: query, k })
    if (hits.length !== k) throw new Error(`kNN gave ${hits.length} hits, expected ${k}`)
    const exact = new Set(
      vectors
        .map((v, i) => [cosine(query, v), i])
        .sort((a, b) => a[0] - b[0])
        .slice(0, k)
        .map(([, i]) => `library-${i}`)
    )
    for (const hit of hits) if (exact.has((yield* service.get(hit.id)).key)) found++
  }
  const recall = found / (20 * k)
  if (recall < 0.9) throw new Error(`HNSW recall@${k} ${recall} < 0.9`)
  return recall
})
const recall = await Effect.runPromise(library.pipe(Effect.provide(marken)))
const indexFiles = fs.existsSync(indexDirectory) ? fs.readdirSync(indexDirectory) : []
if (indexFiles.length === 0) throw new Error(`no HNSW index persisted in ${indexDirectory}`)
console.log(
  `marken: HNSW kNN over ${vectors.length} vectors, recall@10 ${recall.toFixed(3)}, index persisted (${indexFiles.length} files)`
)

const server = MarkenServer.layerNode({
  port: 0,
  tokens: [{ token: "pack-writer", scopes: ["read", "write"], name: "writer" }]
}).pipe(Layer.provideMerge(marken))
const http = Effect.gen(function* () {
  const address = (yield* HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("not listening on TCP")
  const baseUrl = `http://127.0.0.1:${address.port}`
  const unauthorized = yield* Effect.promise(() => fetch(`${baseUrl}/types`))
  if (unauthorized.status !== 401) throw new Error(`GET /types without a token answered ${unauthorized.status}`)
  const client = yield* MarkenClient.make({ baseUrl, token: "pack-writer" })
  yield* client.types.register({ payload: AnnotationType.definition(Shot) })
  const op = yield* client.operations.start({
    payload: { type: "shot", version: "1.0", producer: { algorithm: "http", version: "1" } }
  })
  const upserted = yield* client.operations.upsert({
    path: { id: op.id },
    payload: {
      items: items("http")
        .slice(0, 30)
        .map((item) => ({ ...item, vectors: { embedding: Array.from(item.vectors.embedding) } }))
    }
  })
  if (upserted.written.length !== 30) throw new Error(`HTTP upsert wrote ${upserted.written.length} of 30`)
  yield* client.operations.finish({ path: { id: op.id } })
  const page = yield* client.annotations.query({ payload: { producer: "http", entities: ["title:3"] } })
  if (page.items.length !== 3) throw new Error(`HTTP query gave ${page.items.length} items, expected 3`)
  const hits = yield* client.search.knn({
    payload: {
      type: "shot",
      version: "1.0",
      field: "embedding",
      vector: Array.from(vectors[4]),
      k: 1,
      filter: { producer: "http" }
    }
  })
  const top = yield* client.annotations.get({ path: { id: hits[0].id }, urlParams: {} })
  if (top.key !== "http-4") throw new Error(`HTTP kNN nearest is ${top.key}, expected http-4`)
  return baseUrl
})
const baseUrl = await Effect.runPromise(
  http.pipe(Effect.provide(Layer.mergeAll(server, FetchHttpClient.layer)), Effect.scoped)
)
console.log(
  `marken: HTTP server on ${baseUrl} answered the typed client (register, operation, query, kNN); 401 without a token`
)
fs.rmSync(dir, { recursive: true, force: true })
