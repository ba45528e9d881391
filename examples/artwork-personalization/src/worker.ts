/**
 * One worker process of `--workers N` (started and stopped by the demo, see `workers.ts`): takes the mesh's tasks
 * from the job engine and runs them with `Worker.run` until SIGTERM, then finishes its task and exits with code 0.
 */
import { Cause, Effect, Exit, Fiber } from "effect"
import { Worker } from "@org/amber-compute"
import * as M from "./mesh.js"
import { workerConfig } from "./workers.js"

const data = process.env.ARTWORK_WORKER_DATA
const url = process.env.ARTWORK_WORKER_PG
if (!data || !url) {
  console.error("worker: ARTWORK_WORKER_DATA and ARTWORK_WORKER_PG must be set (the demo starts its workers)")
  process.exit(2)
}

const fiber = Effect.runFork(
  Effect.flatMap(M.mesh, (mesh) =>
    Worker.run({
      config: workerConfig(mesh, data, url),
      // one plain line per event, read by the demo (it counts the tasks each worker ran)
      onEvent: (e) => {
        if (e._tag === "WorkerStarted") console.log(`started pid ${process.pid}`)
        else if (e._tag === "TaskStarted") console.log(`task ${e.task.feature} ${e.task.entities.length}`)
        else if (e._tag === "TaskDone") console.log(`done ${e.task.feature} ${e.task.entities.length} ${e.ms}`)
        else if (e._tag === "TaskFailed") console.log(`failed ${e.task.feature} attempt ${e.attempt}: ${e.error}`)
      }
    })
  )
)
const stop = () => void Effect.runFork(Fiber.interrupt(fiber))
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
const exit = await Effect.runPromise(Fiber.await(fiber))
if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) {
  const error = Cause.squash(exit.cause)
  console.error(`failed: ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
}
process.exit(0)
