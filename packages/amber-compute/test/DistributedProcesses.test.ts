/**
 * Real processes: `amber worker` processes on the local PostgreSQL, one of them
 * SIGKILLed midway through a run; and the `amber` CLI against a config on SQLite.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import pg from "pg"
import { StorageTesting } from "@org/storage/testing"
import { AmberConfig, DistributedExecutor, Resolver } from "@org/amber-compute"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(import.meta.dirname, "../src/bin/amber.ts")
const configPath = path.join(import.meta.dirname, "fixtures/distributed.config.ts")
const url = StorageTesting.pgUrl
// tsx's loader by path, so that the CLI can run in any working directory
const tsx = pathToFileURL(path.join(root, "node_modules/tsx/dist/loader.mjs")).href

interface Proc {
  readonly child: ChildProcess
  readonly output: () => { stdout: string; stderr: string }
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Starts `amber <args>` (node with tsx's loader, so that SIGKILL reaches the real process). */
const amber = (args: ReadonlyArray<string>, env: Record<string, string>, cwd = root): Proc => {
  const child = spawn(process.execPath, ["--conditions=@org/source", "--import", tsx, bin, ...args], {
    cwd,
    env: { ...process.env, ...env, CI: "1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d) => (stdout += d))
  child.stderr!.on("data", (d) => (stderr += d))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal }))
  )
  return { child, output: () => ({ stdout, stderr }), exit }
}

