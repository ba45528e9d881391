/**
 * Fault tests with real processes: racing children, a child killed while it holds
 * a claim, and PostgreSQL becoming unreachable (through a TCP proxy) mid-run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Schedule } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { sql } from "kysely"
import { Database } from "@org/storage"
import { PostgresStorage } from "@org/storage/pg"
import { StorageTesting } from "@org/storage/testing"
import { FeatureStore } from "@org/amber-store"
import { entityOf, fingerprintOf, TitleEmbedding, valueOf } from "./fixtures/specs.js"

const root = path.resolve(import.meta.dirname, "../../..")
const childScript = path.join(import.meta.dirname, "fixtures/child.ts")

interface ChildResult {
  readonly tag: string
  readonly pid: number
  readonly wrong: number
  readonly counters: FeatureStore.Counters
  readonly finishedAt: number
}

interface Child {
  readonly process: ChildProcess
  readonly result: Effect.Effect<ChildResult, Error>
}

/** Starts a child process; it is killed when the scope closes, if still running. */
const startChild = (args: Record<string, unknown>) =>
  Effect.acquireRelease(
    Effect.sync((): Child => {
      // node itself with tsx's loader (not the tsx wrapper, whose SIGKILL would leave the real child running)
      const child = spawn(
        process.execPath,
        ["--conditions=@org/source", "--import", "tsx", childScript, JSON.stringify(args)],
        {
          cwd: root,
          stdio: ["ignore", "pipe", "pipe"]
        }
      )
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (d) => (stdout += d))
      child.stderr!.on("data", (d) => (stderr += d))
      const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on("exit", (code, signal) => resolve({ code, signal }))
      )
      const result = Effect.flatMap(
        Effect.promise(() => done),
        ({ code, signal }) => {
          const line = stdout.trim().split("\n").at(-1)
          if (code !== 0 || !line) {
            return Effect.fail(new Error(`child ${String(args.tag)} exited ${code ?? signal}: ${stderr.slice(-2000)}`))
          }
          return Effect.succeed(JSON.parse(line) as ChildResult)
        }
      )
      return { process: child, result }
    }),
    (child) => Effect.sync(() => child.process.exitCode === null && child.process.kill("SIGKILL"))
  )

