/**
 * Threaded CPU devices: each training run gives every such device a worker thread holding its replica. Shards go
 * to the workers as transferred buffers, gradients come back the same way, and the averaged update is one set of
 * SharedArrayBuffers every worker reads. Idle workers wait in a small pool (without keeping the process alive) for
 * the next run.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import type { Backend } from "../Backend.js"
import type { Batch } from "../Dataset.js"
import { BackendError, DeviceLostError } from "../TrainerError.js"
import type { StepRequest, StepResult } from "./group.js"
import type { Replica, ReplicaInit, ShardResult } from "./replica.js"
import { messageOf } from "./common.js"

/** What a worker is asked to do. */
export type Request =
  | { readonly op: "init"; readonly id: string; readonly init: ReplicaInit }
  | { readonly op: "compute"; readonly shard: Batch }
  | { readonly op: "apply"; readonly step: number }
  | { readonly op: "step"; readonly request: StepRequest }
  | { readonly op: "readParameters" | "readState" | "reset" }

/** A message to a worker: a request and the number its answer carries. */
export interface Message {
  readonly seq: number
  readonly request: Request
}

/** A worker's answer. */
export type Response =
  | { readonly seq: number; readonly ok: true; readonly value: unknown }
  | {
      readonly seq: number
      readonly ok: false
      readonly tag: string
      readonly message: string
      readonly operation: string
    }

const threaded = new WeakSet<Backend>()

/** Marks a CPU backend to run its replicas in worker threads. */
export const markThreaded = (device: Backend): Backend => {
  threaded.add(device)
  return device
}

/** Whether the trainer should run this device's replicas in a worker thread. */
export const isThreaded = (device: Backend): boolean => threaded.has(device)

let entry: Promise<URL> | undefined

/**
 * The worker's entry file, beside this module: `worker.js` / `worker.cjs` in the built package. From the TypeScript
 * sources (tests, benchmarks) the worker is bundled once per process with esbuild into a temporary file.
 */
const workerEntry = (): Promise<URL> =>
  (entry ??= (async () => {
    const here = import.meta.url
    const ext = path.extname(new URL(here).pathname)
    if (ext !== ".ts") return new URL(`./worker${ext}`, here)
    const esbuild = await import("esbuild")
    const outfile = path.join(os.tmpdir(), `org-trainer-worker-${process.pid}-${randomUUID()}.mjs`)
    await esbuild.build({
      entryPoints: [fileURLToPath(new URL("./worker.ts", here))],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile,
      logLevel: "silent"
    })
    process.once("exit", () => fs.rmSync(outfile, { force: true }))
    return pathToFileURL(outfile)
  })())

interface Thread {
  readonly worker: Worker
  readonly call: (request: Request, transfer?: ReadonlyArray<ArrayBuffer>) => Promise<unknown>
}

const idle: Array<Thread> = []
const MAX_IDLE = 8

const spawn = async (): Promise<Thread> => {
  const worker = new Worker(await workerEntry())
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>()
  let seq = 0
  let exited: string | undefined
  const failAll = (message: string) => {
    exited ??= message
    for (const p of pending.values()) p.reject(new Error(message))
    pending.clear()
  }
  worker.on("message", (response: Response) => {
    const p = pending.get(response.seq)
    if (!p) return
    pending.delete(response.seq)
    if (response.ok) p.resolve(response.value)
    else p.reject(response)
  })
  worker.on("error", (error) => failAll(`worker thread failed: ${error.message}`))
  worker.on("exit", (code) => failAll(`worker thread exited with code ${code}`))
  return {
    worker,
    call: (request, transfer = []) =>
      new Promise((resolve, reject) => {
        if (exited !== undefined) return reject(new Error(exited))
        const message: Message = { seq: ++seq, request }
        pending.set(message.seq, { resolve, reject })
        worker.postMessage(message, transfer as Array<ArrayBuffer>)
      })
  }
}

const acquire = async (): Promise<Thread> => {
  const thread = idle.pop() ?? (await spawn())
  thread.worker.ref()
  return thread
}

const release = (thread: Thread) => {
  thread.worker.unref()
  if (idle.length < MAX_IDLE) idle.push(thread)
  else void thread.worker.terminate()
}

/** Turns a worker's failure into the error a local device would have thrown. */
const rethrow = (device: Backend, cause: unknown): never => {
  if (cause && typeof cause === "object" && "ok" in cause) {
    const r = cause as Extract<Response, { ok: false }>
    if (r.tag === "DeviceLostError") throw new DeviceLostError({ device: device.id, step: 0, message: r.message })
    throw new BackendError({ device: device.id, operation: r.operation, message: r.message })
  }
  throw new BackendError({
    device: device.id,
    operation: "worker",
    message: `${device.id}: ${messageOf(cause)}`,
    cause
  })
}

/** Copies a shard's rows into fresh buffers that can be transferred to a worker. */
const detach = (shard: Batch): { readonly batch: Batch; readonly transfer: ReadonlyArray<ArrayBuffer> } => {
  const inputs: Record<string, Float32Array> = {}
  for (const [name, data] of Object.entries(shard.inputs)) inputs[name] = data.slice()
  const target = shard.target.slice()
  return {
    batch: { size: shard.size, inputs, target },
    transfer: [...Object.values(inputs).map((d) => d.buffer as ArrayBuffer), target.buffer as ArrayBuffer]
  }
}

/** A replica of `device` (a threaded CPU backend) in a worker thread of its own. */
export const threadedReplica = async (device: Backend, init: ReplicaInit): Promise<Replica> => {
  const thread = await acquire()
  const call = async <A>(request: Request, transfer?: ReadonlyArray<ArrayBuffer>): Promise<A> => {
    const lost = device.lost()
    if (lost !== undefined) {
      throw new DeviceLostError({ device: device.id, step: 0, message: `device ${device.id} is lost: ${lost}` })
    }
    try {
      return (await thread.call(request, transfer)) as A
    } catch (cause) {
      return rethrow(device, cause)
    }
  }
  try {
    await call({ op: "init", id: device.id, init })
  } catch (error) {
    release(thread)
    throw error
  }
  let closed = false
  return {
    device,
    compute: (shard) => {
      const { batch, transfer } = detach(shard)
      return call<ShardResult>({ op: "compute", shard: batch }, transfer)
    },
    apply: (step) => call<number>({ op: "apply", step }),
    ...(init.group ? { step: (request: StepRequest) => call<StepResult>({ op: "step", request }) } : {}),
    readParameters: () => call({ op: "readParameters" }),
    readState: () => call({ op: "readState" }),
    close: () => {
      if (closed) return
      closed = true
      thread.call({ op: "reset" }).then(
        () => release(thread),
        () => void thread.worker.terminate()
      )
    }
  }
}
