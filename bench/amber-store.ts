/**
 * @org/amber-store against the raw driver on the same table, in one run: SQLite
 * (better-sqlite3) and PostgreSQL (pg, when ORG_TEST_PG_URL is set).
 * Run: npm run bench -- amber-store
 */
import SqliteDatabase from "better-sqlite3"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { Database, Vector } from "@org/storage"
import { PostgresStorage } from "@org/storage/pg"
import { SqliteStorage } from "@org/storage/sqlite"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"
import { report, row, type Row } from "./lib/report.js"

const N = 10_000
const DIM = 512
const WARM = 2_000
const REPEAT = 9

const Spec = FeatureSpec.embedding({ name: "title.clip", version: 1, entity: "title", dimension: DIM })
const entities = Array.from({ length: N }, (_, i) => `title-${i}`)
const fingerprints = entities.map((_, i) =>
  Fingerprint.unsafeMake({ assets: { poster: createHash("sha256").update(String(i)).digest("hex") } })
)
const vectors = entities.map((_, i) => Float32Array.from({ length: DIM }, (_, j) => Math.sin(i * 0.37 + j * 0.011)))
const items = entities.map((entity, i) => ({ entity, fingerprint: fingerprints[i]!, value: vectors[i]! }))
const refs = entities.map((entity, i) => ({ entity, fingerprint: fingerprints[i]! }))
// what the raw baseline writes: the same columns and the same bytes as the store
const inputsText = fingerprints.map((f) => JSON.stringify(f.inputs))
const producer = "bench"
const run = "bench-run"

/**
 * Times ours and the raw baseline alternately (ours, raw, ours, raw, ...), so that both
 * see the same machine load, each run after its untimed `setup`; the first pair warms
 * up. Returns the median of each.
 */
const compare = async (
  ours: () => unknown,
  raw: () => unknown,
  setup: { readonly ours?: () => unknown; readonly raw?: () => unknown } = {}
): Promise<{ readonly ours: number; readonly raw: number; readonly minRatio: number }> => {
  const times = { ours: [] as Array<number>, raw: [] as Array<number> }
  for (let i = 0; i <= REPEAT; i++) {
    for (const side of ["ours", "raw"] as const) {
      await setup[side]?.()
      const t0 = performance.now()
      await (side === "ours" ? ours : raw)()
      if (i > 0) times[side].push(performance.now() - t0)
    }
  }
  const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const ours_ = median(times.ours)
  const raw_ = median(times.raw)
  // the fastest runs of each, less disturbed by other work on a shared machine
  return { ours: ours_, raw: raw_, minRatio: times.ours[0]! / times.raw[0]! }
}

const check = (got: ReadonlyArray<Float32Array | undefined>) => {
  for (let i = 0; i < N; i += 997) {
    const v = got[i]
    if (
      !v ||
      Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.byteLength), Buffer.from(vectors[i]!.buffer)) !== 0
    ) {
      throw new Error(`value ${i} read back wrong`)
    }
  }
}

interface Raw {
  /** How the raw side does putMany and getMany, for the notes. */
  readonly how: { readonly put: string; readonly get: string }
  readonly clear: () => Promise<unknown> | unknown
  readonly putMany: () => Promise<unknown> | unknown
  readonly getMany: () => Promise<ReadonlyArray<Float32Array | undefined>> | ReadonlyArray<Float32Array | undefined>
  readonly getOne: (i: number) => Promise<Float32Array | undefined> | Float32Array | undefined
}

