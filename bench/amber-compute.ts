/**
 * @org/amber-compute against a hand-written loop making the same store calls, in
 * one run, on SQLite (and PostgreSQL when ORG_TEST_PG_URL is set):
 * - resolver overhead: 10,000 entities x a 3-deep chain of trivial algorithms,
 *   cold (nothing stored) and fully cached;
 * - planning scale: a 3-feature mesh over 100,000 entities on SQLite (time and
 *   peak RSS, in a fresh process);
 * - distributed rows: see the marked section below.
 * - the machine's load average at the start and end of the run.
 * Run: npm run bench -- amber-compute [--only overhead|plan|distributed[,...]]
 * (a partial run keeps the other sections' rows of bench/results/amber-compute.json).
 */
import { Effect, Layer, ManagedRuntime, Option, Schema } from "effect"
import { spawnSync } from "node:child_process"
import pg from "pg"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Database } from "@org/storage"
import { PostgresStorage } from "@org/storage/pg"
import { SqliteStorage } from "@org/storage/sqlite"
import { FeatureSpec, FeatureStore, Fingerprint } from "@org/amber-store"
import { Algorithm, EntitySource, Executor, Mesh, Resolver } from "@org/amber-compute"
import { distributedRows } from "./lib/amber-distributed.js"
import { report, row, type Row } from "./lib/report.js"

const N = 10_000
const BATCH = 100
/** Rounds of each side (alternating); BENCH_REPEAT=3 for a median of three where the machine allows. */
const REPEAT = Number(process.env.BENCH_REPEAT ?? 1)
const PLAN_N = 100_000
/** Fully cached runs of each side per round (the median counts). */
const WARM_RUNS = 3

const A = FeatureSpec.make({ name: "bench.a", version: 1, entity: "artwork", value: Schema.Number })
const B = FeatureSpec.make({ name: "bench.b", version: 1, entity: "artwork", value: Schema.Number })
const C = FeatureSpec.make({ name: "bench.c", version: 1, entity: "artwork", value: Schema.Number })

const algorithms = [
  Algorithm.make({
    feature: A,
    inputs: { image: Algorithm.asset("image") },
    compute: ({ inputs }) => Effect.succeed(inputs.image.contentHash.length)
  }),
  Algorithm.make({
    feature: B,
    inputs: { a: Algorithm.feature(A) },
    compute: ({ inputs }) => Effect.succeed(inputs.a + 1)
  }),
  Algorithm.make({
    feature: C,
    inputs: { b: Algorithm.feature(B) },
    compute: ({ inputs }) => Effect.succeed(inputs.b * 2)
  })
] as const

const catalog = (n: number) => {
  const entities = Array.from({ length: n }, (_, i) => ({ id: `artwork-${i}`, kind: "artwork" }))
  const assets = entities.map((e) => ({
    entityId: e.id,
    role: "image",
    contentHash: createHash("sha256").update(e.id).digest("hex")
  }))
  return { ids: entities.map((e) => e.id), source: EntitySource.memory({ entities, assets }) }
}

/**
 * The hand-written loop: per feature in dependency order, per batch of 100:
 * fingerprints (asset hash, then upstream fingerprints), one getMany, getOrCompute
 * for each miss; values kept in memory for the next feature.
 */
