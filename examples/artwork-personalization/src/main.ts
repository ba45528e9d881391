/**
 * Reference pipeline: artwork personalization.
 *
 * Until the packages it composes land, this runs the end-to-end path that exists:
 * it opens the embedded SQLite database, applies migrations, stores artwork
 * embeddings through the vector codec, reads them back, and writes an HTML report.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Database, Vector } from "@org/storage"
import { SqliteStorage } from "@org/storage/sqlite"

const out = path.resolve(import.meta.dirname, "..", "out")
fs.mkdirSync(out, { recursive: true })
const filename = path.join(out, "demo.db")
for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(filename + suffix, { force: true })

const program = Effect.gen(function* () {
  const db = yield* Database.Database
  yield* db.migrate("@org/example-artwork-personalization", {
    "0001_artworks": {
      up: async (k, caps) => {
        await k.schema
          .createTable("artworks")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("embedding", caps.types.binary, (c) => c.notNull())
          .execute()
      }
    }
  })
  const artworks = Array.from({ length: 12 }, (_, i) => ({
    id: `artwork-${i}`,
    embedding: Float32Array.from({ length: 16 }, (_, j) => Math.cos((i + 1) * (j + 1)))
  }))
  yield* db.transaction(
    Effect.forEach(artworks, (a) =>
      Effect.flatMap(Vector.encode(a.embedding, { dimension: 16, finite: true }), (bytes) =>
        db.use("artworks.insert", (k) => k.insertInto("artworks").values({ id: a.id, embedding: bytes }).execute())
      )
    )
  )
  const rows = yield* db.use("artworks.list", (k) => k.selectFrom("artworks").selectAll().orderBy("id").execute())
  const decoded = yield* Effect.forEach(rows, (r) =>
    Effect.map(Vector.decode(r.embedding, 16), (v) => ({ id: r.id as string, v }))
  )
  return { label: db.label, decoded }
})

const { label, decoded } = await Effect.runPromise(program.pipe(Effect.provide(SqliteStorage.layer({ filename }))))
const cells = decoded
  .map(({ id, v }) => {
    const bars = Array.from(v)
      .map(
        (x, j) =>
          `<rect x="${j * 10}" y="${x >= 0 ? 40 - x * 40 : 40}" width="8" height="${Math.abs(x) * 40}" fill="#c0392b"/>`
      )
      .join("")
    return `<figure><svg width="160" height="80">${bars}</svg><figcaption>${id}</figcaption></figure>`
  })
  .join("\n")
const report = path.join(out, "report.html")
fs.writeFileSync(
  report,
  `<!doctype html><meta charset="utf-8"><title>Artwork personalization demo</title>
<style>body{font-family:sans-serif}figure{display:inline-block;margin:8px}</style>
<h1>Artwork embeddings stored in ${label}</h1>\n${cells}\n`
)
console.log(`stored and read back ${decoded.length} artwork embeddings in ${label}`)
console.log(`report: ${path.relative(process.cwd(), report)}`)
console.log("(the full artwork-personalization pipeline lands with the example's own issue)")