const waitForFile = (file: string, timeoutMs = 45_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (!fs.existsSync(file)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${file}`))
      yield* Effect.sleep(20)
    }
  })

const computedKeys = (dir: string, tag: string) => {
  const file = path.join(dir, `computed-${tag}.log`)
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map(Number) : []
}

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "amber-proc-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** A shared location for this test, removed afterwards (SQLite file or PostgreSQL schema). */
const sharedLocation = (adapter: StorageTesting.Adapter, name: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      adapter.shared(
        `amber_${name}_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`
      )
    ),
    (shared) =>
      Effect.gen(function* () {
        if (shared.location.kind === "pg") {
          yield* Database.use("drop-schema", (k) =>
            sql`drop schema if exists ${sql.id(shared.location.schema!)} cascade`.execute(k)
          ).pipe(Effect.provide(PostgresStorage.layer({ url: shared.location.url! })), Effect.ignore)
        } else {
          for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(`${shared.location.filename}${suffix}`, { force: true })
        }
      })
  )

const storedRows = (layer: Layer.Layer<Database.Database, any>) =>
  Effect.gen(function* () {
    const values = yield* Database.use("rows", (k) =>
      k.selectFrom("amber_values").select(["entity", "producer", "invalidated_at"]).orderBy("id").execute()
    )
    const claims = yield* Database.use("claims", (k) => k.selectFrom("amber_claims").selectAll().execute())
    return { values, claims }
  }).pipe(Effect.provide(layer))

for (const adapter of StorageTesting.adapters()) {
  if (adapter.name === "sqlite-memory") continue
  if (adapter.skip) {
    describe.skip(`processes on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }

  describe(`processes on ${adapter.name}`, () => {
    it.live(
      "two processes racing on 100 keys compute each key once",
      () =>
        Effect.gen(function* () {
          const dir = yield* tempDir
          const shared = yield* sharedLocation(adapter, "race")
          const base = {
            mode: "race",
            location: shared.location,
            dir,
            keys: 100,
            leaseMs: 5000,
            computeMs: 15,
            sync: true
          }
          const a = yield* startChild({ ...base, tag: "a" })
          const b = yield* startChild({ ...base, tag: "b" })
          yield* waitForFile(path.join(dir, "ready-a"))
          yield* waitForFile(path.join(dir, "ready-b"))
          fs.writeFileSync(path.join(dir, "go"), "")
          const [ra, rb] = yield* Effect.all([a.result, b.result], { concurrency: 2 })
          const computed = [...computedKeys(dir, "a"), ...computedKeys(dir, "b")].sort((x, y) => x - y)
          expect(computed).toEqual(Array.from({ length: 100 }, (_, i) => i))
          expect(ra.wrong + rb.wrong).toBe(0)
          expect(ra.counters.computations + rb.counters.computations).toBe(100)
          // they really raced: each waited on keys the other was computing
          expect(ra.counters.waits + rb.counters.waits).toBeGreaterThan(0)
          const { claims, values } = yield* storedRows(shared.layer)
          expect(values).toHaveLength(100)
          expect(new Set(values.map((v: any) => v.entity)).size).toBe(100)
          expect(claims).toEqual([])
          console.info(
            `[amber-store] race on ${adapter.name}: a computed ${ra.counters.computations} (waited ${ra.counters.waits}), b computed ${rb.counters.computations} (waited ${rb.counters.waits})`
          )
        }).pipe(Effect.scoped),
      120_000
    )

    it.live(
      "a holder killed with SIGKILL: after its lease one waiter takes over and one value is stored",
      () =>
        Effect.gen(function* () {
          const dir = yield* tempDir
          const shared = yield* sharedLocation(adapter, "kill")
          const leaseMs = 1500
          const base = { location: shared.location, dir, leaseMs }
          const holder = yield* startChild({ ...base, mode: "hold", tag: "holder" })
          yield* waitForFile(path.join(dir, "started-holder"))
          const w1 = yield* startChild({ ...base, mode: "wait", tag: "w1" })
          const w2 = yield* startChild({ ...base, mode: "wait", tag: "w2" })
          yield* waitForFile(path.join(dir, "ready-w1"))
          yield* waitForFile(path.join(dir, "ready-w2"))
          // both are waiting on the holder's claim now (the holder keeps renewing it)
          yield* Effect.sleep(leaseMs)
          expect(computedKeys(dir, "w1").length + computedKeys(dir, "w2").length).toBe(0)
          holder.process.kill("SIGKILL")
          const killedAt = Date.now()
          const [r1, r2] = yield* Effect.all([w1.result, w2.result], { concurrency: 2 })
          expect(r1.wrong + r2.wrong).toBe(0)
          expect(computedKeys(dir, "holder")).toEqual([0])
          // exactly one waiter computed, after taking the claim over
          expect([...computedKeys(dir, "w1"), ...computedKeys(dir, "w2")]).toEqual([0])
          expect(r1.counters.takeovers + r2.counters.takeovers).toBe(1)
          expect(r1.counters.computations + r2.counters.computations).toBe(1)
          // not before the lease ran out (the holder renewed it every leaseMs / 3 until killed),
          // and no hang: done within the lease plus polling slack
          const took = Math.min(r1.finishedAt, r2.finishedAt) - killedAt
          expect(took).toBeGreaterThanOrEqual(leaseMs / 2)
          expect(Math.max(r1.finishedAt, r2.finishedAt) - killedAt).toBeLessThan(leaseMs + 5000)
          const { claims, values } = yield* storedRows(shared.layer)
          expect(values).toHaveLength(1)
          expect(["child-w1", "child-w2"]).toContain((values[0] as any).producer)
          expect(claims).toEqual([])
        }).pipe(Effect.scoped),
      120_000
    )
  })
}

/** A TCP proxy on 127.0.0.1 in front of PostgreSQL that can be cut (black hole) and restored. */
const proxy = (target: URL) =>
  Effect.acquireRelease(
    Effect.async<{ port: number; cut: () => void; restore: () => void; close: () => void }>((resume) => {
      const sockets = new Set<net.Socket>()
      let open = true
      const server = net.createServer((client) => {
        sockets.add(client)
        client.on("close", () => sockets.delete(client))
        client.on("error", () => client.destroy())
        // while cut, connections are accepted and never answered: only timeouts can tell
        if (!open) return
        const upstream = net.connect(Number(target.port || 5432), target.hostname)
        sockets.add(upstream)
        upstream.on("close", () => {
          sockets.delete(upstream)
          client.destroy()
        })
        upstream.on("error", () => upstream.destroy())
        client.on("close", () => upstream.destroy())
        client.pipe(upstream)
        upstream.pipe(client)
      })
      server.listen(0, "127.0.0.1", () =>
        resume(
          Effect.succeed({
            port: (server.address() as net.AddressInfo).port,
            cut: () => {
              open = false
              for (const s of sockets) s.destroy()
            },
            restore: () => {
              open = true
            },
            close: () => {
              for (const s of sockets) s.destroy()
              server.close()
            }
          })
        )
      )
    }),
    (p) => Effect.sync(() => p.close())
  )

