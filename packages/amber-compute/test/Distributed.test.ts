/**
 * The distributed executor on PostgreSQL: workers in this process (fibers) and
 * retries, failures and options; the process tests (kill, CLI) are in
 * DistributedProcesses.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import * as path from "node:path"
import pg from "pg"
import { StorageTesting } from "@org/storage/testing"
import { AmberConfig, DistributedExecutor, Resolver, Worker } from "@org/amber-compute"

const url = StorageTesting.pgUrl
const suffix = `${process.pid}_${Date.now().toString(36)}`
const storeSchema = `amber_dist_store_${suffix}`
const queueSchema = `amber_dist_jobs_${suffix}`

process.env.AMBER_PG_URL = url ?? ""
process.env.AMBER_STORE = `pg:${storeSchema}`
process.env.AMBER_QUEUE_SCHEMA = queueSchema
process.env.AMBER_ENTITIES = "60"
process.env.AMBER_FAIL_ENTITY = "art-7"
process.env.AMBER_MAX_ATTEMPTS = "2"

const configPath = path.join(import.meta.dirname, "fixtures/distributed.config.ts")

const dropSchemas = Effect.promise(async () => {
  const pool = new pg.Pool({ connectionString: url })
  await pool.query(`drop schema if exists ${storeSchema} cascade; drop schema if exists ${queueSchema} cascade`)
  await pool.end()
})

const callerLayer = (config: AmberConfig.AmberConfig) =>
  Resolver.layer(config.mesh, { batchSize: 10 }).pipe(
    Layer.provide(DistributedExecutor.layer(config.distributed!)),
    Layer.provideMerge(config.layer)
  )

describe.skipIf(!url)("DistributedExecutor (PostgreSQL)", () => {
  if (!url) console.warn(`${StorageTesting.PG_URL_ENV} is not set: distributed executor tests are skipped`)

  it.live(
    "materializes a 3-level mesh through workers and returns the local executor's result shape",
    () =>
      Effect.gen(function* () {
        const config = yield* AmberConfig.load(configPath)
        const workers = yield* Effect.forkScoped(
          Effect.all([Worker.run({ config, concurrency: 2 }), Worker.run({ config, concurrency: 2 })], {
            concurrency: "unbounded"
          })
        )
        const result = yield* Resolver.materialize("art.score@1", Array.from({ length: 60 }, (_, i) => `art-${i}`)).pipe(
          Effect.provide(callerLayer(config))
        )
        console.log(JSON.stringify({ ...result, failed: result.failed.length }))
        const pool = new pg.Pool({ connectionString: url })
        console.log((yield* Effect.promise(() => pool.query(`select seq, level, state, attempts, worker, queued_at::time, started_at::time, finished_at::time, result->>'ms' ms from ${queueSchema}.amber_tasks order by seq`))).rows.map((r) => JSON.stringify(r)).join("\n"))
        expect(result.entities).toBe(60)
        // art-7 fails at the first level: its three values fail (tensor) or are blocked
        expect(result.failed.map((f) => `${f.feature}:${f.entity}`).sort()).toContain("art.tensor:art-7")
        expect(result.computed).toBe(59 * 3)
        yield* Fiber.interrupt(workers)
      }).pipe(Effect.scoped, Effect.ensuring(Effect.void)),
    60_000
  )

  it.effect("rejects bad options with the option's name", () =>
    Effect.gen(function* () {
      const bad = yield* Effect.exit(DistributedExecutor.config({ url: "mysql://x" }))
      expect(Exit.isFailure(bad)).toBe(true)
      const error = yield* Effect.flip(DistributedExecutor.config({ url: url!, schema: "Bad-Name" }))
      expect(error._tag).toBe("ComputeConfigError")
      expect(error.option).toBe("schema")
      const beat = yield* Effect.flip(DistributedExecutor.config({ url: url!, workerTimeoutMs: 1000, heartbeatMs: 900 }))
      expect(beat.option).toBe("heartbeatMs")
    })
  )
})
