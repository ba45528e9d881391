/**
 * @org/storage against raw better-sqlite3 and raw pg, in one run.
 * Run: npm run bench -- storage   (PostgreSQL rows when ORG_TEST_PG_URL is set)
 */
import SqliteDatabase from "better-sqlite3"
import { Effect, type Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { Database, Vector } from "@org/storage"
import { PostgresStorage } from "@org/storage/pg"
import { SqliteStorage } from "@org/storage/sqlite"
import { report, row, time, type Row } from "./lib/report.js"

const N = 20_000
const DIM = 128
const vectors = Array.from({ length: N }, (_, i) => Float32Array.from({ length: DIM }, (_, j) => Math.sin(i * j)))
const rows: Array<Row> = []

const migrations: Database.Migrations = {
  "0001": {
    up: async (db, caps) => {
      await db.schema
        .createTable("bench_vec")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("v", caps.types.binary)
        .execute()
    }
  }
}

const ours = (label: string, layer: Layer.Layer<Database.Database, any>) =>
  Effect.gen(function* () {
    const db = yield* Database.Database
    yield* db.migrate("bench", migrations)
    const insert = () =>
      Effect.runPromise(
        db.transaction(
          Effect.gen(function* () {
            yield* db.use("clear", (k) => k.deleteFrom("bench_vec").execute())
            for (let i = 0; i < N; i += 1000) {
              const values = vectors.slice(i, i + 1000).map((v, j) => ({ id: i + j, v: Vector.encodeUnsafe(v) }))
              yield* db.use("insert", (k) => k.insertInto("bench_vec").values(values).execute())
            }
          })
        )
      )
    const read = () =>
      Effect.runPromise(
        db
          .use("read", (k) => k.selectFrom("bench_vec").select(["id", "v"]).execute())
          .pipe(Effect.map((rs) => rs.map((r) => Vector.decodeUnsafe(r.v))))
      )
    const tInsert = yield* Effect.promise(() => time(insert, { repeat: 3 }))
    const tRead = yield* Effect.promise(() => time(read, { repeat: 3 }))
    return { label, tInsert, tRead }
  }).pipe(Effect.provide(layer), Effect.scoped)

const main = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-storage-"))
  // raw better-sqlite3: prepared statement in one transaction
  const raw = new SqliteDatabase(path.join(dir, "raw.db"))
  raw.pragma("journal_mode = WAL")
  raw.pragma("synchronous = NORMAL")
  raw.exec("create table bench_vec (id integer primary key, v blob)")
  const stmt = raw.prepare("insert into bench_vec (id, v) values (?, ?)")
  const rawInsert = raw.transaction(() => {
    raw.exec("delete from bench_vec")
    for (let i = 0; i < N; i++) stmt.run(i, Buffer.from(vectors[i]!.buffer))
  })
  const sel = raw.prepare("select id, v from bench_vec")
  const tRawInsert = await time(() => rawInsert(), { repeat: 3 })
  const tRawRead = await time(() => sel.all().map((r: any) => new Float32Array(new Uint8Array(r.v).buffer)), {
    repeat: 3
  })
  const sqlite = await Effect.runPromise(ours("sqlite", SqliteStorage.layer({ filename: path.join(dir, "ours.db") })))
  rows.push(row(`sqlite: insert ${N} x ${DIM}-d vectors (one transaction)`, sqlite.tInsert, "ms", tRawInsert))
  rows.push(row(`sqlite: read ${N} vectors`, sqlite.tRead, "ms", tRawRead))
  raw.close()

  const url = process.env.ORG_TEST_PG_URL
  if (url) {
    const pool = new pg.Pool({ connectionString: url, max: 2 })
    await pool.query("drop table if exists bench_vec_raw; create table bench_vec_raw (id integer primary key, v bytea)")
    const rawPgInsert = async () => {
      const c = await pool.connect()
      try {
        await c.query("begin")
        await c.query("delete from bench_vec_raw")
        for (let i = 0; i < N; i += 1000) {
          const chunk = vectors.slice(i, i + 1000)
          const params: Array<unknown> = []
          const placeholders = chunk.map((v, j) => {
            params.push(i + j, Buffer.from(v.buffer))
            return `($${2 * j + 1}, $${2 * j + 2})`
          })
          await c.query(`insert into bench_vec_raw (id, v) values ${placeholders.join(",")}`, params)
        }
        await c.query("commit")
      } finally {
        c.release()
      }
    }
    const tPgInsert = await time(rawPgInsert, { repeat: 3 })
    const tPgRead = await time(
      async () => (await pool.query("select id, v from bench_vec_raw")).rows.map((r) => Vector.decodeUnsafe(r.v)),
      { repeat: 3 }
    )
    await pool.query("drop table bench_vec_raw")
    await pool.end()
    const schema = `bench_${process.pid}`
    const p = await Effect.runPromise(ours("pg", PostgresStorage.layer({ url, schema, poolSize: 2 })))
    const cleanup = new pg.Pool({ connectionString: url, max: 1 })
    await cleanup.query(`drop schema ${schema} cascade`)
    await cleanup.end()
    rows.push(row(`pg: insert ${N} x ${DIM}-d vectors (one transaction)`, p.tInsert, "ms", tPgInsert))
    rows.push(row(`pg: read ${N} vectors`, p.tRead, "ms", tPgRead))
  } else {
    console.warn("ORG_TEST_PG_URL is not set: PostgreSQL rows skipped")
  }
  fs.rmSync(dir, { recursive: true, force: true })
  report("storage", rows)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