const measure = async (
  label: string,
  storage: Layer.Layer<Database.Database, any>,
  makeRaw: () => Raw,
  rows: Array<Row>
): Promise<void> => {
  const runtime = ManagedRuntime.make(FeatureStore.layer().pipe(Layer.provideMerge(storage)))
  try {
    // the store's layer has migrated: the raw side may use its tables now
    const store = await runtime.runPromise(FeatureStore.FeatureStore)
    const raw = makeRaw()
    const clear = () => runtime.runPromise(Database.use("clear", (k) => k.deleteFrom("amber_values").execute()))
    const ours = {
      putMany: () =>
        runtime.runPromise(
          Effect.map(store.putMany(Spec, items, { producer, run }), (results) => {
            if (results.some((r) => r._tag === "Left")) throw new Error("putMany refused an item")
          })
        ),
      getMany: () =>
        runtime.runPromise(Effect.map(store.getMany(Spec, refs), (values) => values.map(Option.getOrUndefined)))
    }
    const put = await compare(ours.putMany, raw.putMany, { ours: clear, raw: raw.clear })
    // both tables are left filled by their last timed run
    check(await ours.getMany())
    check(await raw.getMany())
    const get = await compare(ours.getMany, raw.getMany)
    const warm = Effect.forEach(
      Array.from({ length: WARM }, (_, i) => i),
      (i) => store.getOrCompute(Spec, entities[i]!, fingerprints[i]!, Effect.die("warm cache: must not compute")),
      { discard: true }
    )
    const perKey = await compare(
      () => runtime.runPromise(warm),
      async () => {
        for (let i = 0; i < WARM; i++) if ((await raw.getOne(i)) === undefined) throw new Error("raw miss")
      }
    )
    rows.push(
      row(
        `${label}: putMany ${N} x ${DIM}-d embeddings (one transaction)`,
        put.ours,
        "ms",
        put.raw,
        `${raw.how.put}; fastest-run ratio ${put.minRatio.toFixed(3)}`
      )
    )
    rows.push(
      row(
        `${label}: getMany ${N} x ${DIM}-d embeddings`,
        get.ours,
        "ms",
        get.raw,
        `${raw.how.get}; fastest-run ratio ${get.minRatio.toFixed(3)}`
      )
    )
    rows.push(
      row(
        `${label}: getOrCompute on a warm cache, per key`,
        (perKey.ours * 1000) / WARM,
        "us/key",
        (perKey.raw * 1000) / WARM,
        `raw: a prepared select per key; fastest-run ratio ${perKey.minRatio.toFixed(3)}`
      )
    )
    const counters = await runtime.runPromise(store.counters)
    if (counters.computations !== 0) throw new Error("the warm cache computed")
  } finally {
    await runtime.dispose()
  }
}

/** Creates the store's tables where the raw baseline writes, so both use the same schema and indexes. */
const migrate = (storage: Layer.Layer<Database.Database, any>) =>
  Effect.runPromise(FeatureStore.make().pipe(Effect.provide(storage), Effect.asVoid))

const sqlite = async (dir: string, rows: Array<Row>) => {
  const rawFile = path.join(dir, "raw.db")
  await migrate(SqliteStorage.layer({ filename: rawFile }))
  const db = new SqliteDatabase(rawFile)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  const insert = db.prepare(
    "insert into amber_values (feature, version, params, entity, fingerprint, value_json, value_bytes, inputs, producer, run, created_at, compute_ms) values (?, ?, ?, ?, ?, null, ?, ?, ?, ?, ?, null)"
  )
  const putMany = db.transaction(() => {
    const now = Date.now()
    for (let i = 0; i < N; i++) {
      const f = fingerprints[i]!
      insert.run(
        Spec.name,
        Spec.version,
        f.params,
        entities[i],
        f.hash,
        Vector.encodeUnsafe(vectors[i]!),
        inputsText[i],
        producer,
        run,
        now
      )
    }
  })
  const one = db
    .prepare(
      "select value_bytes from amber_values where feature = ? and version = ? and params = ? and entity = ? and fingerprint = ? and invalidated_at is null"
    )
    .pluck()
  const getOne = (i: number) => {
    const bytes = one.get(Spec.name, Spec.version, fingerprints[i]!.params, entities[i], fingerprints[i]!.hash) as
      | Buffer
      | undefined
    return bytes === undefined ? undefined : Vector.decodeUnsafe(bytes)
  }
  await measure(
    "sqlite",
    SqliteStorage.layer({ filename: path.join(dir, "ours.db") }),
    () => ({
      how: { put: "raw: a prepared insert per row, one transaction", get: "raw: a prepared select per key" },
      clear: () => db.exec("delete from amber_values"),
      putMany: () => putMany(),
      getMany: () => entities.map((_, i) => getOne(i)),
      getOne
    }),
    rows
  )
  db.close()
}