const handLoop = (store: FeatureStore.Service, source: EntitySource.Service, ids: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const assets = yield* source.assets(ids, "image")
    const fps = {
      a: [] as Array<Fingerprint.Fingerprint>,
      b: [] as Array<Fingerprint.Fingerprint>,
      c: [] as Array<Fingerprint.Fingerprint>
    }
    for (let i = 0; i < ids.length; i++) {
      const a = Fingerprint.unsafeMake({ assets: { image: assets[i]!.contentHash }, upstream: [], params: null })
      const b = Fingerprint.unsafeMake({ assets: {}, upstream: [Fingerprint.upstream(A, ids[i]!, a)], params: null })
      const c = Fingerprint.unsafeMake({ assets: {}, upstream: [Fingerprint.upstream(B, ids[i]!, b)], params: null })
      fps.a.push(a)
      fps.b.push(b)
      fps.c.push(c)
    }
    // top-down: what is stored of c, then (for the misses only) of b and a
    const values = { a: new Map<number, number>(), b: new Map<number, number>(), c: new Map<number, number>() }
    const missing = { a: [] as Array<number>, b: [] as Array<number>, c: [] as Array<number> }
    const look = (spec: FeatureSpec.FeatureSpec<number>, key: "a" | "b" | "c", indices: ReadonlyArray<number>) =>
      Effect.gen(function* () {
        const found = yield* store.getMany(
          spec,
          indices.map((i) => ({ entity: ids[i]!, fingerprint: fps[key][i]! }))
        )
        indices.forEach((i, j) => {
          const v = found[j]!
          if (Option.isSome(v)) values[key].set(i, v.value)
          else missing[key].push(i)
        })
      })
    yield* look(
      C,
      "c",
      ids.map((_, i) => i)
    )
    if (missing.c.length > 0) yield* look(B, "b", missing.c)
    if (missing.b.length > 0) yield* look(A, "a", missing.b)
    const steps = [
      { spec: A, key: "a", f: (i: number) => assets[i]!.contentHash.length },
      { spec: B, key: "b", f: (i: number) => values.a.get(i)! + 1 },
      { spec: C, key: "c", f: (i: number) => values.b.get(i)! * 2 }
    ] as const
    for (const step of steps) {
      const todo = missing[step.key]
      for (let s = 0; s < todo.length; s += BATCH) {
        yield* Effect.forEach(
          todo.slice(s, s + BATCH),
          (i) =>
            Effect.map(
              store.getOrCompute(
                step.spec,
                ids[i]!,
                fps[step.key][i]!,
                Effect.sync(() => step.f(i)),
                {
                  producer: `${step.spec.name}@1`,
                  run: "hand"
                }
              ),
              (v) => values[step.key].set(i, v)
            ),
          { concurrency: 8, discard: true }
        )
      }
    }
    return values.c.size
  })

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const overhead = async (label: string, fresh: () => Layer.Layer<Database.Database, any>, rows: Array<Row>) => {
  const { ids, source } = catalog(N)
  const mesh = await Effect.runPromise(Mesh.make(algorithms))
  const stack = (db: Layer.Layer<Database.Database, any>) =>
    Resolver.layer(mesh, { batchSize: BATCH }).pipe(
      Layer.provideMerge(
        Layer.mergeAll(FeatureStore.layer(), EntitySource.layerMemory(source), Executor.layerLocal({ concurrency: 1 }))
      ),
      Layer.provideMerge(db)
    )
  const times = {
    cold: { ours: [] as Array<number>, hand: [] as Array<number> },
    warm: { ours: [] as Array<number>, hand: [] as Array<number> },
    /** Fully cached again, by a resolver that remembers no fingerprint (fingerprintCache: 0). */
    unremembered: [] as Array<number>
  }
  for (let i = 0; i < REPEAT; i++) {
    for (const side of i % 2 === 0 ? (["ours", "hand"] as const) : (["hand", "ours"] as const)) {
      const runtime = ManagedRuntime.make(stack(fresh()))
      try {
        const resolver = await runtime.runPromise(Resolver.Resolver)
        const store = await runtime.runPromise(FeatureStore.FeatureStore)
        const once = () =>
          side === "ours"
            ? runtime.runPromise(
                Effect.map(resolver.materialize(C, ids), (r) => {
                  if (r.failed.length > 0) throw new Error(`failures: ${r.failed[0]!.message}`)
                  return r.computed + r.cached
                })
              )
            : runtime.runPromise(handLoop(store, source, ids))
        const t0 = performance.now()
        await once()
        const cold = performance.now() - t0
        // a cached run is short (a GC pause weighs on one): the median of WARM_RUNS
        const warms: Array<number> = []
        for (let w = 0; w < WARM_RUNS; w++) {
          const t1 = performance.now()
          await once()
          warms.push(performance.now() - t1)
        }
        const warm = median(warms)
        if (side === "ours") {
          const plain = await runtime.runPromise(Resolver.make(mesh, { batchSize: BATCH, fingerprintCache: 0 }))
          const plains: Array<number> = []
          for (let w = 0; w < WARM_RUNS; w++) {
            const t2 = performance.now()
            const r = await runtime.runPromise(plain.materialize(C, ids))
            if (r.computed !== 0 || r.failed.length > 0) throw new Error(`unremembered: ${r.computed} computed`)
            plains.push(performance.now() - t2)
          }
          times.unremembered.push(median(plains))
        }
        const counters = await runtime.runPromise(store.counters)
        if (counters.computations !== 3 * N) throw new Error(`${side}: ${counters.computations} computations`)
        times.cold[side].push(cold)
        times.warm[side].push(warm)
      } finally {
        await runtime.dispose()
      }
    }
  }
  const cold = { ours: median(times.cold.ours), hand: median(times.cold.hand) }
  const warm = { ours: median(times.warm.ours), hand: median(times.warm.hand) }
  const note = `batches of ${BATCH}; getMany per feature top-down, getOrCompute per miss; median of ${REPEAT} (cached rows: of ${REPEAT} x ${WARM_RUNS} runs); goal ratio <= 1.5`
  rows.push(row(`${label}: materialize ${N} entities x 3-deep chain, cold`, cold.ours, "ms", cold.hand, note))
  rows.push(row(`${label}: materialize ${N} entities x 3-deep chain, fully cached`, warm.ours, "ms", warm.hand, note))
  rows.push(
    row(
      `${label}: materialize ${N} entities x 3-deep chain, fully cached, no fingerprint memo`,
      median(times.unremembered),
      "ms",
      warm.hand,
      `${note}; a resolver with fingerprintCache: 0 (the row above reuses the fingerprints its cold run made)`
    )
  )
}

