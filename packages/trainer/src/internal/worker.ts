/**
 * The worker thread of a threaded CPU device: holds one replica on a CPU backend and runs the halves of each
 * training step the main thread asks for. Built as its own entry (`dist/worker.js`, `dist/worker.cjs`).
 */
import { parentPort } from "node:worker_threads"
import { makeCpu } from "./cpu.js"
import { runStep } from "./group.js"
import { localReplica, type Replica, type ReplicaInit } from "./replica.js"
import type { Message, Response } from "./threads.js"

const port = parentPort!
let replica: Replica | undefined
let init: ReplicaInit | undefined

const reply = (response: Response, transfer: ReadonlyArray<ArrayBuffer> = []) =>
  port.postMessage(response, transfer as Array<ArrayBuffer>)

port.on("message", async ({ seq, request }: Message) => {
  try {
    switch (request.op) {
      case "init":
        replica?.close()
        replica = undefined
        replica = localReplica(makeCpu(request.id), request.init)
        init = request.init
        return reply({ seq, ok: true, value: undefined })
      case "compute": {
        const result = await replica!.compute(request.shard)
        const transfer = result.grads.flatMap((g) =>
          g.indices ? [g.values.buffer, g.indices.buffer] : [g.values.buffer]
        )
        return reply({ seq, ok: true, value: result }, transfer as Array<ArrayBuffer>)
      }
      case "step":
        return reply({ seq, ok: true, value: await runStep(replica!, init!.model, init!.group!, request.request) })
      case "apply":
        return reply({ seq, ok: true, value: await replica!.apply(request.step) })
      case "readParameters":
        return reply({ seq, ok: true, value: await replica!.readParameters() })
      case "readState":
        return reply({ seq, ok: true, value: await replica!.readState() })
      case "reset":
        replica?.close()
        replica = undefined
        init = undefined
        return reply({ seq, ok: true, value: undefined })
    }
  } catch (error) {
    const e = error as { _tag?: string; message?: string; operation?: string }
    reply({
      seq,
      ok: false,
      tag: e._tag ?? "Error",
      message: e.message ?? String(error),
      operation: e.operation ?? request.op
    })
  }
})
