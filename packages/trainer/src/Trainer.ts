/**
 * Data-parallel training. Each step splits the global batch into one contiguous
 * shard per device, runs forward and backward on every device at once, averages
 * the gradients weighted by shard size in device order (so the result does not
 * depend on timing), and applies the same update on every replica. Metrics come out
 * as a stream of events; checkpoints make a run resumable after a fault.
 *
 * @since 0.1.0
 */
import { Chunk, Effect, Stream } from "effect"
import cliProgress from "cli-progress"
import type { Backend, Tensor } from "./Backend.js"
import * as Checkpoint from "./Checkpoint.js"
import * as Dataset from "./Dataset.js"
import { forward, forwardBackward, type Grad } from "./internal/execute.js"
import type { Model, Parameters } from "./Model.js"
import * as ModelModule from "./Model.js"
import * as Optimizer from "./Optimizer.js"
import * as Random from "./Random.js"
import {
  BackendError,
  DeviceLostError,
  NonFiniteError,
  ReplicaMismatchError,
  ShapeError,
  TrainerConfigError,
  type TrainerError
} from "./TrainerError.js"

/**
 * Where the batches come from: an in-memory dataset (shuffled per epoch from the
 * seed) or a function giving each epoch's stream of global batches.
 *
 * @since 0.1.0
 * @category models
 */
export type Data<E = never> = Dataset.Dataset | ((epoch: number) => Stream.Stream<Dataset.Batch, E>)

/**
 * Options of {@link fit} and {@link stream}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = never> {
  readonly model: Model
  readonly data: Data<E>
  /** One replica per device; two or more train data-parallel. */
  readonly devices: ReadonlyArray<Backend>
  /** Rows per global batch (split across the devices). */
  readonly batchSize: number
  readonly epochs: number
  readonly optimizer: Optimizer.Optimizer
  /** Seeds parameter initialisation and shuffling. */
  readonly seed: number
  /** Save a checkpoint into `directory` every `every` steps (default: at the end of each epoch). */
  readonly checkpoint?: { readonly directory: string; readonly every?: number }
  /** Continue from the checkpoint in this directory (`true`: the `checkpoint` directory) when one exists. */
  readonly resume?: string | boolean
  /** Show a progress bar; defaults to whether stdout is a terminal. */
  readonly progress?: boolean
  /** Read every replica after each step and fail with `ReplicaMismatchError` when one differs. */
  readonly checkReplicas?: boolean
  /** Called before each step with its number and the devices (to inject faults in tests). */
  readonly beforeStep?: (step: number, devices: ReadonlyArray<Backend>) => void
}

/**
 * What training reports, in order: `Started`, then per step a `Step` (and a
 * `Checkpoint` when one was saved), an `Epoch` after each epoch, and `Completed`.
 *
 * @since 0.1.0
 * @category models
 */
export type Event =
  | {
      readonly _tag: "Started"
      readonly devices: ReadonlyArray<string>
      /** The step training starts after (non-zero when resumed). */
      readonly step: number
      readonly epoch: number
      readonly parameters: number
    }
  | {
      readonly _tag: "Step"
      readonly step: number
      readonly epoch: number
      readonly batch: number
      readonly samples: number
      readonly shards: ReadonlyArray<number>
      readonly loss: number
      readonly samplesPerSecond: number
      readonly milliseconds: number
      /** Largest difference between replicas after the update (only with `checkReplicas`). */
      readonly replicaDifference?: number
    }
  | {
      readonly _tag: "Epoch"
      readonly epoch: number
      readonly steps: number
      readonly samples: number
      /** Mean loss over the epoch's samples. */
      readonly loss: number
      readonly samplesPerSecond: number
      readonly milliseconds: number
    }
  | { readonly _tag: "Checkpoint"; readonly step: number; readonly path: string }
  | { readonly _tag: "Completed"; readonly step: number; readonly parameters: Parameters }

