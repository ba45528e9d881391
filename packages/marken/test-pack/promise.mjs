// The Promise entry (@org/marken/promise) from plain JavaScript: opens Marken on a SQLite file, registers a type,
// writes a run in one call, queries and searches it, serves it over HTTP on a free port (answered with fetch and a
// bearer token), and checks that every rejection is the tagged error class itself (instanceof works, _tag is set;
// never a FiberFailure): InvalidAnnotationError (and nothing visible), InvalidQueryError, UnknownTypeError,
// IncompatibleTypeError, AnnotationNotFoundError.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Schema } from "effect"
import { AnnotationType, Marken, MarkenError } from "@org/marken/promise"

const rejection = async (promise, what) => {
  try {
    const value = await promise
    throw new Error(`${what} resolved with ${JSON.stringify(value)?.slice(0, 200)} instead of rejecting`)
  } catch (error) {
    return error
  }
}
const expectTagged = async (promise, Class, what) => {
  const error = await rejection(promise, what)
  // a bundler may rename a class (`_StorageError`); its tag is the name it was declared with
  const tag = Class.name.replace(/^_+/, "")
  if (!(error instanceof Class) || error._tag !== tag || String(error.name).includes("FiberFailure")) {
    throw new Error(`${what}: expected ${tag}, got ${error?.constructor?.name} ${error?._tag} ${error}`)
  }
  return error
}

const Shot = AnnotationType.make({
  name: "shot",
  version: "1.0",
  payload: Schema.Struct({ kind: Schema.Literal("cut", "fade"), score: Schema.Number }),
  vectors: { embedding: { dimension: 4, metric: "cosine" } }
})
const producer = { algorithm: "shot-detector", version: "3.2" }
const items = Array.from({ length: 20 }, (_, i) => ({
  entity: `title:${i % 2}`,
  key: `shot-${i}`,
  time: { startNs: i * 1_000_000_000, endNs: (i + 1) * 1_000_000_000 },
  payload: { kind: i % 3 ? "cut" : "fade", score: i / 20 },
  confidence: 0.9,
  vectors: { embedding: Float32Array.from([1, i, i % 5, 1]) }
}))

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-marken-promise-"))
try {
  const marken = await Marken.open({ sqlite: path.join(dir, "media.db"), indexDirectory: path.join(dir, "index") })
  try {
    await marken.register(Shot)
    const written = await marken.write({ type: "shot", version: "1.0", producer }, items)
    if (written.written.length !== 20 || written.operation.status !== "finished") {
      throw new Error(`write: ${written.written.length} written, operation ${written.operation.status}`)
    }
    const page = await marken.query({ entities: ["title:1"], where: [{ field: "score", op: "range", gte: 0.5 }] })
    if (page.items.length !== 5) throw new Error(`query gave ${page.items.length} items, expected 5`)
    const hits = await marken.search({
      type: "shot",
      version: "1.0",
      field: "embedding",
      vector: Float32Array.from([1, 7, 2, 1]),
      k: 3
    })
    if (hits.length !== 3 || (await marken.get(hits[0].id)).key !== "shot-7") {
      throw new Error(`search: ${hits.length} hits, nearest ${hits[0] && (await marken.get(hits[0].id)).key}`)
    }

    // rejections are the tagged classes themselves
    const invalid = await expectTagged(
      marken.write({ type: "shot", version: "1.0", producer: { algorithm: "other", version: "1" } }, [
        { ...items[0], payload: { kind: "wipe", score: 1 } }
      ]),
      MarkenError.InvalidAnnotationError,
      "a payload outside its schema"
    )
    const after = await marken.query({ producer: "other" })
    if (after.items.length !== 0) throw new Error("a refused write left annotations behind")
    await expectTagged(
      marken.query({ where: [{ field: "score; drop table x", op: "eq", value: 1 }] }),
      MarkenError.InvalidQueryError,
      "a field path that is not an identifier"
    )
    await expectTagged(
      marken.search({
        type: "nope",
        version: "1.0",
        field: "embedding",
        vector: Float32Array.from([1, 2, 3, 4]),
        k: 1
      }),
      MarkenError.UnknownTypeError,
      "an unknown type"
    )
    await expectTagged(
      marken.register(
        AnnotationType.make({ name: "shot", version: "1.1", payload: Schema.Struct({ kind: Schema.Number }) })
      ),
      MarkenError.IncompatibleTypeError,
      "a minor version that changes a field"
    )
    await expectTagged(
      marken.get("0190a0b0-0000-7000-8000-000000000000"),
      MarkenError.AnnotationNotFoundError,
      "an unknown id"
    )

    // the same service over HTTP
    const server = await marken.serve({ port: 0, tokens: [{ token: "pack-reader", scopes: ["read"] }] })
    const answer = await fetch(`${server.url}/query`, {
      method: "POST",
      headers: { authorization: "Bearer pack-reader", "content-type": "application/json" },
      body: JSON.stringify({ entities: ["title:0"] })
    })
    const body = await answer.json()
    if (answer.status !== 200 || body.items.length !== 10)
      throw new Error(`POST /query: ${answer.status} ${JSON.stringify(body).slice(0, 200)}`)
    const refused = await fetch(`${server.url}/query`, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" }
    })
    if (refused.status !== 401) throw new Error(`POST /query without a token answered ${refused.status}`)
    await server.close()
    console.log(
      `marken/promise: write -> ${written.written.length} annotations in a finished run; query ${page.items.length}; kNN nearest shot-7; HTTP on a free port (200, 401 without a token); rejects with ${invalid._tag} (nothing written), InvalidQueryError, UnknownTypeError, IncompatibleTypeError, AnnotationNotFoundError`
    )
  } finally {
    await marken.close()
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
