// The installed `marken` command (node_modules/.bin/marken from the tarball, as `npx marken` runs it): `serve` on
// 127.0.0.1 over a temporary SQLite file seeded through the library, with tokens from the environment; `types`,
// `query` and `search` against it; and the failures a user meets: exit code 1 with one line on stderr for a bad
// flag value, a missing or wrong token, a write-only token reading; exit code 2 for a usage error.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Schema } from "effect"
import { SqliteStorage } from "@org/storage/sqlite"
import { Annotations, AnnotationType, Registry } from "@org/marken"

const bin = path.join(process.cwd(), "node_modules", ".bin", "marken")
if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: the tarball's "bin" was not linked`)

const dimension = 8
const Clip = AnnotationType.make({
  name: "clip",
  version: "1.0",
  payload: Schema.Struct({ genre: Schema.String, score: Schema.Number }),
  vectors: { embedding: { dimension, metric: "cosine" } },
  indexes: ["payload.genre"]
})
let seed = 7
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}
const vectors = Array.from({ length: 300 }, () => Array.from({ length: dimension }, () => random() * 2 - 1))

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pack-marken-cli-"))
const db = path.join(dir, "marken.db")
await Effect.runPromise(
  Effect.gen(function* () {
    yield* (yield* Registry.Registry).register(Clip)
    const service = yield* Annotations.Annotations
    const op = yield* service.start({ type: "clip", version: "1.0", producer: { algorithm: "pack", version: "1" } })
    yield* service.upsert(
      op.id,
      vectors.map((v, i) => ({
        entity: `title:${i % 10}`,
        key: `k${i}`,
        payload: { genre: i % 3 === 0 ? "drama" : "comedy", score: i / 300 },
        vectors: { embedding: v }
      }))
    )
    yield* service.finish(op.id)
  }).pipe(
    Effect.provide(Annotations.layerWithRegistry().pipe(Layer.provide(SqliteStorage.layer({ filename: db })))),
    Effect.scoped
  )
)