/**
 * The outcome of {@link fit}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Result {
  readonly parameters: Parameters
  readonly steps: number
  readonly epochs: ReadonlyArray<Extract<Event, { _tag: "Epoch" }>>
  readonly losses: ReadonlyArray<number>
}

interface Replica {
  readonly device: Backend
  readonly params: Map<string, Tensor>
  readonly grads: Map<string, Tensor>
  readonly state: Map<string, ReadonlyArray<Tensor>>
}

/** Runs `f` on a device; failures become `DeviceLostError` (naming device and step) or `BackendError`. */
const onDevice = <A>(
  device: Backend,
  step: number,
  operation: string,
  f: () => Promise<A>
): Effect.Effect<A, DeviceLostError | BackendError> =>
  Effect.tryPromise({
    try: async () => f(),
    catch: (cause) => {
      const lost = device.lost()
      if (cause instanceof DeviceLostError || lost !== undefined) {
        return new DeviceLostError({
          device: device.id,
          step,
          message: `device ${device.id} was lost at step ${step}: ${lost ?? (cause as DeviceLostError).message}`
        })
      }
      if (cause instanceof BackendError) return cause
      return new BackendError({
        device: device.id,
        operation,
        message: `${operation} on ${device.id} failed at step ${step}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
    }
  })

const firstNonFinite = (data: Float32Array): number => {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i
  return -1
}

/**
 * Row counts of the shards of `size` rows over `n` devices: contiguous, the first
 * ones one row larger when `size` does not divide evenly.
 *
 * @since 0.1.0
 * @category training
 */
export const shardSizes = (size: number, n: number): ReadonlyArray<number> =>
  Array.from({ length: n }, (_, k) => Math.floor(size / n) + (k < size % n ? 1 : 0))

const validate = <E>(options: Options<E>): Effect.Effect<void, TrainerConfigError | ShapeError> =>
  Effect.gen(function* () {
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

const checkWidths = (
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

/**
 * Trains and reports progress as a stream of events. The stream fails with a
 * tagged error: `ShapeError` (model and data do not fit), `NonFiniteError` (NaN or
 * infinity in a batch, a loss or a gradient, naming the step), `DeviceLostError`
 * (resume from the last checkpoint), `CheckpointError`, `BackendError`,
 * `TrainerConfigError`, or the data stream's own error.
 *
 * @since 0.1.0
 * @category training
 */
export const stream = <E = never>(options: Options<E>): Stream.Stream<Event, TrainerError | E> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      yield* validate(options)
      const { devices, model, optimizer } = options
      const stateNames = Optimizer.stateNames(optimizer)
      const resumeDir =
        options.resume === true ? options.checkpoint?.directory : options.resume === false ? undefined : options.resume
      const resumed =
        resumeDir !== undefined && (yield* Checkpoint.exists(resumeDir))
          ? yield* Checkpoint.load(resumeDir, model)
          : undefined
      if (resumed && resumed.manifest.optimizer._tag !== optimizer._tag) {
        return yield* new TrainerConfigError({
          option: "optimizer",
          message: `the checkpoint in ${resumeDir} was trained with ${resumed.manifest.optimizer._tag}, not ${optimizer._tag}`
        })
      }
      const initial = resumed?.parameters ?? ModelModule.initialize(model, options.seed)

      // one replica per device, released with the scope
      const replicas: Array<Replica> = []
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const r of replicas) {
            if (r.device.lost() !== undefined) continue
            for (const t of [...r.params.values(), ...r.grads.values(), ...[...r.state.values()].flat()]) {
              r.device.dispose(t)
            }
          }
        })
      )
      for (const device of devices) {
        const replica = yield* onDevice(device, 0, "upload parameters", async () => {
          const r: Replica = { device, params: new Map(), grads: new Map(), state: new Map() }
          for (const p of model.parameters) {
            r.params.set(p.name, device.upload(p.shape, initial.get(p.name)!))
            r.grads.set(p.name, device.zeros(p.shape))
            const saved = resumed?.optimizerState.get(p.name)
            r.state.set(
              p.name,
              stateNames.map((_, i) => (saved ? device.upload(p.shape, saved[i]!) : device.zeros(p.shape)))
            )
          }
          return r
        })
        replicas.push(replica)
      }

      const rng = resumed ? Random.fromState(resumed.manifest.rng) : Random.derive(options.seed, "shuffle")
      let step = resumed?.manifest.step ?? 0
      const startEpoch = resumed?.manifest.epoch ?? 0
      const skip = resumed?.manifest.batch ?? 0
      const every = options.checkpoint?.every
      const parameterCount = model.parameters.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)
      // gradient sums and the update, allocated once and reused every step (devices copy what they are given)
      const combined = new Map(
        model.parameters.map((p) => [p.name, new Float64Array(p.shape.reduce((a, b) => a * b, 1))])
      )
      const update = new Map(
        model.parameters.map((p) => [p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1))])
      )

      const batchesPerEpoch =
        typeof options.data === "function" ? undefined : Math.ceil(options.data.size / options.batchSize)
      const bar =
        (options.progress ?? process.stdout.isTTY === true)
          ? new cliProgress.SingleBar(
              {
                format: "epoch {epoch} [{bar}] {value}/{total} steps | loss {loss} | {rate} samples/s",
                hideCursor: true,
                stream: process.stdout
              },
              cliProgress.Presets.shades_classic
            )
          : undefined
      if (bar) {
        bar.start((batchesPerEpoch ?? 0) * options.epochs, step, { epoch: startEpoch, loss: "-", rate: "-" })
        yield* Effect.addFinalizer(() => Effect.sync(() => bar.stop()))
      }

      const readParameters = (replica: Replica, at: number) =>
        onDevice(replica.device, at, "read parameters", async () => {
          const values = await replica.device.readMany(model.parameters.map((p) => replica.params.get(p.name)!))
          return new Map(model.parameters.map((p, i) => [p.name, values[i]!])) as Parameters
        })

      const saveCheckpoint = (epoch: number, batch: number, epochRng: Random.State) =>
        Effect.gen(function* () {
          const replica = replicas[0]!
          const parameters = yield* readParameters(replica, step)
          const optimizerState = yield* onDevice(replica.device, step, "read optimizer state", async () => {
            const k = stateNames.length
            const values = await replica.device.readMany(model.parameters.flatMap((p) => replica.state.get(p.name)!))
            return new Map(model.parameters.map((p, i) => [p.name, values.slice(i * k, (i + 1) * k)]))
          })
          const path = yield* Checkpoint.save(options.checkpoint!.directory, {
            manifest: {
              format: "org-trainer-checkpoint/1",
              step,
              epoch,
              batch,
              seed: options.seed,
              rng: epochRng,
              optimizer,
              parameters: model.parameters.map((p) => ({ name: p.name, shape: p.shape })),
              tensors: ""
            },
            parameters,
            optimizerState
          })
          return { _tag: "Checkpoint" as const, step, path }
        })

      const trainStep = (batch: Dataset.Batch, epoch: number, batchIndex: number) =>
        Effect.gen(function* () {
          step += 1
          const at = step
          const t0 = performance.now()
          for (const [name, data] of [...Object.entries(batch.inputs), ["target", batch.target] as const]) {
            const i = firstNonFinite(data)
            if (i >= 0) {
              return yield* new NonFiniteError({
                step: at,
                what: name === "target" ? "batch target" : `batch input ${name}`,
                message: `step ${at}: batch ${name === "target" ? "target" : `input ${name}`} holds ${data[i]} at value ${i}`
              })
            }
          }
          options.beforeStep?.(at, devices)
          const shards = shardSizes(batch.size, devices.length)
          const starts = shards.map((_, k) => shards.slice(0, k).reduce((a, b) => a + b, 0))
          const results = yield* Effect.forEach(
            replicas,
            (replica, k) =>
              shards[k] === 0
                ? Effect.succeed(undefined)
                : onDevice(replica.device, at, "forward/backward", async () => {
                    const d = replica.device
                    const shard = Dataset.slice(batch, starts[k]!, starts[k]! + shards[k]!)
                    const temps: Array<Tensor> = []
                    try {
                      const { grads, loss } = forwardBackward(d, model, replica.params, shard, temps)
                      const entries = [...grads]
                      const tensors = entries.map(([, g]: [string, Grad]) =>
                        g._tag === "Dense" ? g.value : g.value.values
                      )
                      temps.push(loss, ...tensors)
                      const [lossValue, ...values] = await d.readMany([loss, ...tensors])
                      const host = new Map<string, { indices?: Int32Array; values: Float32Array }>()
                      entries.forEach(([name, g], i) => {
                        host.set(
                          name,
                          g._tag === "Dense" ? { values: values[i]! } : { indices: g.value.indices, values: values[i]! }
                        )
                      })
                      return { loss: lossValue![0]!, grads: host }
                    } finally {
                      for (const t of temps) d.dispose(t)
                    }
                  }),
            { concurrency: "unbounded" }
          )
          // weighted average in device order: the same sums in the same order every time
          let loss = 0
          for (const acc of combined.values()) acc.fill(0)
          results.forEach((r, k) => {
            if (r === undefined) return
            const w = shards[k]! / batch.size
            loss += w * r.loss
            for (const p of model.parameters) {
              const acc = combined.get(p.name)!
              const g = r.grads.get(p.name)!
              if (g.indices === undefined) {
                for (let i = 0; i < acc.length; i++) acc[i]! += w * g.values[i]!
              } else {
                const width = p.shape[1]!
                g.indices.forEach((row, u) => {
                  for (let d = 0; d < width; d++) acc[row * width + d]! += w * g.values[u * width + d]!
                })
              }
            }
          })
          if (!Number.isFinite(loss)) {
            return yield* new NonFiniteError({ step: at, what: "loss", message: `step ${at}: the loss is ${loss}` })
          }
          for (const p of model.parameters) {
            const g = update.get(p.name)!
            g.set(combined.get(p.name)!)
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
          yield* Effect.forEach(
            replicas,
            (replica) =>
              onDevice(replica.device, at, "update", async () => {
                for (const p of model.parameters) {
                  const grad = replica.grads.get(p.name)!
                  replica.device.write(grad, update.get(p.name)!)
                  Optimizer.apply(
                    replica.device,
                    optimizer,
                    replica.params.get(p.name)!,
                    grad,
                    replica.state.get(p.name)!,
                    at
                  )
                }
                await replica.device.sync()
              }),
            { concurrency: "unbounded" }
          )
          const milliseconds = performance.now() - t0
          let replicaDifference: number | undefined
          if (options.checkReplicas) {
            replicaDifference = 0
            const reference = yield* readParameters(replicas[0]!, at)
            for (const replica of replicas.slice(1)) {
              const other = yield* readParameters(replica, at)
              for (const [name, values] of reference) {
                const o = other.get(name)!
                let diff = 0
                for (let i = 0; i < values.length; i++) diff = Math.max(diff, Math.abs(values[i]! - o[i]!))
                if (diff !== 0 || o.length !== values.length) {
                  return yield* new ReplicaMismatchError({
                    step: at,
                    device: replica.device.id,
                    parameter: name,
                    message: `step ${at}: ${name} on ${replica.device.id} differs from ${replicas[0]!.device.id} by ${diff}`
                  })
                }
              }
            }
          }
          const event: Event = {
            _tag: "Step",
            step: at,
            epoch,
            batch: batchIndex,
            samples: batch.size,
            shards,
            loss,
            samplesPerSecond: batch.size / (milliseconds / 1000),
            milliseconds,
            ...(replicaDifference === undefined ? {} : { replicaDifference })
          }
          bar?.update(at, { epoch, loss: loss.toFixed(4), rate: Math.round(batch.size / (milliseconds / 1000)) })
          return event
        })

      const epochStream = (epoch: number): Stream.Stream<Event, TrainerError | E> =>
        Stream.unwrap(
          Effect.sync(() => {
            const epochRng = rng.state()
            const source =
              typeof options.data === "function"
                ? options.data(epoch)
                : Dataset.shuffled(options.data, { batchSize: options.batchSize, random: rng })
            const first = epoch === startEpoch ? skip : 0
            let samples = 0
            let lossSum = 0
            let steps = 0
            let last = first
            const t0 = performance.now()
            const steps$ = source.pipe(
              Stream.drop(first),
              Stream.zipWithIndex,
              Stream.mapEffect(([batch, i]) =>
                Effect.gen(function* () {
                  if (typeof options.data === "function") {
                    yield* checkWidths(
                      model,
                      (name) => (batch.inputs[name] ? batch.inputs[name]!.length / batch.size : undefined),
                      batch.target.length / batch.size
                    )
                  }
                  const event = yield* trainStep(batch, epoch, first + i)
                  if (event._tag === "Step") {
                    samples += event.samples
                    lossSum += event.loss * event.samples
                    steps += 1
                  }
                  last = first + i + 1
                  const out: Array<Event> = [event]
                  if (every !== undefined && step % every === 0) out.push(yield* saveCheckpoint(epoch, last, epochRng))
                  return Chunk.fromIterable(out)
                })
              ),
              Stream.flattenChunks
            )
            const end = Stream.fromEffect(
              Effect.gen(function* () {
                const milliseconds = performance.now() - t0
                // a resumed epoch whose batches were all done already reports nothing
                if (steps === 0 && first > 0) return Chunk.empty<Event>()
                const out: Array<Event> = [
                  {
                    _tag: "Epoch",
                    epoch,
                    steps,
                    samples,
                    loss: samples > 0 ? lossSum / samples : NaN,
                    samplesPerSecond: samples / (milliseconds / 1000),
                    milliseconds
                  }
                ]
                if (options.checkpoint && (every === undefined || step % every !== 0) && steps > 0) {
                  // the next epoch starts from the generator's state now (after this epoch's permutation)
                  out.push(yield* saveCheckpoint(epoch + 1, 0, rng.state()))
                }
                return Chunk.fromIterable(out)
              })
            ).pipe(Stream.flattenChunks)
            return Stream.concat(steps$, end)
          })
        )

      const started: Event = {
        _tag: "Started",
        devices: devices.map((d) => d.id),
        step,
        epoch: startEpoch,
        parameters: parameterCount
      }
      const completed = Stream.fromEffect(
        Effect.map(readParameters(replicas[0]!, step), (parameters): Event => ({ _tag: "Completed", step, parameters }))
      )
      const epochs = Array.from({ length: Math.max(0, options.epochs - startEpoch) }, (_, i) => startEpoch + i)
      return Stream.make(started).pipe(
        Stream.concat(Stream.fromIterable(epochs).pipe(Stream.flatMap(epochStream))),
        Stream.concat(completed)
      )
    })
  )

/**
 * Trains to the end and returns the final parameters (read from the first replica),
 * the step count, the per-epoch metrics and the loss of every step.
 *
 * @since 0.1.0
 * @category training
 */
export const fit = <E = never>(options: Options<E>): Effect.Effect<Result, TrainerError | E> =>
  Stream.runFold(
    stream(options),
    {
      parameters: new Map() as Parameters,
      steps: 0,
      epochs: [] as Array<Extract<Event, { _tag: "Epoch" }>>,
      losses: [] as Array<number>
    },
    (acc, event) => {
      switch (event._tag) {
        case "Step":
          acc.losses.push(event.loss)
          return acc
        case "Epoch":
          acc.epochs.push(event)
          return acc
        case "Completed":
          return { ...acc, parameters: event.parameters, steps: event.step }
        default:
          return acc
      }
    }
  )

/**
 * The model's outputs for some rows on one device (scores for a two-tower model,
 * logits otherwise).
 *
 * @since 0.1.0
 * @category inference
 */
export const predict = (
  model: Model,
  device: Backend,
  parameters: Parameters,
  batch: Omit<Dataset.Batch, "target">
): Effect.Effect<Float32Array, DeviceLostError | BackendError> =>
  onDevice(device, 0, "predict", async () => {
    const temps: Array<Tensor> = []
    try {
      const params = new Map<string, Tensor>()
      for (const p of model.parameters) {
        const t = device.upload(p.shape, parameters.get(p.name)!)
        temps.push(t)
        params.set(p.name, t)
      }
      const out = forward(device, model, params, batch, temps)
      temps.push(out)
      return await device.read(out)
    } finally {
      for (const t of temps) device.dispose(t)
    }
  })
