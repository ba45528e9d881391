/** One data-parallel training step: shard, forward/backward on every device at once, average, update, check. */
import { Effect } from "effect"
import type { Backend } from "../Backend.js"
import * as Dataset from "../Dataset.js"
import type { Model } from "../Model.js"
import type { Event } from "../Trainer.js"
import { BackendError, DeviceLostError, NonFiniteError, ReplicaMismatchError } from "../TrainerError.js"
import { firstNonFinite, onDevice } from "./device.js"
import { type Group, layout, meanLoss } from "./group.js"
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

/** What every device reported for its shard, and the step's loss. */
interface Computed {
  readonly devices: ReadonlyArray<{
    readonly rows: number
    readonly checksum: number
    readonly loss: number
    readonly thread: number
    readonly busyMilliseconds: number
  }>
  readonly loss: number
}

const nonFiniteGradient = (at: number, name: string, value: number, index: number) =>
  new NonFiniteError({
    step: at,
    what: `gradient of ${name}`,
    message: `step ${at}: the gradient of ${name} holds ${value} at value ${index}`
  })

const nonFiniteLoss = (at: number, loss: number) =>
  new NonFiniteError({ step: at, what: "loss", message: `step ${at}: the loss is ${loss}` })

/**
 * The step on replicas driven from this thread: every device computes its shard, the host averages the gradients
 * and every device applies the average.
 */
const hostStep = (
  ctx: StepContext,
  combined: ReadonlyArray<Float64Array>,
  batch: Dataset.Batch,
  shards: ReadonlyArray<number>,
  at: number
): Effect.Effect<Computed, StepError> =>
  Effect.gen(function* () {
    const { model, replicas, update } = ctx
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
    if (!Number.isFinite(loss)) return yield* nonFiniteLoss(at, loss)
    for (const [k, p] of model.parameters.entries()) {
      const g = update[k]!
      g.set(combined[k]!)
      const i = firstNonFinite(g)
      if (i >= 0) return yield* nonFiniteGradient(at, p.name, g[i]!, i)
    }
    // the same update on every replica
    const applied = yield* Effect.forEach(
      replicas,
      (replica) => onDevice(replica.device, at, "update", () => replica.apply(at)),
      { concurrency: "unbounded" }
    )
    return {
      devices: results.map((r, k) => ({ ...r, busyMilliseconds: r.busyMilliseconds + applied[k]! })),
      loss
    }
  })

/**
 * The step on a group of threaded CPU devices: one message per worker; the workers reduce the gradients among
 * themselves and each applies the update to its replica (see `group.ts`).
 */
const groupStep = (
  ctx: StepContext,
  group: Group,
  batch: Dataset.Batch,
  shards: ReadonlyArray<number>,
  at: number
): Effect.Effect<Computed, StepError> =>
  Effect.gen(function* () {
    const { model, replicas, update } = ctx
    for (const { device } of replicas) {
      const lost = device.lost()
      if (lost !== undefined) {
        return yield* new DeviceLostError({
          device: device.id,
          step: at,
          message: `device ${device.id} was lost at step ${at}: ${lost}`
        })
      }
    }
    const request = group.stage(batch, at)
    const results = yield* Effect.forEach(
      replicas,
      (replica) => onDevice(replica.device, at, "training step", () => replica.step!(request)),
      { concurrency: "unbounded" }
    ).pipe(Effect.tapError(() => Effect.sync(() => group.abort())))
    const loss = meanLoss(
      shards,
      results.map((r) => r.loss),
      batch.size
    )
    if (!Number.isFinite(loss)) return yield* nonFiniteLoss(at, loss)
    const bad = group.firstNonFinite()
    if (bad >= 0) {
      const { offsets } = layout(model)
      const k = offsets.findLastIndex((o) => o <= bad)
      return yield* nonFiniteGradient(at, model.parameters[k]!.name, update[k]![bad - offsets[k]!]!, bad - offsets[k]!)
    }
    const skipped = results.findIndex((r) => !r.applied)
    if (skipped >= 0) {
      const device = replicas[skipped]!.device.id
      return yield* new BackendError({
        device,
        operation: "update",
        message: `update on ${device} failed at step ${at}: the device skipped an update the host found finite`
      })
    }
    return { devices: results, loss }
  })

/** A training step over `batch` as update number `at`. */
export const makeStep = (ctx: StepContext) => {
  const { model, replicas, group } = ctx
  const combined = group ? [] : model.parameters.map((p) => new Float64Array(p.shape.reduce((a, b) => a * b, 1)))
  return (batch: Dataset.Batch, at: number, epoch: number, batchIndex: number): Effect.Effect<StepEvent, StepError> =>
    Effect.gen(function* () {
      const t0 = performance.now()
      yield* checkBatch(batch, at)
      ctx.beforeStep?.(at, ctx.devices)
      const shards = shardSizes(batch.size, replicas.length)
      const computed = group
        ? yield* groupStep(ctx, group, batch, shards, at)
        : yield* hostStep(ctx, combined, batch, shards, at)
      const milliseconds = performance.now() - t0
      const busy = Math.max(...computed.devices.map((d) => d.busyMilliseconds))
      const replicaDifference = ctx.checkReplicas ? yield* compareReplicas(ctx, at) : undefined
      return {
        _tag: "Step" as const,
        step: at,
        epoch,
        batch: batchIndex,
        samples: batch.size,
        shards,
        devices: computed.devices.map((r, k) => ({
          device: replicas[k]!.device.id,
          rows: r.rows,
          checksum: r.checksum,
          loss: r.loss,
          thread: r.thread
        })),
        loss: computed.loss,
        samplesPerSecond: batch.size / (milliseconds / 1000),
        milliseconds,
        syncMilliseconds: Math.max(0, milliseconds - busy),
        ...(replicaDifference === undefined ? {} : { replicaDifference })
      }
    })
}
