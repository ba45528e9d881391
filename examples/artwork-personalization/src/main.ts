/**
 * `npm run demo`: the artwork-personalization pipeline on an embedded SQLite file
 * (or PostgreSQL with `--pg <url>` / `DEMO_PG_URL`), writing an HTML report.
 *
 *   npm run demo -- --titles 60 --members 2000 --seed 7 --devices 2 --kind auto
 *
 * Every flag is checked before any work starts; a failure prints one line (the cause chain with `--verbose`).
 * The output folder is reused between runs (the feature store then computes nothing again); the demo never
 * deletes anything it did not create, and `--fresh` removes only its own files.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { checkWorld, JOBS_SCHEMA, parse, prepareOutput, redact, usage } from "./cli.js"

function fail(message: string, detail?: string): never {
  console.error(`artwork demo: ${message}`)
  if (detail !== undefined) console.error(detail)
  process.exit(1)
}

const parsed = parse(process.argv.slice(2), process.env)
if (parsed._tag === "Help") {
  console.log(usage)
  process.exit(0)
}
if (parsed._tag === "Invalid") fail(parsed.message)
const flags = parsed.flags

const out = path.resolve(flags.out)
if (flags.dryRun) {
  const where =
    flags.pg !== undefined
      ? `PostgreSQL ${redact(flags.pg)} (schema artwork_demo)` +
        (flags.workers !== undefined
          ? `, the mesh on the distributed executor with ${flags.workers} worker process(es) (jobs in schema ${JOBS_SCHEMA})`
          : "")
      : `SQLite in ${out}`
  console.log(
    `would run: ${flags.titles} titles, ${flags.members} members, seed ${flags.seed}, ${flags.epochs} epochs on ` +
      `${flags.devices} ${flags.kind} device(s), ${where}, data in ${out}${flags.fresh ? ", starting fresh" : ""}`
  )
  process.exit(0)
}
const prepared = prepareOutput(out, flags.fresh)
if (prepared._tag === "Invalid") fail(prepared.message)
const world = checkWorld(out, { seed: flags.seed, titles: flags.titles })
if (world._tag === "Invalid") fail(world.message)

// the pipeline's modules load only once the flags are known to be good (so --help and a bad flag answer at once)
const { Cause, Effect, Exit } = await import("effect")
const { default: pg } = await import("pg")
const { PostgresStorage } = await import("@org/storage/pg")
const { SqliteStorage } = await import("@org/storage/sqlite")
const { run } = await import("./pipeline.js")
const { DistributedExecutor } = await import("@org/amber-compute")
const { executorOptions, startWorkers, WorkersLostError } = await import("./workers.js")
const { replayTable, write } = await import("./report.js")

const storage =
  flags.pg !== undefined
    ? PostgresStorage.layer({ url: flags.pg, schema: "artwork_demo" })
    : SqliteStorage.layer({ filename: path.join(out, "demo.db") })

const started = Date.now()
let workers: import("./workers.js").Workers | undefined
const exit = await Effect.runPromiseExit(
  Effect.gen(function* () {
    if (flags.pg !== undefined && flags.fresh) yield* dropDemoSchema(flags.pg)
    // --workers: N worker processes of the demo's own take the mesh's tasks from the job engine; stopped at the end
    if (flags.workers !== undefined && flags.pg !== undefined) {
      const url = flags.pg
      workers = yield* Effect.acquireRelease(
        Effect.sync(() =>
          startWorkers({
            count: flags.workers!,
            data: out,
            url,
            onLine: (line) => {
              // a failed task and a worker that ended on its own are always shown; the rest with --verbose
              if (flags.verbose || /: (failed|was killed by|exited with code)/.test(line)) console.error(`  ${line}`)
            }
          })
        ),
        (w) => Effect.promise(() => w.stop())
      )
      console.log(`started ${workers.count} worker process(es) for the feature mesh`)
    }
    const pipeline = run({
      data: out,
      storage,
      seed: flags.seed,
      titles: flags.titles,
      members: flags.members,
      epochs: flags.epochs,
      devices: { count: flags.devices, kind: flags.kind },
      ...(workers !== undefined && flags.pg !== undefined
        ? { executor: DistributedExecutor.layer(executorOptions(flags.pg)) }
        : {})
    })
    if (workers === undefined) return yield* pipeline
    // with every worker gone the mesh's tasks would wait for ever: the run fails in one line instead
    const lost = workers.allLost
    return yield* Effect.raceFirst(
      pipeline,
      Effect.flatMap(
        Effect.promise(() => lost),
        (message) => Effect.fail(new WorkersLostError({ message }))
      )
    )
  }).pipe(Effect.scoped)
)
if (Exit.isFailure(exit)) {
  const error = Cause.squash(exit.cause)
  const line =
    error instanceof Error
      ? `${(error as { _tag?: string })._tag ?? error.name}: ${error.message.split("\n")[0]}`
      : String(error)
  fail(line, flags.verbose ? Cause.pretty(exit.cause) : "(run with --verbose for the cause chain)")
}
const summary = exit.value
const reportStarted = Date.now()
const report = await write(summary, out)
const timings = { ...summary.timings, report: Date.now() - reportStarted, total: Date.now() - started }
const distributed =
  workers !== undefined
    ? { workers: workers.count, tasksPerWorker: workers.tasks, lostWorkers: workers.lost }
    : undefined
fs.writeFileSync(
  path.join(out, "summary.json"),
  JSON.stringify({ ...summary, ...(distributed ? { distributed } : {}), timings }, null, 2)
)
console.log("6/6 report")
console.log("")
for (const line of replayTable(summary)) console.log(line)
for (const finding of summary.replay.findings) console.log(`  ${finding}`)
console.log("")
if (distributed !== undefined)
  console.log(
    `feature mesh on ${distributed.workers} worker process(es): ${distributed.tasksPerWorker.join(", ")} task(s) each`
  )
console.log(`done in ${(timings.total / 1000).toFixed(1)} s on ${summary.storage}`)
console.log(`summary: ${path.join(out, "summary.json")}`)
console.log(`report: ${report}`)

/** `--fresh` on PostgreSQL: the demo's own schemas (it created them: its data, and its jobs), nothing else. */
function dropDemoSchema(url: string) {
  return Effect.tryPromise({
    try: async () => {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
      await client.connect()
      try {
        await client.query("drop schema if exists artwork_demo cascade")
        await client.query(`drop schema if exists ${JOBS_SCHEMA} cascade`)
      } finally {
        await client.end()
      }
    },
    catch: (cause) => new Error(`could not reset schema artwork_demo at ${redact(url)}: ${String(cause)}`)
  })
}
