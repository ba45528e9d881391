// Marken from a service that does not use Effect: plain JavaScript and Promises, and its HTTP server.
// Run: node promise.mjs
import { Schema } from "effect"
import { AnnotationType, Marken, MarkenError } from "@org/marken/promise"

const Shot = AnnotationType.make({
  name: "shot",
  version: "1.0",
  payload: Schema.Struct({ kind: Schema.Literal("cut", "fade"), score: Schema.Number })
})

const marken = await Marken.open({ sqlite: "annotations.db" }) // or { postgres: process.env.DATABASE_URL }
try {
  await marken.register(Shot)
  // one run in one call: start, upsert, finish (readers switch to it at once)
  await marken.write({ type: "shot", version: "1.0", producer: { algorithm: "shot-detector", version: "3.2" } }, [
    {
      entity: "title:81",
      key: "shot-12",
      time: { startNs: 0, endNs: 2_000_000_000 },
      payload: { kind: "cut", score: 0.9 }
    }
  ])
  const page = await marken.query({ entities: ["title:81"] })
  console.log(page.items.map((a) => a.payload))

  // failures are the tagged errors of the Effect API: instanceof works, _tag names them
  await marken
    .write({ type: "shot", version: "1.0", producer: { algorithm: "other", version: "1" } }, [
      { entity: "title:81", payload: { kind: "wipe", score: 1 } }
    ])
    .catch((error) => {
      if (!(error instanceof MarkenError.InvalidAnnotationError)) throw error
      console.log(`${error._tag} at ${error.path}: ${error.message}`)
    })

  // the same service over HTTP (bearer tokens with scopes; port 0 picks a free port)
  const server = await marken.serve({ port: 0, tokens: [{ token: "change-me", scopes: ["read"] }] })
  const response = await fetch(`${server.url}/query`, {
    method: "POST",
    headers: { authorization: "Bearer change-me", "content-type": "application/json" },
    body: JSON.stringify({ entities: ["title:81"] })
  })
  console.log(response.status, (await response.json()).items.length)
  await server.close()
} finally {
  await marken.close()
}
