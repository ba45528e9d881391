import { threadId } from "node:worker_threads"
import type { Backend, Tensor } from "../Backend.js"
import type { Batch } from "../Dataset.js"
import type { Model } from "../Model.js"
import * as Optimizer from "../Optimizer.js"
import { forwardBackward } from "./execute.js"
import type { GroupInit, StepRequest, StepResult } from "./group.js"
import { checksum } from "./shard.js"

/** A gradient brought to the host: dense, or the rows `indices` of an embedding table. */
export interface HostGrad {
  readonly indices?: Int32Array
  readonly values: Float32Array
}

/** What one device reports for its shard of a step. */
export interface ShardResult {
  /** The rows the device computed on, and the digest of their values (see `shard.checksum`). */
  readonly rows: number
  readonly checksum: number
  /** The mean loss over the shard's rows (0 for an empty shard). */
  readonly loss: number
  /** Per model parameter, in model order (empty for an empty shard). */
  readonly grads: ReadonlyArray<HostGrad>
  /** Time the device's thread spent on the shard, not counting the wait for the device's results. */
  readonly busyMilliseconds: number
  /** The thread that ran the shard (`worker_threads.threadId`: 0 is the main thread). */
  readonly thread: number
}

/** What a replica starts from. Every field can cross to a worker thread. */
export interface ReplicaInit {
  readonly model: Model
  readonly optimizer: Optimizer.Optimizer
  /** Per model parameter, in model order. */
  readonly parameters: ReadonlyArray<Float32Array>
  /** Per model parameter, the optimizer state in `Optimizer.stateNames` order; zeros when absent. */
  readonly state: ReadonlyArray<ReadonlyArray<Float32Array>> | undefined
  /** The averaged gradient of each step, in model order, shared by every replica (SharedArrayBuffer-backed). */
  readonly update: ReadonlyArray<Float32Array>
  /** For a threaded CPU device whose group runs whole steps among its workers (see `group.ts`). */
  readonly group?: GroupInit
}

/** One device's copy of the model and optimizer state, and the two halves of a training step on it. */
export interface Replica {
  readonly device: Backend
  /** Forward and backward on a shard; the gradients come back to the host. */
  readonly compute: (shard: Batch) => Promise<ShardResult>
  /** Applies `init.update` as update number `step` (1-based); resolves with the time spent. */
  readonly apply: (step: number) => Promise<number>
  /**
   * A whole step among the threads of a group (threaded CPU devices only): forward, backward, the reduction of
   * the gradients and the update, with no gradient crossing to the host.
   */
  readonly step?: (request: StepRequest) => Promise<StepResult>
  readonly readParameters: () => Promise<ReadonlyArray<Float32Array>>
  readonly readState: () => Promise<ReadonlyArray<ReadonlyArray<Float32Array>>>
  /** Releases the replica's tensors (and its thread, for a threaded replica). */
  readonly close: () => void
}

/** A replica whose device runs in this thread. Uploads the parameters and state at once. */
export const localReplica = (device: Backend, init: ReplicaInit): Replica => {
  const { model, optimizer } = init
  const k = Optimizer.stateNames(optimizer).length
  const params: Array<Tensor> = []
  const grads: Array<Tensor> = []
  const state: Array<ReadonlyArray<Tensor>> = []
  const all = () => [...params, ...grads, ...state.flat()]
  try {
    model.parameters.forEach((p, i) => {
      params.push(device.upload(p.shape, init.parameters[i]!))
      grads.push(device.zeros(p.shape))
      const saved = init.state?.[i]
      state.push(
        Array.from({ length: k }, (_, s) => (saved ? device.upload(p.shape, saved[s]!) : device.zeros(p.shape)))
      )
    })
  } catch (error) {
    if (device.lost() === undefined) for (const t of all()) device.dispose(t)
    throw error
  }
  const byName = new Map(model.parameters.map((p, i) => [p.name, params[i]!]))

  return {
    device,
    compute: async (shard) => {
      const t0 = performance.now()
      const rows = shard.size
      const digest = checksum(shard)
      if (rows === 0) return { rows, checksum: digest, loss: 0, grads: [], busyMilliseconds: 0, thread: threadId }
      const temps: Array<Tensor> = []
      try {
        const result = forwardBackward(device, model, byName, shard, temps)
        const ordered = model.parameters.map((p) => result.grads.get(p.name)!)
        const tensors = ordered.map((g) => (g._tag === "Dense" ? g.value : g.value.values))
        temps.push(result.loss, ...tensors)
        const reading = device.readMany([result.loss, ...tensors])
        const t1 = performance.now()
        const [loss, ...values] = await reading
        return {
          rows,
          checksum: digest,
          loss: loss![0]!,
          grads: ordered.map((g, i) =>
            g._tag === "Dense" ? { values: values[i]! } : { indices: g.value.indices, values: values[i]! }
          ),
          busyMilliseconds: t1 - t0,
          thread: threadId
        }
      } finally {
        for (const t of temps) device.dispose(t)
      }
    },
    apply: async (step) => {
      const t0 = performance.now()
      // every write before the first kernel: the kernels of the update then go out in one submit with the next step
      grads.forEach((g, i) => device.write(g, init.update[i]!))
      params.forEach((p, i) => Optimizer.apply(device, optimizer, p, grads[i]!, state[i]!, step))
      return performance.now() - t0
    },
    readParameters: () => device.readMany(params),
    readState: async () => {
      const values = await device.readMany(state.flat())
      return model.parameters.map((_, i) => values.slice(i * k, (i + 1) * k))
    },
    close: () => {
      if (device.lost() === undefined) for (const t of all()) device.dispose(t)
    }
  }
}