const run = (args: ReadonlyArray<string>, env: Record<string, string>, cwd?: string) =>
  Effect.promise(async () => {
    const p = amber(args, env, cwd)
    const { code } = await p.exit
    return { code, ...p.output() }
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "amber-dist-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Every compute call the processes recorded: `feature entity` -> count. */
const calls = (dir: string) => {
  const counts = new Map<string, number>()
  for (const file of fs.readdirSync(dir).filter((f) => f.startsWith("calls-"))) {
    for (const line of fs.readFileSync(path.join(dir, file), "utf8").split("\n")) {
      if (!line) continue
      const [feature, entity] = line.split(" ")
      const key = `${feature} ${entity}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
  }
  return counts
}

const totalCalls = (dir: string) => [...calls(dir).values()].reduce((a, b) => a + b, 0)

describe("amber CLI on SQLite", () => {
  it.live(
    "plan, run and status as a child process; bad flags and unknown features fail with one line",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const env = {
          AMBER_STORE: `sqlite:${path.join(dir, "store.db")}`,
          AMBER_ENTITIES: "12",
          AMBER_FAIL_ENTITY: "art-3"
        }
        const entities = ["-e", "art-1", "-e", "art-2", "-e", "art-3"]
        const plan = yield* run(["plan", "--config", configPath, "-f", "art.score@1", ...entities], env)
        expect(plan.code).toBe(0)
        expect(plan.stdout).toContain("art.score@1 (3 entities: 3 missing)")
        expect(plan.stdout).toContain("[tensor] art.tensor@1")
        const first = yield* run(["run", "--config", configPath, "-f", "art.score", ...entities], env)
        // art-3's tensor fails, so its color and score are blocked: the run reports them and exits 1
        expect(first.code).toBe(1)
        expect(first.stdout).toContain("art.score@1: 3 entities, 6 computed, 0 cached, 3 failed")
        expect(first.stderr).toMatch(/^planned run-\S+: art.score@1 on 3 entities, 9 value\(s\) to compute/m)
        expect(first.stderr).toMatch(/^failed art.tensor@1 art-3: ComputeFailedError: /m)
        expect(first.stderr.trim().split("\n").at(-1)).toMatch(/^amber: ComputeConfigError: 3 value\(s\) failed/)

        const status = yield* run(["status", "--config", configPath], env)
        expect(status.code).toBe(3)
        expect(status.stdout).toMatch(
          /^art.tensor@1: 12 entities, 2 stored, 10 missing, 0 blocked, 1 failed; last error \(art-3\)/m
        )

        const again = yield* run(["run", "--config", configPath, "-f", "art.score", "-e", "art-1", "--json"], env)
        expect(again.code).toBe(0)
        expect(JSON.parse(again.stdout)).toMatchObject({ computed: 0, cached: 1, entities: 1 })

        // the trigger catches up with the feed (12 added images), then a backfill of every artwork
        const fixed = { ...env, AMBER_FAIL_ENTITY: "" }
        const trigger = yield* run(
          ["trigger", "--config", configPath, "--name", "t1", "-f", "art.color", "--once"],
          fixed
        )
        expect(trigger.code).toBe(0)
        expect(trigger.stderr).toContain("trigger t1: 12 change(s) processed")
        const backfill = yield* run(["backfill", "--config", configPath, "-f", "art.score", "--kind", "artwork"], fixed)
        expect(backfill.code).toBe(0)
        expect(backfill.stdout).toMatch(/^art.score@1: 12 entities, \d+ computed, \d+ cached, 0 failed/m)

        const badFlag = yield* run(["worker", "--config", configPath, "--concurrency", "many"], env)
        expect(badFlag.code).toBe(2)
        expect(badFlag.stdout + badFlag.stderr).toContain("'many' is not a integer")
        const unknown = yield* run(["run", "--config", configPath, "-f", "nope", "-e", "art-1"], env)
        expect(unknown.code).toBe(1)
        expect(unknown.stderr.trim().split("\n")).toEqual([
          expect.stringMatching(/^amber: UnknownFeatureError: .*nope/)
        ])
        const verbose = yield* run(["run", "--config", configPath, "-f", "nope", "-e", "art-1", "--verbose"], env)
        expect(verbose.code).toBe(1)
        expect(verbose.stderr.trim().split("\n").length).toBeGreaterThan(1)

        // the README's config module, in a fresh working directory (its SQLite file lands there)
        const example = path.join(import.meta.dirname, "../examples/amber.config.mjs")
        const readme = yield* run(
          ["run", "--config", example, "-f", "artwork.bucket", "-e", "art-1", "-e", "art-2"],
          {},
          dir
        )
        expect(readme.code).toBe(0)
        expect(readme.stdout).toContain("artwork.bucket@1: 2 entities, 4 computed, 0 cached, 0 failed")
        expect(fs.existsSync(path.join(dir, "amber.db"))).toBe(true)

        const noQueue = yield* run(["worker", "--config", configPath], env)
        expect(noQueue.code).toBe(1)
        expect(noQueue.stderr.trim()).toMatch(/^amber: ComputeConfigError: the config has no `distributed` options/)
      }).pipe(Effect.scoped),
    300_000
  )
})

describe.skipIf(!url)("amber workers on PostgreSQL", () => {
  if (!url) console.warn(`${StorageTesting.PG_URL_ENV} is not set: the distributed process tests are skipped`)

  it.live(
    "3 workers, one SIGKILLed midway: every value once, every compute once per key except the killed worker's tasks in flight",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const suffix = `${process.pid}_${Date.now().toString(36)}`
        const storeSchema = `amber_kill_store_${suffix}`
        const queueSchema = `amber_kill_jobs_${suffix}`
        const workerTimeoutMs = 3000
        const env = {
          AMBER_PG_URL: url!,
          AMBER_STORE: `pg:${storeSchema}`,
          AMBER_QUEUE_SCHEMA: queueSchema,
          AMBER_ENTITIES: "1000",
          AMBER_BATCH: "25",
          AMBER_WORK_MS: "5",
          AMBER_LEASE_MS: "2000",
          AMBER_WORKER_TIMEOUT_MS: String(workerTimeoutMs),
          AMBER_CALLS_DIR: dir
        }
        Object.assign(process.env, env)
        const pool = yield* Effect.acquireRelease(
          Effect.sync(() => new pg.Pool({ connectionString: url, max: 2 })),
          (p) =>
            Effect.promise(async () => {
              await p.query(
                `drop schema if exists ${storeSchema} cascade; drop schema if exists ${queueSchema} cascade`
              )
              await p.end()
            })
        )
        const q = <A = any>(text: string, values: Array<unknown> = []) =>
          Effect.promise(() => pool.query(text, values).then((r) => r.rows as Array<A>))

        const config = yield* AmberConfig.load(configPath)
        // the queue's tables exist before the workers start
        yield* Effect.scoped(DistributedExecutor.queue(config.distributed!))
        const workers = Array.from({ length: 3 }, () =>
          amber(["worker", "--config", configPath, "--concurrency", "2"], env)
        )
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => workers.forEach((w) => w.child.exitCode === null && w.child.kill("SIGKILL")))
        )
        const started = Date.now()
        while ((yield* q(`select count(*)::int as n from ${queueSchema}.amber_workers`))[0].n < 3) {
          if (Date.now() - started > 240_000) {
            return yield* Effect.die(
              new Error(`workers did not start: ${workers.map((w) => w.output().stderr).join("\n")}`)
            )
          }
          yield* Effect.sleep(200)
        }

        const entities = Array.from({ length: 1000 }, (_, i) => `art-${i}`)
        const t0 = Date.now()
        const materialize = yield* Resolver.materialize("art.score@1", entities).pipe(
          Effect.provide(
            Resolver.layer(config.mesh, { batchSize: 25 }).pipe(
              Layer.provide(DistributedExecutor.layer(config.distributed!)),
              Layer.provideMerge(config.layer)
            )
          ),
          Effect.fork
        )
        // midway (in the second level), while the victim runs a task it started a moment ago
        const victim = workers[0]!
        while (totalCalls(dir) < 1300) yield* Effect.sleep(50)
        const [victimRow] = yield* q<{ id: string }>(`select id from ${queueSchema}.amber_workers where pid = $1`, [
          victim.child.pid
        ])
        while (
          (yield* q(
            `select 1 from ${queueSchema}.amber_tasks
             where worker = $1 and state = 'running' and started_at > now() - interval '300 milliseconds'`,
            [victimRow!.id]
          )).length === 0
        ) {
          yield* Effect.sleep(20)
        }
        victim.child.kill("SIGKILL")
        yield* Effect.promise(() => victim.exit)
        const [{ now: killedAt }] = yield* q<{ now: Date }>("select now()")
        const t1 = Date.now()
        // what the dead worker was running: its rows stay as they were until the reaper releases them
        const inFlight = yield* q<{ seq: number; feature: string; entities: Array<string> }>(
          `select seq, feature, entities from ${queueSchema}.amber_tasks where worker = $1 and state = 'running'`,
          [victimRow!.id]
        )
        expect(inFlight.length).toBeGreaterThan(0)

        const result = yield* Fiber.join(materialize)
        const t2 = Date.now()
        expect(result.failed).toEqual([])
        expect(result.computed + result.cached).toBe(3000)

        // every value exists exactly once
        const values = yield* q<{ feature: string; n: number }>(
          `select feature, count(*)::int as n, count(distinct entity)::int as d from ${storeSchema}.amber_values
           where invalidated_at is null group by feature order by feature`
        )
        expect(values).toEqual([
          { feature: "art.color", n: 1000, d: 1000 },
          { feature: "art.score", n: 1000, d: 1000 },
          { feature: "art.tensor", n: 1000, d: 1000 }
        ])

        // every compute ran once per key, except keys of the tasks in flight on the killed worker
        const allowed = new Set(inFlight.flatMap((t) => t.entities.map((e) => `${t.feature} ${e}`)))
        const counts = calls(dir)
        expect(counts.size).toBe(3000)
        const repeated = [...counts].filter(([, n]) => n > 1)
        expect(repeated.filter(([key, n]) => !allowed.has(key) || n > 2)).toEqual([])

        // the dead worker's tasks were released within the bounded time (then started as soon as a worker was free)
        const retaken = yield* q<{ seq: number; queued_at: Date; started_at: Date; attempts: number; worker: string }>(
          `select seq, queued_at, started_at, attempts, worker from ${queueSchema}.amber_tasks
           where run = $1 and seq = any($2::int[])`,
          [result.run, inFlight.map((t) => t.seq)]
        )
        const releaseMs = Math.max(...retaken.map((r) => r.queued_at.getTime() - killedAt.getTime()))
        const takeoverMs = Math.max(...retaken.map((r) => r.started_at.getTime() - killedAt.getTime()))
        for (const r of retaken) {
          expect(r.attempts).toBe(2)
          expect(r.worker).not.toBe(victimRow!.id)
        }
        // worker timeout, a heartbeat interval and a loaded machine's slack
        expect(releaseMs).toBeLessThan(workerTimeoutMs + 5000)
        console.log(
          `kill test: run ${t2 - t0} ms (killed at ${t1 - t0} ms, ${t2 - t1} ms after the kill); ` +
            `${inFlight.length} task(s) in flight on the killed worker (${allowed.size} keys), released ${releaseMs} ms after the kill and restarted after ${takeoverMs} ms ` +
            `(worker timeout ${workerTimeoutMs} ms); ${repeated.length} key(s) computed twice; ` +
            `computed ${result.computed}, cached ${result.cached}`
        )

        // the survivors stop cleanly on SIGTERM and leave the worker table
        for (const w of workers.slice(1)) w.child.kill("SIGTERM")
        const exits = yield* Effect.promise(() => Promise.all(workers.slice(1).map((w) => w.exit)))
        expect(exits.map((e) => e.code)).toEqual([0, 0])
        const left = yield* q(`select id from ${queueSchema}.amber_workers where pid <> $1`, [victim.child.pid])
        expect(left).toEqual([])
      }).pipe(Effect.scoped),
    480_000
  )
})
