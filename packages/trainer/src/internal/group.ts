/**
 * A group of threaded CPU devices that runs each training step among its worker threads, with one message per
 * worker per step and no gradient crossing the main thread.
 *
 * The main thread copies the step's batch into SharedArrayBuffers and posts one `step` message to every worker. Each
 * worker reads its contiguous shard from that memory, runs forward and backward on its replica, and writes its
 * gradient into its own region of a shared gradient buffer. After a barrier (Atomics on a shared control block) each
 * worker reduces one slice of the flattened parameter vector: the weighted sum over the workers in device order, in
 * double precision, into the shared update buffer; it also checks that slice for NaN and infinities. After a second
 * barrier every worker applies the whole update to its own replica (the same float operations in the same order on
 * every replica, so they stay identical) and answers. The sums are those of the single-threaded average, in the same
 * order, so the result does not depend on timing or on which thread reduced which slice.
 */
import type { Batch } from "../Dataset.js"
import type { Model } from "../Model.js"
import type { Replica, ShardResult } from "./replica.js"
import { shardSizes, shardStarts } from "./shard.js"

// the control block: barrier count and generation, the abort flag, then per worker a failed flag and the first
// non-finite index of its slice of the update (-1: none)
const COUNT = 0
const GENERATION = 1
const ABORT = 2
const HEADER = 3

/** The memory a group shares, as each worker receives it (`index` is the worker's place in device order). */
export interface GroupInit {
  readonly index: number
  readonly count: number
  readonly control: Int32Array
  /** Per worker, the mean loss over its shard. */
  readonly losses: Float64Array
  /** Per worker, its gradient for every parameter, flattened in model order (`count` regions of `size` values). */
  readonly gradients: Float32Array
  /** The averaged gradient, flattened in model order (the replicas' `update` arrays are views of it). */
  readonly update: Float32Array
}

/** What the main thread posts to every worker of the group for one step. */
export interface StepRequest {
  readonly step: number
  readonly size: number
  readonly inputs: Readonly<Record<string, Float32Array>>
  readonly target: Float32Array
}

/** What a worker answers for a step. */
export interface StepResult extends Omit<ShardResult, "grads"> {
  /** Whether the worker applied the update (not when the loss or the averaged gradient is not finite). */
  readonly applied: boolean
  /** The time spent on forward, backward and the update (not the reduction or the waits). */
  readonly busyMilliseconds: number
  /** Milliseconds spent reducing this worker's slice of the gradient. */
  readonly reduceMilliseconds: number
}

/** The number of values of every parameter, and where each starts in the flattened vector. */
export const layout = (model: Model): { readonly offsets: ReadonlyArray<number>; readonly size: number } => {
  const offsets: Array<number> = []
  let size = 0
  for (const p of model.parameters) {
    offsets.push(size)
    size += p.shape.reduce((a, b) => a * b, 1)
  }
  return { offsets, size }
}

/** The slice [start, end) of `size` values that worker `index` of `count` reduces. */
const sliceOf = (size: number, count: number, index: number): readonly [number, number] => {
  const sizes = shardSizes(size, count)
  const start = shardStarts(sizes)[index]!
  return [start, start + sizes[index]!]
}

/** The weighted mean loss over the shards, in device order (the workers and the main thread compute it alike). */
export const meanLoss = (rows: ReadonlyArray<number>, losses: ArrayLike<number>, total: number): number => {
  let loss = 0
  rows.forEach((r, k) => {
    if (r > 0) loss += (r / total) * losses[k]!
  })
  return loss
}

/** Waits until every worker of the group arrives; throws when the group was aborted. */
const barrier = (control: Int32Array, count: number): void => {
  const generation = Atomics.load(control, GENERATION)
  if (Atomics.add(control, COUNT, 1) === count - 1) {
    Atomics.store(control, COUNT, 0)
    Atomics.add(control, GENERATION, 1)
    Atomics.notify(control, GENERATION)
    return
  }
  while (Atomics.load(control, GENERATION) === generation) {
    if (Atomics.load(control, ABORT) !== 0)
      throw new Error("the step was abandoned: another device of the group failed")
    Atomics.wait(control, GENERATION, generation, 250)
  }
}

/** Writes a shard's gradients into the worker's region, densely (an embedding's rows into a zeroed table). */
const writeGradients = (model: Model, result: ShardResult, region: Float32Array, offsets: ReadonlyArray<number>) => {
  model.parameters.forEach((p, i) => {
    const g = result.grads[i]!
    const at = offsets[i]!
    if (g.indices === undefined) {
      region.set(g.values, at)
      return
    }
    const width = p.shape[1]!
    region.fill(0, at, at + p.shape[0]! * width)
    g.indices.forEach((row, u) => region.set(g.values.subarray(u * width, (u + 1) * width), at + row * width))
  })
}

/**
 * The weighted sum of the workers' gradients over [start, end), in device order and double precision, into
 * `update`; the index of the first value that is not finite, or -1.
 */
