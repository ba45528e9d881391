/** Checking a run's options and data, and opening one replica per device. */
import { Effect, type Scope } from "effect"
import type { Backend } from "../Backend.js"
import type * as Checkpoint from "../Checkpoint.js"
import type { Model, Parameters } from "../Model.js"
import * as Optimizer from "../Optimizer.js"
import type { Options } from "../Trainer.js"
import { type BackendError, type DeviceLostError, ShapeError, TrainerConfigError } from "../TrainerError.js"
import { onDevice } from "./device.js"
import { checkOptions, TrainerOptions } from "./options.js"
import { type Group, layout, makeGroup } from "./group.js"
import { localReplica, type Replica } from "./replica.js"
import { isThreaded, threadedReplica } from "./threads.js"

/** Refuses options that cannot train, naming the option; checks the data's widths when it is in memory. */
export const validate = <E>(options: Options<E>): Effect.Effect<void, TrainerConfigError | ShapeError> =>
  Effect.gen(function* () {
    yield* checkOptions("Trainer", TrainerOptions, options)
    const config = (option: string, message: string) => new TrainerConfigError({ option, message })
    if (options.devices.length === 0) return yield* config("devices", "at least one device is needed")
    const ids = options.devices.map((d) => d.id)
    if (new Set(ids).size !== ids.length) return yield* config("devices", `device ids repeat: ${ids.join(", ")}`)
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      return yield* config("batchSize", `batchSize must be a positive integer, got ${options.batchSize}`)
    }
    if (!Number.isInteger(options.epochs) || options.epochs < 0) {
      return yield* config("epochs", `epochs must be a non-negative integer, got ${options.epochs}`)
    }
    const bad = Optimizer.validate(options.optimizer)
    if (bad) return yield* config("optimizer", bad)
    if (options.checkpoint?.every !== undefined && !(options.checkpoint.every >= 1)) {
      return yield* config("checkpoint.every", `checkpoint.every must be >= 1, got ${options.checkpoint.every}`)
    }
    const data = options.data
    if (typeof data !== "function") {
      yield* checkWidths(options.model, (name) => data.inputs[name]?.width, data.target.width)
    }
  })

/** Fails with a `ShapeError` naming the input (or the target) whose width the model does not read. */
export const checkWidths = (
  model: Model,
  widthOf: (input: string) => number | undefined,
  targetWidth: number
): Effect.Effect<void, ShapeError> =>
  Effect.gen(function* () {
    for (const [name, width] of Object.entries(model.inputs)) {
      const actual = widthOf(name)
      if (actual !== width) {
        return yield* new ShapeError({
          layer: `input:${name}`,
          expected: [width],
          actual: actual === undefined ? [] : [actual],
          message: `input:${name}: the model reads ${width} features per row, the data has ${actual ?? "none"}`
        })
      }
    }
    if (targetWidth !== model.targetWidth) {
      yield* new ShapeError({
        layer: "target",
        expected: [model.targetWidth],
        actual: [targetWidth],
        message: `target: the loss ${model.loss} needs ${model.targetWidth} values per row, the data has ${targetWidth}`
      })
    }
  })

/** The replicas of a run and the buffers they share. */
export interface Replicas {
  readonly replicas: ReadonlyArray<Replica>
  /** The averaged gradient of the current step, per parameter in model order (shared with worker threads). */
  readonly update: ReadonlyArray<Float32Array>
  /** When every device is a threaded CPU device: the group that runs whole steps among their threads. */
  readonly group: Group | undefined
}

/**
 * One replica per device, all starting from `initial` (and the saved optimizer state when resuming), closed with
 * the scope. Threaded CPU devices get a worker thread each; the others run in this thread.
 */
export const openReplicas = (
  devices: ReadonlyArray<Backend>,
  model: Model,
  optimizer: Optimizer.Optimizer,
  initial: Parameters,
  resumed: Checkpoint.Checkpoint | undefined
): Effect.Effect<Replicas, DeviceLostError | BackendError, Scope.Scope> =>
  Effect.gen(function* () {
    // the averaged gradient, flattened in model order; one view per parameter
    const { offsets, size } = layout(model)
    const flat = new Float32Array(new SharedArrayBuffer(4 * Math.max(size, 1)))
    const update = model.parameters.map((p, i) =>
      flat.subarray(offsets[i]!, offsets[i]! + p.shape.reduce((a, b) => a * b, 1))
    )
    const group = devices.every(isThreaded) ? makeGroup(model, devices.length, flat) : undefined
    const init = {
      model,
      optimizer,
      parameters: model.parameters.map((p) => initial.get(p.name)!),
      state: resumed ? model.parameters.map((p) => resumed.optimizerState.get(p.name)!) : undefined,
      update
    }
    const replicas = yield* Effect.forEach(
      devices,
      (device, k) =>
        Effect.acquireRelease(
          onDevice(device, 0, "upload parameters", async () =>
            isThreaded(device)
              ? threadedReplica(device, group ? { ...init, group: group.init(k) } : init)
              : localReplica(device, init)
          ),
          (replica) => Effect.sync(() => replica.close())
        ),
      { concurrency: "unbounded" }
    )
    // released before the replicas: no worker may still wait in a step when its thread is reset
    if (group) yield* Effect.addFinalizer(() => Effect.sync(() => group.abort()))
    return { replicas, update, group }
  })

/** The parameters of a replica, by name. */
export const readParameters = (
  replica: Replica,
  model: Model,
  step: number
): Effect.Effect<Parameters, DeviceLostError | BackendError> =>
  onDevice(replica.device, step, "read parameters", async () => {
    const values = await replica.readParameters()
    return new Map(model.parameters.map((p, i) => [p.name, values[i]!]))
  })