/** `marken <args>` as a process: its exit code and output once it exits (or the handle, for `serve`). */
const start = (args, env = {}) => {
  const child = spawn(bin, args, {
    env: {
      ...process.env,
      MARKEN_DATABASE: "",
      MARKEN_SCHEMA: "",
      MARKEN_READ_TOKENS: "",
      MARKEN_WRITE_TOKENS: "",
      MARKEN_TOKEN: "",
      MARKEN_URL: "",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (d) => (stdout += d))
  child.stderr.on("data", (d) => (stderr += d))
  const exit = new Promise((resolve, reject) => {
    child.on("error", reject)
    child.on("exit", (code, signal) => resolve({ code, signal }))
  })
  return { child, exit, output: () => ({ stdout, stderr }) }
}
const cli = async (args, env) => {
  const p = start(args, env)
  const { code } = await p.exit
  return { code, ...p.output() }
}
const expectFailure = (r, code, text, what) => {
  const lines = r.stderr.trim().split("\n")
  if (r.code !== code) throw new Error(`${what}: exit code ${r.code}, expected ${code}\n${r.stderr}`)
  if (code === 1 && lines.length !== 1)
    throw new Error(`${what}: ${lines.length} lines on stderr, expected one\n${r.stderr}`)
  if (!r.stderr.includes(text)) throw new Error(`${what}: stderr does not mention ${text}\n${r.stderr}`)
  if (code === 1 && !lines[0].startsWith("marken: ")) throw new Error(`${what}: "${lines[0]}" is not "marken: ..."`)
}

// refused before any work: no tokens, a bad port (no database file is created for them)
const fresh = path.join(dir, "fresh.db")
expectFailure(await cli(["serve", "--database", fresh, "--port", "0"]), 1, "MARKEN_READ_TOKENS", "serve without tokens")
expectFailure(
  await cli(["serve", "--database", fresh, "--port", "70000"], { MARKEN_READ_TOKENS: "r" }),
  1,
  "--port",
  "serve --port 70000"
)
expectFailure(
  await cli(["serve", "--database", fresh, "--schema", "s1", "--port", "0"], { MARKEN_READ_TOKENS: "r" }),
  1,
  "--schema",
  "serve --schema on a SQLite file"
)
if (fs.existsSync(fresh)) throw new Error("a refused serve created its database file")
// a usage error (@effect/cli prints the help for it): exit code 2
expectFailure(await cli(["search", "--k", "many"], { MARKEN_TOKEN: "r" }), 2, "", "search --k many")

const server = start(["serve", "--port", "0", "--index-dir", path.join(dir, "index")], {
  MARKEN_DATABASE: db,
  MARKEN_READ_TOKENS: "reader,both",
  MARKEN_WRITE_TOKENS: "writer,both"
})
try {
  const url = await new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const { stdout, stderr } = server.output()
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
      if (m && stderr.includes("indexes ready")) {
        clearInterval(timer)
        resolve(m[1])
      }
    }, 50)
    void server.exit.then(({ code }) => {
      clearInterval(timer)
      reject(new Error(`serve exited with ${code}:\n${server.output().stderr}`))
    })
  })
  if (!server.output().stderr.includes("index clip@1.0#embedding: ready, 300 vectors"))
    throw new Error(`serve did not report its index:\n${server.output().stderr}`)
  const env = { MARKEN_URL: url, MARKEN_TOKEN: "reader" }

  const types = await cli(["types"], env)
  if (types.code !== 0 || types.stdout.trim() !== "clip\t1.0\tembedding:8/cosine")
    throw new Error(`marken types: ${types.code} ${JSON.stringify(types.stdout)} ${types.stderr}`)

  const search = await cli(
    [
      "search",
      ...["--type", "clip", "--type-version", "1.0", "--field", "embedding"],
      ...[
        "--vector",
        JSON.stringify(vectors[4]),
        "-k",
        "5",
        "--filter",
        '{"where":[{"field":"genre","op":"eq","value":"comedy"}]}'
      ],
      "--json"
    ],
    env
  )
  if (search.code !== 0) throw new Error(`marken search: exit ${search.code}\n${search.stderr}`)
  const hits = JSON.parse(search.stdout)
  if (hits.length !== 5 || hits[0].distance > 1e-5)
    throw new Error(`marken search: ${hits.length} hits, first at ${hits[0]?.distance}`)

  const query = await cli(["query", "--query", '{"entities":["title:3"],"limit":4}', "--json"], env)
  if (query.code !== 0) throw new Error(`marken query: exit ${query.code}\n${query.stderr}`)
  const page = JSON.parse(query.stdout)
  if (page.items.length !== 4 || page.items.some((a) => a.entity !== "title:3") || !page.next)
    throw new Error(`marken query: ${JSON.stringify(page).slice(0, 300)}`)
  const text = await cli(["query", "--query", '{"entities":["title:3"],"limit":2}'], env)
  if (text.code !== 0 || text.stdout.trim().split("\n").length !== 2 || !text.stderr.includes("more:"))
    throw new Error(`marken query (text): ${text.code} ${text.stdout} ${text.stderr}`)

  // failures against the server: one line each, exit code 1
  expectFailure(await cli(["types"], { ...env, MARKEN_TOKEN: "nobody" }), 1, "UnauthorizedError", "a wrong token")
  expectFailure(await cli(["query"], { ...env, MARKEN_TOKEN: "writer" }), 1, "ForbiddenError", "a write-only token")
  expectFailure(await cli(["types"], { MARKEN_URL: url }), 1, "MARKEN_TOKEN", "no token")
  expectFailure(await cli(["query", "--query", '{"limit": 5000}'], env), 1, "--query", "a query over the limit")
  expectFailure(await cli(["query", "--query", "{oops"], env), 1, "--query is not JSON", "a query that is not JSON")
  expectFailure(
    await cli(["search", "--type", "clip", "--type-version", "1.0", "--field", "embedding", "--vector", "[1,2]"], env),
    1,
    "InvalidQueryError",
    "a vector of the wrong dimension"
  )
  expectFailure(await cli(["types"], { ...env, MARKEN_URL: "ftp://x" }), 1, "--url", "a URL that is not http")
} finally {
  server.child.kill("SIGTERM")
  await server.exit
  fs.rmSync(dir, { recursive: true, force: true })
}
console.log("marken CLI from the tarball: serve on a SQLite file, types, query, search, exit codes and one-line errors")
