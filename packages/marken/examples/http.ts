/**
 * The HTTP server on 127.0.0.1 (a free port, bearer tokens with scopes) and the typed client from
 * `@org/marken/client` talking to it over `fetch`.
 * Run: npx tsx http.ts
 */
import { FetchHttpClient, HttpServer } from "@effect/platform"
import { Effect, Layer, Redacted, Schema } from "effect"
import { Annotations, AnnotationType, MarkenServer } from "@org/marken"
import { MarkenClient } from "@org/marken/client"
import { SqliteStorage } from "@org/storage/sqlite"

const Shot = AnnotationType.make({
  name: "shot",
  version: "1.0",
  payload: Schema.Struct({ kind: Schema.Literal("cut", "fade"), score: Schema.Number }),
  vectors: { embedding: { dimension: 4, metric: "cosine" } }
})
const secret = "change-me" // in a service: Config.redacted("MARKEN_TOKEN")

const Marken = Annotations.layerWithRegistry().pipe(Layer.provide(SqliteStorage.layer({ filename: ":memory:" })))
const Server = MarkenServer.layerNode({
  port: 0, // a free port; 8080 in a service
  tokens: [{ token: Redacted.make(secret), scopes: ["read", "write"] }]
}).pipe(Layer.provide(Marken))

const program = Effect.gen(function* () {
  const address = (yield* HttpServer.HttpServer).address
  const baseUrl = address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : ""

  // a client of a Marken server needs only @org/marken/client, effect and @effect/platform
  const client = yield* MarkenClient.make({ baseUrl, token: secret })
  yield* client.types.register({ payload: AnnotationType.definition(Shot) })
  const op = yield* client.operations.start({
    payload: { type: "shot", version: "1.0", producer: { algorithm: "shot-detector", version: "3.2" } }
  })
  yield* client.operations.upsert({
    path: { id: op.id },
    payload: {
      items: [
        {
          entity: "title:81",
          key: "shot-12",
          time: { startNs: 41_000_000_000, endNs: 43_500_000_000 },
          payload: { kind: "cut", score: 0.93 },
          confidence: 0.93,
          vectors: { embedding: [0.1, 0.2, 0.3, 0.4] }
        }
      ]
    }
  })
  yield* client.operations.finish({ path: { id: op.id } })
  const page = yield* client.annotations.query({ payload: { entities: ["title:81"], minConfidence: 0.5 } })
  const hits = yield* client.search.knn({
    payload: { type: "shot", version: "1.0", field: "embedding", vector: [0.1, 0.2, 0.3, 0.5], k: 10 }
  })
  console.log(`${baseUrl}: ${page.items.length} annotation(s) for title:81; nearest ${hits[0]?.id}`)
})

Effect.runPromise(program.pipe(Effect.provide(Layer.mergeAll(Server, FetchHttpClient.layer)), Effect.scoped))