const postgres = async (url: string, rows: Array<Row>) => {
  // one schema for both: the raw side runs on the store's own table (cleared between timed runs)
  const schema = `bench_amber_${process.pid}`
  const pool = new pg.Pool({ connectionString: url, max: 2, options: `-c search_path=${schema}` })
  const putMany = async () => {
    const client = await pool.connect()
    try {
      await client.query("begin")
      const now = Date.now()
      for (let start = 0; start < N; start += 1000) {
        const params: Array<unknown> = []
        const tuples: Array<string> = []
        for (let i = start; i < Math.min(N, start + 1000); i++) {
          const f = fingerprints[i]!
          const p = params.length
          params.push(Spec.name, Spec.version, f.params, entities[i], f.hash)
          params.push(Vector.encodeUnsafe(vectors[i]!), inputsText[i], producer, run, now)
          tuples.push(`(${Array.from({ length: 10 }, (_, j) => `$${p + j + 1}`).join(", ")})`)
        }
        await client.query(
          `insert into amber_values (feature, version, params, entity, fingerprint, value_bytes, inputs, producer, run, created_at) values ${tuples.join(", ")}`,
          params
        )
      }
      await client.query("commit")
    } finally {
      client.release()
    }
  }
  // one statement for any batch size: the keys travel as two arrays (unnamed, so it is planned
  // with the actual arrays each time; a named statement falls back to a generic plan after
  // five runs, which turns this join into a scan per key)
  const getMany = async () => {
    const result = await pool.query(
      "select k.i, v.value_bytes from unnest($4::text[], $5::text[]) with ordinality as k(entity, fingerprint, i) join amber_values v on v.entity = k.entity and v.fingerprint = k.fingerprint where v.feature = $1 and v.version = $2 and v.params = $3 and v.invalidated_at is null",
      [Spec.name, Spec.version, fingerprints[0]!.params, entities, fingerprints.map((f) => f.hash)]
    )
    const out: Array<Float32Array | undefined> = new Array(N)
    for (const r of result.rows) out[Number(r.i) - 1] = Vector.decodeUnsafe(r.value_bytes)
    return out
  }
  const getOne = async (i: number) => {
    const result = await pool.query({
      name: "amber-get-one",
      text: "select value_bytes from amber_values where feature = $1 and version = $2 and params = $3 and entity = $4 and fingerprint = $5 and invalidated_at is null",
      values: [Spec.name, Spec.version, fingerprints[i]!.params, entities[i], fingerprints[i]!.hash]
    })
    return result.rows[0] ? Vector.decodeUnsafe(result.rows[0].value_bytes) : undefined
  }
  try {
    await measure(
      "pg",
      PostgresStorage.layer({ url, schema, poolSize: 2 }),
      () => ({
        how: { put: "raw: 1000-row inserts, one transaction", get: "raw: one unnest(keys) join" },
        clear: () => pool.query("delete from amber_values"),
        putMany,
        getMany,
        getOne
      }),
      rows
    )
  } finally {
    await pool.query(`drop schema if exists ${schema} cascade`)
    await pool.end()
  }
}

const main = async () => {
  const rows: Array<Row> = []
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-amber-"))
  try {
    await sqlite(dir, rows)
    const url = process.env.ORG_TEST_PG_URL
    if (url) await postgres(url, rows)
    else console.warn("ORG_TEST_PG_URL is not set: PostgreSQL rows skipped")
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  report("amber-store", rows)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