/** In a fresh process: plans the mesh over 100,000 entities on a SQLite file; prints time and peak RSS. */
const planChild = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-plan-"))
  try {
    const { ids, source } = catalog(PLAN_N)
    const mesh = await Effect.runPromise(Mesh.make(algorithms))
    const runtime = ManagedRuntime.make(
      Resolver.layer(mesh, process.env.PLAN_CHUNK ? { chunkSize: Number(process.env.PLAN_CHUNK) } : {}).pipe(
        Layer.provideMerge(
          Layer.mergeAll(FeatureStore.layer(), EntitySource.layerMemory(source), Executor.layerLocal())
        ),
        Layer.provideMerge(SqliteStorage.layer({ filename: path.join(dir, "plan.db") }))
      )
    )
    const resolver = await runtime.runPromise(Resolver.Resolver)
    const rssBefore = process.memoryUsage().rss
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const plan = await runtime.runPromise(resolver.plan(C, ids))
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const cpuMs = (cpu.user + cpu.system) / 1000
    const entries = plan.features.reduce((n, f) => n + f.entries.length, 0)
    if (entries !== 3 * PLAN_N) throw new Error(`plan has ${entries} entries`)
    await runtime.dispose()
    const peak = process.resourceUsage().maxRSS * 1024
    process.stdout.write(`${JSON.stringify({ ms, cpuMs, peakMb: peak / 2 ** 20, baseMb: rssBefore / 2 ** 20 })}\n`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const planScale = (rows: Array<Row>) => {
  const r = spawnSync(process.execPath, ["--conditions=@org/source", "--import", "tsx", import.meta.filename, "plan"], {
    cwd: path.resolve(import.meta.dirname, ".."),
    encoding: "utf8"
  })
  if (r.status !== 0) throw new Error(`plan child failed: ${r.stderr}`)
  const { ms, cpuMs, peakMb, baseMb } = JSON.parse(r.stdout.trim().split("\n").at(-1)!)
  rows.push(
    row(
      `sqlite: plan a 3-feature mesh over ${PLAN_N} entities (nothing stored)`,
      ms,
      "ms",
      null,
      `goal < 10000 ms; ${cpuMs.toFixed(0)} ms of CPU (user + system) in that time`
    )
  )
  rows.push(
    row(
      `sqlite: plan ${PLAN_N} entities, peak RSS of the process`,
      peakMb,
      "MB",
      null,
      `goal < 500 MB; ${baseMb.toFixed(0)} MB before planning (tsx, modules, catalog of ${PLAN_N} in memory), the plan ${(peakMb - baseMb).toFixed(0)} MB above it; maxRSS of a fresh child process`
    )
  )
}

// ---------------------------------------------------------------------------
// DISTRIBUTED ROWS (amber-dist helper): 2 worker processes vs 1 on CPU-bound tasks
// (~20 ms of CPU each; goal >= 1.7x throughput on 2 cores) and the job engine's
// per-task overhead (add -> start). Push rows into `rows` here.
const distributed = async (rows: Array<Row>): Promise<void> => {
  const url = process.env.ORG_TEST_PG_URL
  if (!url || process.env.BENCH_SKIP_DISTRIBUTED !== undefined) {
    console.warn("ORG_TEST_PG_URL is not set (or BENCH_SKIP_DISTRIBUTED is): distributed rows skipped")
    return
  }
  rows.push(...(await distributedRows(url)))
}
// ---------------------------------------------------------------------------

/** The sections of the run; `--only distributed` (or `--only overhead,plan`) runs a subset. */
const SECTIONS = ["overhead", "plan", "distributed", "machine"] as const
type Section = (typeof SECTIONS)[number]

/** The section a row belongs to (by its metric), for merging a partial run into the file. */
const sectionOf = (metric: string): Section =>
  metric.startsWith("distributed:") || metric.startsWith("machine ceiling:")
    ? "distributed"
    : metric.startsWith("machine:")
      ? "machine"
      : metric.includes(": plan ")
        ? "plan"
        : "overhead"

const parseOnly = (argv: ReadonlyArray<string>): ReadonlySet<Section> => {
  const wanted = new Set<Section>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = arg === "--only" ? argv[++i] : arg.startsWith("--only=") ? arg.slice("--only=".length) : undefined
    if (arg !== "--only" && value === undefined) {
      console.error(`unknown flag ${arg}; use --only ${SECTIONS.slice(0, 3).join("|")} (comma-separated)`)
      process.exit(2)
    }
    for (const name of (value ?? "").split(",").filter(Boolean)) {
      if (!(SECTIONS as ReadonlyArray<string>).includes(name) || name === "machine") {
        console.error(`--only: unknown section "${name}"; sections: ${SECTIONS.slice(0, 3).join(", ")}`)
        process.exit(2)
      }
      wanted.add(name as Section)
    }
  }
  return wanted.size === 0 ? new Set(SECTIONS) : new Set([...wanted, "machine"])
}

const loadRow = (when: string) => {
  const [one, five, fifteen] = os.loadavg()
  return row(
    `machine: load average (1 min) at the ${when} of the run`,
    one!,
    "load",
    null,
    `${os.cpus().length} CPUs; 5 and 15 min: ${five!.toFixed(1)}, ${fifteen!.toFixed(1)}; ${new Date().toISOString()}`
  )
}

/**
 * Rows of the sections not run this time are kept from the previous file, so
 * `--only distributed` updates the distributed rows only.
 */
const merge = (ran: ReadonlySet<Section>, rows: ReadonlyArray<Row>): Array<Row> => {
  const file = path.resolve(import.meta.dirname, "results/amber-compute.json")
  let previous: Array<Row> = []
  try {
    previous = JSON.parse(fs.readFileSync(file, "utf8")) as Array<Row>
  } catch {
    previous = []
  }
  const all = [...previous.filter((r) => !ran.has(sectionOf(r.metric))), ...rows]
  return SECTIONS.flatMap((section) => all.filter((r) => sectionOf(r.metric) === section))
}

/** Drops the schemas a run created (`bench_compute_<pid>_<n>`); a failure to drop is reported, not thrown. */
const dropSchemas = async (url: string, schemas: ReadonlyArray<string>) => {
  const client = new pg.Client({ connectionString: url })
  try {
    await client.connect()
    for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`)
  } catch (e) {
    console.warn(`could not drop the schemas ${schemas.join(", ")}: ${e instanceof Error ? e.message : String(e)}`)
  } finally {
    await client.end().catch(() => undefined)
  }
}

const main = async () => {
  if (process.argv[2] === "plan") return planChild()
  const only = parseOnly(process.argv.slice(2))
  const started = Date.now()
  const rows: Array<Row> = [loadRow("start")]
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-compute-"))
  const url = process.env.ORG_TEST_PG_URL
  /** The PostgreSQL schemas this run created: dropped at the end, also when it fails. */
  const schemas: Array<string> = []
  let n = 0
  try {
    if (only.has("overhead")) {
      await overhead("sqlite", () => SqliteStorage.layer({ filename: path.join(dir, `db-${n++}.sqlite`) }), rows)
      if (url) {
        await overhead(
          "pg",
          () => {
            const schema = `bench_compute_${process.pid}_${n++}`
            schemas.push(schema)
            return PostgresStorage.layer({ url, schema, poolSize: 4 })
          },
          rows
        )
      } else console.warn("ORG_TEST_PG_URL is not set: PostgreSQL rows skipped")
    }
    if (only.has("plan") && process.env.BENCH_SKIP_PLAN === undefined) planScale(rows)
    if (only.has("distributed")) await distributed(rows)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
    if (url && schemas.length > 0) await dropSchemas(url, schemas)
  }
  rows.push(loadRow("end"))
  console.log(`sections: ${[...only].join(", ")} in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  report("amber-compute", merge(only, rows))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
