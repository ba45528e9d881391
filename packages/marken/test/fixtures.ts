import { HttpServer } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import { sql } from "kysely"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { Annotations, AnnotationType, MarkenServer } from "@org/marken"
import { Database } from "@org/storage"
import type { StorageTesting } from "@org/storage/testing"

export const Shot = AnnotationType.make({
  name: "shot",
  version: "1.0",
  payload: Schema.Struct({
    kind: Schema.Literal("cut", "fade"),
    score: Schema.Number.pipe(Schema.between(0, 1)),
    tags: Schema.optional(Schema.Array(Schema.String)),
    meta: Schema.optional(Schema.Struct({ camera: Schema.String, flagged: Schema.Boolean }))
  }),
  vectors: { embedding: { dimension: 8, metric: "cosine" } }
})

export const ShotV11 = AnnotationType.make({
  name: "shot",
  version: "1.1",
  payload: Schema.Struct({
    kind: Schema.Literal("cut", "fade"),
    score: Schema.Number.pipe(Schema.between(0, 1)),
    tags: Schema.optional(Schema.Array(Schema.String)),
    meta: Schema.optional(Schema.Struct({ camera: Schema.String, flagged: Schema.Boolean })),
    note: Schema.optional(Schema.String)
  }),
  vectors: { embedding: { dimension: 8, metric: "cosine" } }
})

export const ShotV2 = AnnotationType.make({
  name: "shot",
  version: "2.0",
  payload: Schema.Struct({
    transition: Schema.Literal("cut", "fade"),
    score: Schema.Number,
    tags: Schema.Array(Schema.String)
  }),
  vectors: { embedding: { dimension: 8, metric: "cosine" } }
})

/** A deterministic pseudo-random generator (mulberry32). */
export const rng = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export const vec = (random: () => number, dim = 8) => Float32Array.from({ length: dim }, () => random() * 2 - 1)

export const marken = (options?: Annotations.Options) => (storage: Layer.Layer<Database.Database, any>) =>
  Annotations.layerWithRegistry(options).pipe(Layer.provide(storage))

export const producer = { algorithm: "shot-detector", version: "3.2" }

/** The type of the run-switch tests (Runs.suite.ts and its writer process, runWriter.ts). */
export const Clip = AnnotationType.make({
  name: "clip",
  version: "1.0",
  payload: Schema.Struct({ run: Schema.Int }),
  vectors: { embedding: { dimension: 32, metric: "cosine" } }
})

/** The annotations of one run of {@link Clip}: the same entities and vectors, the run in the payload. */
export const clipItems = (data: ReadonlyArray<Float32Array>, run: number) =>
  data.map((v, i) => ({ entity: `e${i}`, key: `k${i}`, payload: { run }, vectors: { embedding: v } }))

void Effect

/** Clustered vectors: `clusters` random centres, each point a centre plus small noise. */
export const clustered = (n: number, dim: number, clusters: number, seed: number): Array<Float32Array> => {
  const r = rng(seed)
  const centres = Array.from({ length: clusters }, () => vec(r, dim))
  return Array.from({ length: n }, () => {
    const c = centres[Math.floor(r() * clusters)]!
    return Float32Array.from(c, (x) => x + (r() * 2 - 1) * 0.15)
  })
}

/** Exact cosine k nearest (indices) among `candidates`. */
export const exactCosine = (
  q: Float32Array,
  vectors: ReadonlyArray<Float32Array>,
  candidates: ReadonlyArray<number>,
  k: number
) => {
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))
  const nq = norm(q)
  return candidates
    .map((i) => {
      const v = vectors[i]!
      let dot = 0
      for (let j = 0; j < v.length; j++) dot += v[j]! * q[j]!
      return { i, d: 1 - dot / (nq * norm(v)) }
    })
    .sort((a, b) => a.d - b.d)
    .slice(0, k)
}

/**
 * Runs `f` with a database location shared between layers (a file or a schema) and a
 * temporary index folder, removing both afterwards, also when `f` fails.
 */
export const withShared = <A, E, R>(
  adapter: StorageTesting.Adapter,
  prefix: string,
  f: (shared: ReturnType<StorageTesting.Adapter["shared"]>, dir: string) => Effect.Effect<A, E, R>
) =>
  Effect.acquireUseRelease(
    Effect.sync(() => ({
      dir: fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`)),
      shared: adapter.shared(`${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`)
    })),
    ({ dir, shared }) => f(shared, dir),
    ({ dir, shared }) =>
      Effect.scoped(
        Effect.provide(
          Database.use("cleanup", async (k) => {
            if (shared.location.kind === "pg")
              await sql`drop schema if exists ${sql.id(shared.location.schema!)} cascade`.execute(k)
          }),
          shared.layer
        )
      ).pipe(
        Effect.ignore,
        Effect.zipRight(
          Effect.sync(() => {
            fs.rmSync(dir, { recursive: true, force: true })
            if (shared.location.kind === "sqlite")
              for (const s of ["", "-wal", "-shm"]) fs.rmSync(shared.location.filename! + s, { force: true })
          })
        )
      )
  )

export const baseUrl = Effect.map(HttpServer.HttpServer, (s) =>
  s.address._tag === "TcpAddress" ? `http://127.0.0.1:${s.address.port}` : "unix"
)

/** Raw HTTP, as an untyped client would send it. */
export const raw = (
  method: string,
  url: string,
  options: { token?: string; body?: unknown; text?: string; chunked?: boolean; contentType?: string | null } = {}
) =>
  Effect.promise(
    () =>
      new Promise<{ status: number; body: any; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
        const text = options.text ?? (options.body === undefined ? undefined : JSON.stringify(options.body))
        const req = http.request(url, {
          method,
          headers: {
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
            ...(text !== undefined && options.contentType !== null
              ? { "content-type": options.contentType ?? "application/json" }
              : {}),
            ...(text !== undefined && !options.chunked ? { "content-length": Buffer.byteLength(text) } : {})
          }
        })
        req.on("response", (res) => {
          const chunks: Array<Buffer> = []
          res.on("data", (c) => chunks.push(c))
          res.on("end", () => {
            const s = Buffer.concat(chunks).toString("utf8")
            let body: unknown = s
            try {
              body = s ? JSON.parse(s) : undefined
            } catch {
              // not JSON
            }
            resolve({ status: res.statusCode ?? 0, body, headers: res.headers })
          })
        })
        req.on("error", (e: any) =>
          e.code === "EPIPE" || e.code === "ECONNRESET"
            ? resolve({ status: -1, body: undefined, headers: {} })
            : reject(e)
        )
        if (text !== undefined) {
          if (options.chunked) {
            for (let i = 0; i < text.length; i += 16 * 1024) req.write(text.slice(i, i + 16 * 1024))
          } else req.write(text)
        }
        req.end()
      })
  )

export const tokens = [
  { token: "reader-token", scopes: ["read"] as const, name: "reader" },
  { token: "writer-token", scopes: ["read", "write"] as const, name: "writer" },
  { token: "write-only-token", scopes: ["write"] as const, name: "write-only" },
  { token: "no-scope-token", scopes: [] as const, name: "no scope" }
]
export const MAX = 256 * 1024

export const server = (storage: Layer.Layer<Database.Database, any>, indexDirectory?: string) =>
  MarkenServer.layerNode({
    tokens: tokens.map((t) => ({ ...t, scopes: [...t.scopes] as Array<"read" | "write"> })),
    port: 0,
    maxBodyBytes: MAX
  }).pipe(Layer.provideMerge(marken(indexDirectory ? { indexDirectory } : {})(storage)))
