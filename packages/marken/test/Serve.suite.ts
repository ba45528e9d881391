// Start-up and configuration: options decoded with unknown ones refused, the eager
// index build with its progress events (SQLite and PostgreSQL), and the `marken` CLI
// as real processes against a SQLite file and a real HTTP server on 127.0.0.1.
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { Annotations, MarkenServer, Registry } from "@org/marken"
import { SqliteStorage } from "@org/storage/sqlite"
import { StorageTesting } from "@org/storage/testing"
import { clustered, producer, Shot, withShared } from "./fixtures.js"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(import.meta.dirname, "../src/bin/marken.ts")
const tsx = pathToFileURL(path.join(root, "node_modules/tsx/dist/loader.mjs")).href

/** Writes `n` shots with vectors in one finished run. */
const seed = (n: number) =>
  Effect.gen(function* () {
    const registry = yield* Registry.Registry
    const annotations = yield* Annotations.Annotations
    yield* registry.register(Shot)
    const op = yield* annotations.start({ type: "shot", version: "1.0", producer })
    const vectors = clustered(n, 8, 5, 7)
    yield* annotations.upsert(
      op.id,
      vectors.map((v, i) => ({
        entity: `video:${i % 4}`,
        key: `k${i}`,
        payload: { kind: i % 2 ? "cut" : "fade", score: (i % 10) / 10 },
        vectors: { embedding: v }
      }))
    )
    yield* annotations.finish(op.id)
    return vectors
  })

describe("options", () => {
  it.effect("Annotations options: an unknown or out-of-range option is a MarkenConfigError naming it", () =>
    Effect.gen(function* () {
      const storage = SqliteStorage.layer({ filename: ":memory:" })
      const bad = (options: unknown) =>
        Annotations.Annotations.pipe(
          Effect.provide(Annotations.layerWithRegistry(options as any).pipe(Layer.provide(storage))),
          Effect.either
        )
      const unknown = yield* bad({ efConstrution: 100 })
      expect(Either.isLeft(unknown) && unknown.left).toMatchObject({
        _tag: "MarkenConfigError",
        option: "efConstrution"
      })
      expect(Either.isLeft(unknown) && unknown.left.message).toContain('unknown option "efConstrution"')
      const range = yield* bad({ m: 0 })
      expect(Either.isLeft(range) && range.left).toMatchObject({ _tag: "MarkenConfigError", option: "m" })
      const mode = yield* bad({ index: "sometimes" })
      expect(Either.isLeft(mode) && mode.left).toMatchObject({ _tag: "MarkenConfigError", option: "index" })
      const fine = yield* bad({ m: 8, index: "lazy" })
      expect(Either.isRight(fine)).toBe(true)
    })
  )

  it.effect(
    "server options: an unknown option, a bad port or a token without a value is refused before listening",
    () =>
      Effect.gen(function* () {
        const services = Annotations.layerWithRegistry().pipe(
          Layer.provide(SqliteStorage.layer({ filename: ":memory:" }))
        )
        const start = (options: unknown) =>
          Effect.scoped(Layer.build(MarkenServer.layerNode(options as any).pipe(Layer.provide(services)))).pipe(
            Effect.either
          )
        const cases = [
          [{ tokens: [{ token: "t", scopes: ["read"] }], port: 0, maxBody: 10 }, "maxBody"],
          [{ tokens: [{ token: "t", scopes: ["read"] }], port: 70000 }, "port"],
          [{ tokens: [{ token: "t", scopes: ["admin"] }], port: 0 }, "tokens.0.scopes.0"],
          [{ tokens: [{ token: "", scopes: ["read"] }], port: 0 }, "tokens.0.token"],
          [{ tokens: [{ token: "t", scopes: ["read"] }], port: 0, maxBodyBytes: -1 }, "maxBodyBytes"]
        ] as const
        for (const [options, option] of cases) {
          const r = yield* start(options)
          expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "MarkenConfigError", option })
        }
        expect(Either.isRight(yield* start({ tokens: [{ token: "t", scopes: ["read"] }], port: 0 }))).toBe(true)
      })
  )
})