const reduce = (
  group: GroupInit,
  size: number,
  rows: ReadonlyArray<number>,
  total: number,
  start: number,
  end: number
): number => {
  const { gradients, update } = group
  const active = rows.flatMap((r, k) => (r > 0 ? [k] : []))
  const weights = active.map((k) => rows[k]! / total)
  const bases = active.map((k) => k * size)
  let first = -1
  if (active.length === 2) {
    // the common case without the inner loop
    const [w0, w1] = weights as [number, number]
    const [b0, b1] = bases as [number, number]
    for (let i = start; i < end; i++) {
      let s = 0
      s += w0 * gradients[b0 + i]!
      s += w1 * gradients[b1 + i]!
      update[i] = s
    }
  } else {
    for (let i = start; i < end; i++) {
      let s = 0
      for (let j = 0; j < active.length; j++) s += weights[j]! * gradients[bases[j]! + i]!
      update[i] = s
    }
  }
  for (let i = start; i < end; i++) {
    if (!Number.isFinite(update[i]!)) {
      first = i
      break
    }
  }
  return first
}

/** Runs worker `group.index`'s part of a step on its replica (in the worker thread). */
export const runStep = async (
  replica: Replica,
  model: Model,
  group: GroupInit,
  request: StepRequest
): Promise<StepResult> => {
  const { control, count, index, losses } = group
  const { offsets, size } = layout(model)
  const rows = shardSizes(request.size, count)
  const start = shardStarts(rows)[index]!
  const view = (data: Float32Array) => {
    const width = request.size === 0 ? 0 : data.length / request.size
    return data.subarray(start * width, (start + rows[index]!) * width)
  }
  const inputs: Record<string, Float32Array> = {}
  for (const [name, data] of Object.entries(request.inputs)) inputs[name] = view(data)
  const shard: Batch = { size: rows[index]!, inputs, target: view(request.target) }

  let result: ShardResult | undefined
  let failure: unknown
  try {
    result = await replica.compute(shard)
    if (result.rows > 0)
      writeGradients(model, result, group.gradients.subarray(index * size, (index + 1) * size), offsets)
    losses[index] = result.loss
  } catch (error) {
    failure = error
  }
  Atomics.store(control, HEADER + index, failure === undefined ? 0 : 1)
  barrier(control, count)
  if (failure !== undefined) throw failure
  const base = { rows: result!.rows, checksum: result!.checksum, loss: result!.loss, thread: result!.thread }
  for (let k = 0; k < count; k++) {
    // another device failed: nothing to reduce, and no update
    if (Atomics.load(control, HEADER + k) !== 0) {
      return { ...base, applied: false, busyMilliseconds: result!.busyMilliseconds, reduceMilliseconds: 0 }
    }
  }
  const t0 = performance.now()
  const [from, to] = sliceOf(size, count, index)
  Atomics.store(control, HEADER + count + index, reduce(group, size, rows, request.size, from, to))
  const reduceMilliseconds = performance.now() - t0
  barrier(control, count)
  const loss = meanLoss(rows, losses, request.size)
  let finite = Number.isFinite(loss)
  for (let k = 0; k < count && finite; k++) if (Atomics.load(control, HEADER + count + k) >= 0) finite = false
  const applyMilliseconds = finite ? await replica.apply(request.step) : 0
  return {
    ...base,
    applied: finite,
    busyMilliseconds: result!.busyMilliseconds + applyMilliseconds,
    reduceMilliseconds
  }
}

/** The main thread's side of a group: the shared memory, the batch buffers, and the abort switch. */
export interface Group {
  /** The init of worker `index`. */
  readonly init: (index: number) => GroupInit
  /** Copies a batch into the shared batch buffers and returns the request every worker gets. */
  readonly stage: (batch: Batch, step: number) => StepRequest
  /** The first value of the averaged gradient that is not finite after a step, or -1. */
  readonly firstNonFinite: () => number
  /** Wakes and stops every worker waiting in a step (after a failure, or when the run ends). */
  readonly abort: () => void
}

/** The shared memory of a group of `count` workers for `model`; `update` is the flattened averaged gradient. */
export const makeGroup = (model: Model, count: number, update: Float32Array): Group => {
  const { size } = layout(model)
  const control = new Int32Array(new SharedArrayBuffer(4 * (HEADER + 2 * count)))
  const losses = new Float64Array(new SharedArrayBuffer(8 * count))
  const gradients = new Float32Array(new SharedArrayBuffer(4 * count * size))
  const buffers = new Map<string, Float32Array>()
  const staged = (name: string, data: Float32Array) => {
    let buffer = buffers.get(name)
    if (buffer === undefined || buffer.length < data.length) {
      buffer = new Float32Array(new SharedArrayBuffer(4 * Math.max(data.length, 1)))
      buffers.set(name, buffer)
    }
    const view = buffer.subarray(0, data.length)
    view.set(data)
    return view
  }
  return {
    init: (index) => ({ index, count, control, losses, gradients, update }),
    stage: (batch, step) => {
      const inputs: Record<string, Float32Array> = {}
      for (const [name, data] of Object.entries(batch.inputs)) inputs[name] = staged(`input:${name}`, data)
      return { step, size: batch.size, inputs, target: staged("target", batch.target) }
    },
    firstNonFinite: () => {
      for (let k = 0; k < count; k++) {
        const i = Atomics.load(control, HEADER + count + k)
        if (i >= 0) return i
      }
      return -1
    },
    abort: () => {
      Atomics.store(control, ABORT, 1)
      Atomics.notify(control, GENERATION)
    }
  }
}
