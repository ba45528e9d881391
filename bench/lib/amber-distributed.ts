/**
 * The distributed rows of bench/amber-compute.ts: `amber worker` processes on
 * PostgreSQL taking CPU-bound tasks (each value burns AMBER_BURN_MS of CPU), one
 * worker against two in the same run, and the job engine's per-task overhead
 * (a task added to the moment a waiting worker starts it).
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { AmberConfig, DistributedExecutor, Resolver } from "@org/amber-compute"
import { row, type Row } from "./report.js"

const root = path.resolve(import.meta.dirname, "../..")
const bin = path.join(root, "packages/amber-compute/src/bin/amber.ts")
const configPath = path.join(root, "packages/amber-compute/test/fixtures/distributed.config.ts")

const PER_PHASE = 120
const BURN_MS = 20
const LATENCY_RUNS = 20

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export const distributedRows = async (url: string): Promise<Array<Row>> => {
  const suffix = `${process.pid}_${Date.now().toString(36)}`
  const storeSchema = `bench_dist_store_${suffix}`
  const queueSchema = `bench_dist_jobs_${suffix}`
  const env = {
    AMBER_PG_URL: url,
    AMBER_STORE: `pg:${storeSchema}`,
    AMBER_QUEUE_SCHEMA: queueSchema,
    AMBER_ENTITIES: String(4 * PER_PHASE + LATENCY_RUNS),
    AMBER_BURN_MS: String(BURN_MS),
    AMBER_BATCH: "10",
    AMBER_WORKER_TIMEOUT_MS: "10000"
  }
  Object.assign(process.env, env)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  const workers: Array<ChildProcess> = []
  const disposers: Array<() => Promise<void>> = []
  let workerLog = ""
  const startWorker = () => {
    const child = spawn(
      process.execPath,
      ["--conditions=@org/source", "--import", "tsx", bin, "worker", "--config", configPath],
      { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] }
    )
    // the worker's lines (one per task) are kept for a failure's message
    child.stderr!.on("data", (d) => (workerLog = (workerLog + d).slice(-4000)))
    workers.push(child)
    return child
  }
  const stopWorkers = async () => {
    await Promise.all(
      workers.splice(0).map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.exitCode !== null) return resolve()
            w.on("exit", () => resolve())
            w.kill("SIGTERM")
          })
      )
    )
  }
  const waitForWorkers = async (n: number) => {
    const deadline = Date.now() + 300_000
    for (;;) {
      const { rows } = await pool.query(`select count(*)::int as n from ${queueSchema}.amber_workers`)
      if (rows[0].n >= n) return
      if (Date.now() > deadline) throw new Error(`${n} worker(s) did not start: ${workerLog}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  try {
    const config = await Effect.runPromise(AmberConfig.load(configPath))
    const app = Resolver.layer(config.mesh, { batchSize: 10 }).pipe(
      Layer.provide(DistributedExecutor.layer(config.distributed!)),
      Layer.provideMerge(config.layer)
    )
    await Effect.runPromise(Effect.scoped(DistributedExecutor.queue(config.distributed!)))
    const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => `art-${from + i}`)
    const runtime = ManagedRuntime.make(app)
    disposers.push(() => runtime.dispose())
    const materialize = (entities: ReadonlyArray<string>) =>
      runtime.runPromise(Resolver.materialize("art.tensor@1", entities))
    const timed = async (entities: ReadonlyArray<string>) => {
      const t0 = performance.now()
      const result = await materialize(entities)
      if (result.computed !== entities.length)
        throw new Error(`expected ${entities.length} computed, got ${result.computed}`)
      return performance.now() - t0
    }

    // warm-up: the store's tables and the first connections
    startWorker()
    await waitForWorkers(1)
    await timed(ids(4 * PER_PHASE, 5))
    const one = await timed(ids(0, PER_PHASE))
    startWorker()
    await waitForWorkers(2)
    const two = await timed(ids(PER_PHASE, PER_PHASE))
    // one more pass of one worker, after the two: the machine's load drifts
    await stopWorkers()
    await pool.query(`delete from ${queueSchema}.amber_workers`)
    startWorker()
    await waitForWorkers(1)
    const oneAgain = await timed(ids(2 * PER_PHASE, PER_PHASE))
    startWorker()
    await waitForWorkers(2)
    const twoAgain = await timed(ids(3 * PER_PHASE, PER_PHASE))
    const oneMs = Math.min(one, oneAgain)
    const twoMs = Math.min(two, twoAgain)

    // per-task overhead: one task at a time to an idle worker
    // one idle worker for the latency
    await stopWorkers()
    await pool.query(`delete from ${queueSchema}.amber_workers`)
    startWorker()
    await waitForWorkers(1)
    const latency: Array<number> = []
    for (const entity of ids(4 * PER_PHASE + 5, LATENCY_RUNS - 5)) {
      const t0 = performance.now()
      await materialize([entity])
      latency.push(performance.now() - t0)
    }
    const { rows: waits } = await pool.query(
      `select (extract(epoch from (started_at - queued_at)) * 1000)::float8 as ms
       from ${queueSchema}.amber_tasks t where cardinality(array(select jsonb_array_elements_text(t.entities))) = 1`
    )
    const addToStart = median(waits.map((r) => Number(r.ms)))
    const load = os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")
    const note = `${os.cpus().length} CPUs, shared (load average ${load} at the end)`
    return [
      row("distributed: 1 worker, values/s (20 ms CPU each)", (PER_PHASE / oneMs) * 1000, "values/s", null, note),
      row(
        "distributed: 2 workers vs 1, throughput",
        (PER_PHASE / twoMs) * 1000,
        "values/s",
        (PER_PHASE / oneMs) * 1000,
        `goal >= 1.7x; passes (1, 2, 1, 2 workers) ${[one, two, oneAgain, twoAgain].map(Math.round).join(", ")} ms for ${PER_PHASE} values; ${note}`
      ),
      row(
        "distributed: engine overhead add -> start (idle worker)",
        addToStart,
        "ms",
        null,
        `median of ${waits.length} single-entity tasks`
      ),
      row(
        "distributed: one-entity run, end to end",
        median(latency),
        "ms",
        null,
        `median of ${latency.length}: plan, add, start, compute (${BURN_MS} ms), store, settle`
      )
    ]
  } finally {
    for (const dispose of disposers) await dispose()
    await stopWorkers()
    await pool.query(`drop schema if exists ${storeSchema} cascade; drop schema if exists ${queueSchema} cascade`)
    await pool.end()
  }
}
