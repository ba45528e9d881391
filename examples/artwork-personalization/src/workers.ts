/**
 * `--workers N`: the feature mesh on @org/amber-compute's distributed executor. The demo hands its tasks to
 * graphile-worker jobs on PostgreSQL (schema `artwork_demo_jobs`) and starts N worker processes of its own
 * (`worker.ts`, each running `Worker.run` on the same mesh and layer); it stops them when it is done, or when it
 * fails or is interrupted. Nothing here re-implements resolution or triggering: the resolver and the trigger run as
 * they do in process, only the `Executor` in their context differs.
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import { Data, Layer } from "effect"
import { AmberConfig, type DistributedExecutor, EntitySource } from "@org/amber-compute"
import { FeatureStore } from "@org/amber-store"
import { type Catalog, type Derivative, Jasper, type Reader } from "@org/jasper"
import type { Database } from "@org/storage"
import { PostgresStorage } from "@org/storage/pg"
import { JOBS_SCHEMA } from "./cli.js"
import type * as M from "./mesh.js"

/** The demo's own PostgreSQL schema. */
export const SCHEMA = "artwork_demo"

/** The distributed executor's options: jobs beside the demo's schema; a silent worker is taken over after 10 s. */
export const executorOptions = (url: string): DistributedExecutor.Options => ({
  url,
  schema: JOBS_SCHEMA,
  workerTimeoutMs: 10_000,
  pollMs: 100
})

/** What the mesh reads from: the catalog (Jasper, as the entity source) and the feature store, on one database. */
export const meshLayer = (
  data: string,
  storage: Layer.Layer<Database.Database, unknown>,
  store: FeatureStore.Options = {}
): Layer.Layer<
  | FeatureStore.FeatureStore
  | EntitySource.EntitySource
  | Reader.Reader
  | Catalog.Catalog
  | Derivative.Derivatives
  | Database.Database,
  unknown
> =>
  Layer.mergeAll(FeatureStore.layer(store), EntitySource.layerJasper).pipe(
    Layer.provideMerge(
      Jasper.layer({ roots: [path.join(data, "media")], derivatives: path.join(data, "derivatives") })
    ),
    Layer.provideMerge(storage)
  )

/** The config a worker process runs: the demo's mesh and layer, and the job engine. */
export const workerConfig = (mesh: M.DemoMesh, data: string, url: string): AmberConfig.AmberConfig =>
  AmberConfig.define({
    mesh,
    // a worker killed mid-task leaves a claim in the store: another takes it over after this lease (default 30 s)
    layer: meshLayer(data, PostgresStorage.layer({ url, schema: SCHEMA }), { leaseMs: 10_000 }) as Layer.Layer<
      unknown,
      unknown,
      never
    >,
    distributed: executorOptions(url)
  })

/** Every worker process ended before the feature mesh was done (killed by a signal, crashed). */
export class WorkersLostError extends Data.TaggedError("WorkersLostError")<{ readonly message: string }> {}

export interface Workers {
  readonly count: number
  /** Tasks each worker has finished so far. */
  readonly tasks: ReadonlyArray<number>
  /** Workers that ended before the demo stopped them (a signal, a crash): how each ended. */
  readonly lost: ReadonlyArray<{ readonly worker: number; readonly pid: number; readonly how: string }>
  /** Settles when every worker has ended before the demo stopped them, with a one-line account. */
  readonly allLost: Promise<string>
  /** Asks every worker to stop (SIGTERM: it finishes its task and leaves), then kills any left after `graceMs`. */
  readonly stop: (graceMs?: number) => Promise<void>
}

/**
 * Starts `count` worker processes (`worker.ts` under the demo's own Node flags). Their output goes to `onLine`;
 * they are killed if this process exits first.
 */
export const startWorkers = (options: {
  readonly count: number
  readonly data: string
  readonly url: string
  readonly onLine?: (line: string) => void
}): Workers => {
  const script = path.join(import.meta.dirname, "worker.ts")
  const children: Array<ChildProcess> = []
  const tasks = Array.from({ length: options.count }, () => 0)
  const lost: Array<{ worker: number; pid: number; how: string }> = []
  let stopping = false
  let allLost: (message: string) => void = () => undefined
  const allLostPromise = new Promise<string>((resolve) => (allLost = resolve))
  const killAll = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  }
  process.on("exit", killAll)
  for (let i = 0; i < options.count; i++) {
    const child = spawn(process.execPath, [...process.execArgv, script], {
      env: { ...process.env, ARTWORK_WORKER_DATA: options.data, ARTWORK_WORKER_PG: options.url },
      stdio: ["ignore", "pipe", "pipe"]
    })
    // a worker that ends on its own (killed by a signal, crashed) leaves its task to the others: the executor hands
    // it over once the worker's heartbeat is older than workerTimeoutMs; with no worker left the run cannot finish
    child.once("exit", (code, signal) => {
      if (stopping) return
      const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`
      lost.push({ worker: i + 1, pid: child.pid ?? 0, how })
      const left = options.count - lost.length
      options.onLine?.(
        `worker ${i + 1}: ${how}` + (left > 0 ? `; ${left} worker(s) left take over its task` : "; no worker is left")
      )
      if (left === 0)
        allLost(
          `every worker process ended before the feature mesh was done (${lost.map((l) => `worker ${l.worker} ${l.how}`).join(", ")}); ` +
            "what they stored is kept: run the demo again to compute only what is missing"
        )
    })
    for (const stream of [child.stdout!, child.stderr!])
      readline.createInterface({ input: stream }).on("line", (line) => {
        if (line.trim() === "") return
        if (line.startsWith("done ")) tasks[i]!++
        options.onLine?.(`worker ${i + 1}: ${line}`)
      })
    children.push(child)
  }
  return {
    count: options.count,
    tasks,
    lost,
    allLost: allLostPromise,
    stop: async (graceMs = 20_000) => {
      stopping = true
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve()
              const timer = setTimeout(() => c.kill("SIGKILL"), graceMs)
              c.once("exit", () => {
                clearTimeout(timer)
                resolve()
              })
              c.kill("SIGTERM")
            })
        )
      )
      process.off("exit", killAll)
    }
  }
}