describe.skipIf(!StorageTesting.pgUrl)("PostgreSQL unreachable mid-run", () => {
  it.live(
    "fails with a tagged StorageError, never a hang, and the run resumes when it is back",
    () =>
      Effect.gen(function* () {
        const target = new URL(StorageTesting.pgUrl!)
        const p = yield* proxy(target)
        const via = new URL(StorageTesting.pgUrl!)
        via.hostname = "127.0.0.1"
        via.port = String(p.port)
        const schema = `amber_outage_${process.pid}_${Date.now().toString(36)}`
        const storage = PostgresStorage.layer({
          url: via.toString(),
          schema,
          poolSize: 2,
          connectTimeoutMs: 1000,
          queryTimeoutMs: 2000
        })
        yield* Effect.addFinalizer(() =>
          Database.use("drop-schema", (k) => sql`drop schema if exists ${sql.id(schema)} cascade`.execute(k)).pipe(
            Effect.provide(PostgresStorage.layer({ url: StorageTesting.pgUrl! })),
            Effect.ignore
          )
        )
        const db = yield* Layer.build(storage)
        const store = yield* FeatureStore.make({ leaseMs: 2000 }).pipe(Effect.provide(db))
        const n = 30
        const computations: Array<number> = []
        const errors: Array<{ tag: string; operation: string; ms: number }> = []
        let restoredAt = 0
        const compute = (i: number) =>
          Effect.suspend(() => {
            computations.push(i)
            // the database goes away while key 10 is being computed; it is back 2.5 s later
            if (i === 10 && restoredAt === 0) {
              p.cut()
              restoredAt = Date.now() + 2500
              setTimeout(() => p.restore(), 2500)
              // let the pool see its idle connections die first: a pg client handed out in the
              // same tick as its socket closes has no error listener (see the README's notes)
              return Effect.as(Effect.sleep(100), valueOf(i))
            }
            return Effect.succeed(valueOf(i))
          })
        const one = (i: number) =>
          Effect.suspend(() => {
            const started = Date.now()
            return store
              .getOrCompute(TitleEmbedding, entityOf(i), fingerprintOf(i), compute(i))
              .pipe(
                Effect.tapError((e) =>
                  Effect.sync(() =>
                    errors.push({ tag: e._tag, operation: (e as any).operation ?? "", ms: Date.now() - started })
                  )
                )
              )
          }).pipe(
            Effect.retry({
              while: (e) => e._tag === "StorageError",
              schedule: Schedule.spaced("250 millis").pipe(Schedule.intersect(Schedule.recurs(60)))
            })
          )
        const values = yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          one
        )
        expect(values.map((v, i) => Buffer.compare(Buffer.from(v.buffer), Buffer.from(valueOf(i).buffer)))).toEqual(
          new Array(n).fill(0)
        )
        expect(errors.length).toBeGreaterThan(0)
        expect(new Set(errors.map((e) => e.tag))).toEqual(new Set(["StorageError"]))
        // every failure came within the connect/query timeouts: no hang
        expect(Math.max(...errors.map((e) => e.ms))).toBeLessThan(5000)
        expect(Date.now()).toBeGreaterThanOrEqual(restoredAt)
        // every key stored exactly once; only the key cut mid-write may have been computed twice
        const rows = yield* Effect.provide(
          Database.use("rows", (k) => k.selectFrom("amber_values").select(["entity"]).execute()),
          db
        )
        expect(rows).toHaveLength(n)
        expect(new Set(rows.map((r: any) => r.entity)).size).toBe(n)
        expect(computations.filter((i) => i !== 10)).toEqual(
          Array.from({ length: n }, (_, i) => i).filter((i) => i !== 10)
        )
        const lineage = yield* store.lineage(TitleEmbedding, entityOf(10), fingerprintOf(10))
        expect(Option.isSome(lineage)).toBe(true)
        console.info(
          `[amber-store] outage: ${errors.length} StorageError(s) (${[...new Set(errors.map((e) => e.operation))].join(", ")}), slowest ${Math.max(...errors.map((e) => e.ms))} ms; key 10 computed ${computations.filter((i) => i === 10).length}x`
        )
      }).pipe(Effect.scoped),
    60_000
  )
})
