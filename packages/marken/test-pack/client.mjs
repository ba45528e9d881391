// @org/marken/client from the packed tarball: the API, client, errors and models load without hnswlib-node or the
// Node HTTP server, and the OpenAPI document is built.
import { createRequire } from "node:module"

const require = createRequire(import.meta.url)
const client = await import("@org/marken/client")
for (const name of ["MarkenApi", "MarkenClient", "MarkenError", "Annotation", "AnnotationType", "Query", "Operation"]) {
  if (!(name in client)) throw new Error(`@org/marken/client does not export ${name}`)
}
const loaded = Object.keys(require.cache).filter((m) => m.includes("hnswlib") || m.includes("platform-node"))
if (loaded.length > 0) throw new Error(`@org/marken/client loaded ${loaded.join(", ")}`)
if (typeof client.MarkenClient.make !== "function") throw new Error("MarkenClient.make is missing")
const doc = client.MarkenApi.openApi()
if (Object.keys(doc.paths).length !== 13) throw new Error(`unexpected paths: ${Object.keys(doc.paths).join(", ")}`)
const cjs = require("@org/marken/client")
if (typeof cjs.MarkenClient.make !== "function") throw new Error("require('@org/marken/client') has no MarkenClient")
console.log("@org/marken/client: API, client, errors and models without hnswlib-node or the Node server (ESM and CJS)")
