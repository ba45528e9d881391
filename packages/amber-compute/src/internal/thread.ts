import { Effect } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import type { ComputeInput, Thread } from "../Algorithm.js"

/**
 * The code of every compute thread (plain CommonJS, evaluated): it imports the
 * algorithm's module once and answers one request at a time.
 */
const WORKER = `
const { parentPort } = require("node:worker_threads")
const modules = new Map()
parentPort.on("message", async (request) => {
  try {
    let mod = modules.get(request.module)
    if (!mod) { mod = await import(request.module); modules.set(request.module, mod) }
    const fn = mod[request.name]
    if (typeof fn !== "function") throw new Error("the module " + request.module + " has no function export " + request.name)
    const value = await fn(request.input)
    parentPort.postMessage({ ok: true, value })
  } catch (e) {
    parentPort.postMessage({ ok: false, message: e && e.message ? e.message : String(e) })
  }
})
`

/** A compute function failed in its thread (the message of what it threw). */
export class ThreadError extends Error {}

interface Pool {
  readonly idle: Array<Worker>
}

const pools = new Map<string, Pool>()

const moduleUrl = (module: string): string =>
  /^[a-z][a-z0-9+.-]*:/i.test(module) && !/^[a-z]:[\\/]/i.test(module)
    ? module
    : pathToFileURL(path.resolve(module)).href

const take = (pool: Pool): Worker => {
  const worker = pool.idle.pop() ?? new Worker(WORKER, { eval: true })
  worker.ref()
  return worker
}

const give = (pool: Pool, worker: Worker) => {
  worker.removeAllListeners("message")
  worker.removeAllListeners("error")
  worker.removeAllListeners("exit")
  worker.unref()
  pool.idle.push(worker)
}

/**
 * Runs a compute function exported by a module in a worker thread (one request
 * per thread at a time; threads are reused and do not keep the process alive).
 * Interruption (a timeout) terminates the thread.
 */
export const runInThread = (thread: Thread, input: ComputeInput<any, any>): Effect.Effect<unknown, ThreadError> =>
  Effect.async<unknown, ThreadError>((resume) => {
    const module = moduleUrl(thread.module)
    let pool = pools.get(module)
    if (pool === undefined) pools.set(module, (pool = { idle: [] }))
    const worker = take(pool)
    let done = false
    const finish = (effect: Effect.Effect<unknown, ThreadError>, reuse: boolean) => {
      if (done) return
      done = true
      if (reuse) give(pool!, worker)
      else void worker.terminate()
      resume(effect)
    }
    worker.on("message", (reply: { ok: boolean; value?: unknown; message?: string }) =>
      finish(reply.ok ? Effect.succeed(reply.value) : Effect.fail(new ThreadError(reply.message)), true)
    )
    worker.on("error", (e) => finish(Effect.fail(new ThreadError(e.message)), false))
    worker.on("exit", (code) =>
      finish(Effect.fail(new ThreadError(`the compute thread exited with code ${code}`)), false)
    )
    try {
      worker.postMessage({ module, name: thread.export ?? "default", input })
    } catch (e) {
      finish(Effect.fail(new ThreadError(`the input cannot be sent to a thread: ${(e as Error).message}`)), true)
    }
    return Effect.sync(() => {
      if (done) return
      done = true
      void worker.terminate()
    })
  })
