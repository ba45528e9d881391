/** One data-parallel training step: shard, forward/backward on every device at once, average, update, check. */
import { Effect } from "effect"
import type { Backend } from "../Backend.js"
import * as Dataset from "../Dataset.js"
import type { Model } from "../Model.js"
import type { Event } from "../Trainer.js"
import { type BackendError, type DeviceLostError, NonFiniteError, ReplicaMismatchError } from "../TrainerError.js"
import { firstNonFinite, onDevice } from "./device.js"
import type { ShardResult } from "./replica.js"
import { readParameters, type Replicas } from "./setup.js"
import { shardSizes, shardStarts } from "./shard.js"

/** What a step needs besides its batch. */
export interface StepContext extends Replicas {
  readonly model: Model
  readonly devices: ReadonlyArray<Backend>
  readonly checkReplicas: boolean
  readonly beforeStep: ((step: number, devices: ReadonlyArray<Backend>) => void) | undefined
}

type StepEvent = Extract<Event, { _tag: "Step" }>
type StepError = NonFiniteError | ReplicaMismatchError | DeviceLostError | BackendError

/** Fails with `NonFiniteError` when an input or the target of the batch holds NaN or an infinity. */
const checkBatch = (batch: Dataset.Batch, at: number): Effect.Effect<void, NonFiniteError> =>
  Effect.gen(function* () {
    for (const [name, data] of [...Object.entries(batch.inputs), ["target", batch.target] as const]) {
      const i = firstNonFinite(data)
      if (i >= 0) {
        const what = name === "target" ? "batch target" : `batch input ${name}`
        return yield* new NonFiniteError({
          step: at,
          what,
          message: `step ${at}: ${what} holds ${data[i]} at value ${i}`
        })
      }
    }
  })

/**
 * The weighted mean of the shards' gradients into `combined`, in device order (the same sums in the same order
 * every time, so the result does not depend on timing), and the weighted mean loss.
 */
const average = (
  model: Model,
  results: ReadonlyArray<ShardResult>,
  total: number,
  combined: ReadonlyArray<Float64Array>
): number => {
  let loss = 0
  for (const acc of combined) acc.fill(0)
  for (const r of results) {
    if (r.rows === 0) continue
    const w = r.rows / total
    loss += w * r.loss
    model.parameters.forEach((p, k) => {
      const acc = combined[k]!
      const g = r.grads[k]!
      if (g.indices === undefined) {
        for (let i = 0; i < acc.length; i++) acc[i]! += w * g.values[i]!
      } else {
        const width = p.shape[1]!
        g.indices.forEach((row, u) => {
          for (let d = 0; d < width; d++) acc[row * width + d]! += w * g.values[u * width + d]!
        })
      }
    })
  }
  return loss
}

/** Fails with `ReplicaMismatchError` unless every replica holds exactly the parameters of the first. */
const compareReplicas = (ctx: StepContext, at: number): Effect.Effect<number, StepError> =>
  Effect.gen(function* () {
    const [first, ...rest] = ctx.replicas
    const reference = yield* readParameters(first!, ctx.model, at)
    for (const replica of rest) {
      const other = yield* readParameters(replica, ctx.model, at)
      for (const [name, values] of reference) {
        const o = other.get(name)!
        let diff = 0
        for (let i = 0; i < values.length; i++) diff = Math.max(diff, Math.abs(values[i]! - o[i]!))
        if (diff !== 0 || o.length !== values.length) {
          return yield* new ReplicaMismatchError({
            step: at,
            device: replica.device.id,
            parameter: name,
            message: `step ${at}: ${name} on ${replica.device.id} differs from ${first!.device.id} by ${diff}`
          })
        }
      }
    }
    return 0
  })

/** A training step over `batch` as update number `at`. */
export const makeStep = (ctx: StepContext) => {
  const { model, replicas, update } = ctx
  const combined = model.parameters.map((p) => new Float64Array(p.shape.reduce((a, b) => a * b, 1)))
  return (batch: Dataset.Batch, at: number, epoch: number, batchIndex: number): Effect.Effect<StepEvent, StepError> =>
    Effect.gen(function* () {
      const t0 = performance.now()
      yield* checkBatch(batch, at)
      ctx.beforeStep?.(at, ctx.devices)
      const shards = shardSizes(batch.size, replicas.length)
      const starts = shardStarts(shards)
      const results = yield* Effect.forEach(
        replicas,
        (replica, k) =>
          onDevice(replica.device, at, "forward/backward", () =>
            replica.compute(Dataset.slice(batch, starts[k]!, starts[k]! + shards[k]!))
          ),
        { concurrency: "unbounded" }
      )
      const loss = average(model, results, batch.size, combined)
      if (!Number.isFinite(loss)) {
        return yield* new NonFiniteError({ step: at, what: "loss", message: `step ${at}: the loss is ${loss}` })
      }
      for (const [k, p] of model.parameters.entries()) {
        const g = update[k]!
        g.set(combined[k]!)
        const i = firstNonFinite(g)
        if (i >= 0) {
          return yield* new NonFiniteError({
            step: at,
            what: `gradient of ${p.name}`,
            message: `step ${at}: the gradient of ${p.name} holds ${g[i]} at value ${i}`
          })
        }
      }
      // the same update on every replica
      const applied = yield* Effect.forEach(
        replicas,
        (replica) => onDevice(replica.device, at, "update", () => replica.apply(at)),
        { concurrency: "unbounded" }
      )
      const milliseconds = performance.now() - t0
      const busy = Math.max(...results.map((r, k) => r.busyMilliseconds + applied[k]!))
      const replicaDifference = ctx.checkReplicas ? yield* compareReplicas(ctx, at) : undefined
      return {
        _tag: "Step" as const,
        step: at,
        epoch,
        batch: batchIndex,
        samples: batch.size,
        shards,
        devices: results.map((r, k) => ({
          device: replicas[k]!.device.id,
          rows: r.rows,
          checksum: r.checksum,
          loss: r.loss,
          thread: r.thread
        })),
        loss,
        samplesPerSecond: batch.size / (milliseconds / 1000),
        milliseconds,
        syncMilliseconds: Math.max(0, milliseconds - busy),
        ...(replicaDifference === undefined ? {} : { replicaDifference })
      }
    })
}