for (const adapter of StorageTesting.adapters().filter((a) => a.name !== "sqlite-memory")) {
  if (adapter.skip) {
    describe.skip(`eager index on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }
  describe(`eager index on ${adapter.name}`, () => {
    it.live(
      'index: "eager" builds every index at start and reports progress as events; lazy builds none',
      () =>
        withShared(adapter, "marken_eager", (shared, dir) =>
          Effect.gen(function* () {
            const n = 4500
            yield* Effect.scoped(
              seed(n).pipe(Effect.provide(Annotations.layerWithRegistry().pipe(Layer.provide(shared.layer))))
            )
            // eager, with no index file: built from the database, in slices
            const events = yield* Effect.scoped(
              Effect.gen(function* () {
                const annotations = yield* Annotations.Annotations
                yield* annotations.ready
                return Chunk.toReadonlyArray(
                  yield* Stream.runCollect(
                    annotations.indexEvents.pipe(Stream.takeUntil((e) => e._tag === "IndexReady"))
                  )
                )
              }).pipe(
                Effect.provide(
                  Annotations.layerWithRegistry({ index: "eager", indexDirectory: dir }).pipe(
                    Layer.provide(shared.layer)
                  )
                )
              )
            )
            expect(events[0]).toEqual({ _tag: "IndexLoading", key: "shot@1.0#embedding", source: "database", total: n })
            const progress = events.filter((e) => e._tag === "IndexProgress")
            expect(progress.map((e) => (e as any).done)).toEqual([2000, 4000, 4500])
            expect(events.at(-1)).toMatchObject({ _tag: "IndexReady", key: "shot@1.0#embedding", size: n })
            // eager again: the file written at close is loaded, not rebuilt
            const again = yield* Effect.scoped(
              Effect.gen(function* () {
                const annotations = yield* Annotations.Annotations
                yield* annotations.ready
                return Chunk.toReadonlyArray(
                  yield* Stream.runCollect(
                    annotations.indexEvents.pipe(Stream.takeUntil((e) => e._tag === "IndexReady"))
                  )
                )
              }).pipe(
                Effect.provide(
                  Annotations.layerWithRegistry({ index: "eager", indexDirectory: dir }).pipe(
                    Layer.provide(shared.layer)
                  )
                )
              )
            )
            expect(again[0]).toMatchObject({ _tag: "IndexLoading", source: "file", total: n })
            expect(again.at(-1)).toMatchObject({ _tag: "IndexReady", origin: "file", size: n })
            // lazy: nothing is built until the first search
            const lazy = yield* Effect.scoped(
              Effect.gen(function* () {
                const annotations = yield* Annotations.Annotations
                yield* annotations.ready
                yield* Effect.sleep("50 millis")
                const before = yield* Stream.runCollect(
                  annotations.indexEvents.pipe(Stream.interruptWhen(Effect.sleep("50 millis")))
                )
                yield* annotations.search({
                  type: "shot",
                  version: "1.0",
                  field: "embedding",
                  vector: [1, 0, 0, 0, 0, 0, 0, 0],
                  k: 3
                })
                return Chunk.size(before)
              }).pipe(
                Effect.provide(Annotations.layerWithRegistry({ index: "lazy" }).pipe(Layer.provide(shared.layer)))
              )
            )
            expect(lazy).toBe(0)
          })
        ),
      300_000
    )
  })
}

/** Runs `marken <args>` as a process; resolves with its exit code and output once it exits. */
const marken = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, ["--conditions=@org/source", "--import", tsx, bin, ...args], {
    cwd: root,
    env: {
      ...process.env,
      MARKEN_READ_TOKENS: "",
      MARKEN_WRITE_TOKENS: "",
      MARKEN_DATABASE: "",
      MARKEN_SCHEMA: "",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (d) => (stdout += d))
  child.stderr.on("data", (d) => (stderr += d))
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, output: () => ({ stdout, stderr }), exit }
}
const runCli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const p = marken(args, env)
    const code = await p.exit
    return { code, ...p.output() }
  })

describe("marken CLI", () => {
  it.live(
    "flags and variables are checked before any work: one line, exit 1, no database created",
    () =>
      Effect.gen(function* () {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "marken-cli-"))
        const db = path.join(dir, "m.db")
        const noTokens = yield* runCli(["serve", "--database", db, "--port", "0"])
        expect(noTokens.code).toBe(1)
        expect(noTokens.stderr.trim().split("\n")).toHaveLength(1)
        expect(noTokens.stderr).toContain("MarkenConfigError")
        expect(noTokens.stderr).toContain("MARKEN_READ_TOKENS")
        const badPort = yield* runCli(["serve", "--database", db, "--port", "70000"], { MARKEN_READ_TOKENS: "r" })
        expect(badPort.code).toBe(1)
        expect(badPort.stderr.trim().split("\n")).toHaveLength(1)
        expect(badPort.stderr).toContain("port")
        const schemaOnSqlite = yield* runCli(["serve", "--database", db, "--schema", "s1", "--port", "0"], {
          MARKEN_READ_TOKENS: "r"
        })
        expect(schemaOnSqlite.code).toBe(1)
        expect(schemaOnSqlite.stderr.trim().split("\n")).toHaveLength(1)
        expect(schemaOnSqlite.stderr).toContain("--schema: s1 is a PostgreSQL schema")
        const badQuery = yield* runCli(["query", "--query", '{"limit": 5000}'], { MARKEN_TOKEN: "r" })
        expect(badQuery.code).toBe(1)
        expect(badQuery.stderr).toContain("--query")
        const verbose = yield* runCli(["query", "--query", "{not json", "--verbose"], { MARKEN_TOKEN: "r" })
        expect(verbose.stderr.split("\n")[0]).toContain("--query is not JSON")
        expect(verbose.stderr.trim().split("\n").length).toBeGreaterThan(1)
        expect(fs.existsSync(db)).toBe(false)
        fs.rmSync(dir, { recursive: true, force: true })
      }),
    300_000
  )
})

for (const adapter of StorageTesting.adapters().filter((a) => a.name !== "sqlite-memory")) {
  if (adapter.skip) {
    describe.skip(`marken CLI serve on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }
  describe(`marken CLI serve on ${adapter.name}`, () => {
    it.live(
      `serve on ${adapter.name} builds the index at start (progress on stderr); types, search and query talk to it`,
      () =>
        withShared(adapter, "marken_cli", (shared) =>
          Effect.gen(function* () {
            const vectors = yield* Effect.scoped(
              seed(3000).pipe(Effect.provide(Annotations.layerWithRegistry().pipe(Layer.provide(shared.layer))))
            )
            const { location } = shared
            // SQLite: the file; PostgreSQL: the URL and the schema (from the environment, as a deployment sets them)
            const server = marken(["serve", "--port", "0", "--index", "eager"], {
              MARKEN_DATABASE: location.kind === "pg" ? location.url! : location.filename!,
              ...(location.kind === "pg" ? { MARKEN_SCHEMA: location.schema! } : {}),
              MARKEN_READ_TOKENS: "reader,both",
              MARKEN_WRITE_TOKENS: "both"
            })
            yield* Effect.addFinalizer(() =>
              Effect.promise(async () => {
                server.child.kill("SIGTERM")
                await server.exit
              })
            )
            // wait for the address and the ready line
            const url = yield* Effect.promise(
              () =>
                new Promise<string>((resolve, reject) => {
                  const timer = setInterval(() => {
                    const { stdout, stderr } = server.output()
                    const m = /listening on (http:\/\/\S+)/.exec(stdout)
                    if (m && stderr.includes("indexes ready")) {
                      clearInterval(timer)
                      resolve(m[1]!)
                    }
                  }, 100)
                  void server.exit.then((code) => {
                    clearInterval(timer)
                    reject(new Error(`serve exited with ${code}: ${server.output().stderr}`))
                  })
                })
            )
            const stderr = server.output().stderr
            expect(stderr).toContain("index shot@1.0#embedding: building from the database (3000 vectors)")
            expect(stderr).toContain("3000/3000 (100%)")
            expect(stderr).toMatch(/index shot@1\.0#embedding: ready, 3000 vectors/)
            const env = { MARKEN_TOKEN: "reader", MARKEN_URL: url }
            const types = yield* runCli(["types"], env)
            expect(types.code).toBe(0)
            expect(types.stdout.trim()).toBe("shot\t1.0\tembedding:8/cosine")
            const search = yield* runCli(
              [
                "search",
                "--type",
                "shot",
                "--type-version",
                "1.0",
                "--field",
                "embedding",
                "--vector",
                JSON.stringify(Array.from(vectors[0]!)),
                "-k",
                "3",
                "--json"
              ],
              env
            )
            expect(search.code).toBe(0)
            const hits = JSON.parse(search.stdout)
            expect(hits).toHaveLength(3)
            expect(hits[0].distance).toBeLessThan(1e-5)
            const query = yield* runCli(["query", "--query", '{"entities":["video:1"],"limit":2}', "--json"], env)
            expect(query.code).toBe(0)
            expect(JSON.parse(query.stdout).items.map((a: any) => a.entity)).toEqual(["video:1", "video:1"])
            const denied = yield* runCli(["types"], { ...env, MARKEN_TOKEN: "nobody" })
            expect(denied.code).toBe(1)
            expect(denied.stderr.trim()).toBe("marken: UnauthorizedError: the bearer token is not valid")
          }).pipe(Effect.scoped)
        ),
      600_000
    )
  })
}
