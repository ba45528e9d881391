/**
 * The distributed executor in code: `materialize` hands its tasks to graphile-worker jobs on
 * PostgreSQL and waits for them; a worker (here a fiber of this process, usually `amber worker`
 * processes on other machines) takes them. Needs DATABASE_URL and amber.config.mjs beside it.
 * Run: DATABASE_URL=postgres://localhost/media npx tsx distributed.ts
 */
import { Effect, Fiber, Layer } from "effect"
import { AmberConfig, DistributedExecutor, Resolver, Worker } from "@org/amber-compute"

const program = Effect.gen(function* () {
  const config = yield* AmberConfig.load("./amber.config.mjs")
  if (config.distributed === undefined) return yield* Effect.dieMessage("set DATABASE_URL to run on PostgreSQL")

  // a worker: takes tasks until interrupted (in a process of its own:
  // NodeRuntime.runMain(Worker.run({ config, concurrency: 2 })) turns SIGTERM into an interruption)
  const worker = yield* Effect.fork(Worker.run({ config, concurrency: 2, onEvent: (e) => console.log(e._tag) }))

  // the caller: materialize waits for its run's tasks and returns the run's result
  const App = Resolver.layer(config.mesh).pipe(
    Layer.provide(DistributedExecutor.layer(config.distributed)),
    Layer.provideMerge(config.layer)
  )
  const result = yield* Resolver.materialize("artwork.bucket", ["art-1", "art-2"]).pipe(Effect.provide(App))
  console.log(`${result.computed} computed, ${result.cached} cached, ${result.failed.length} failed`)
  yield* Fiber.interrupt(worker)
})

Effect.runPromise(program)
