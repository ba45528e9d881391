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
import type { Backend, Tensor } from "./Backend.js"
import * as Checkpoint from "./Checkpoint.js"
import * as Dataset from "./Dataset.js"
import { onDevice } from "./internal/device.js"
import { forward } from "./internal/execute.js"
import { checkWidths, openReplicas, readParameters, validate } from "./internal/setup.js"
import * as Shard from "./internal/shard.js"
import { makeStep } from "./internal/step.js"
import type { Model, Parameters } from "./Model.js"
import * as ModelModule from "./Model.js"
import type * as Optimizer from "./Optimizer.js"
import * as Random from "./Random.js"
import { type BackendError, type DeviceLostError, TrainerConfigError, type TrainerError } from "./TrainerError.js"

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
      /** Rows per device, in device order. */
      readonly shards: ReadonlyArray<number>
      /**
       * What each device computed on, as the device reported it: its rows, the digest of their values
       * (`Dataset.checksum`), its mean loss over them, and the thread it ran on (`worker_threads.threadId`; 0 is
       * the main thread, threaded CPU devices have one each).
       */
      readonly devices: ReadonlyArray<{
        readonly device: string
        readonly rows: number
        readonly checksum: number
        readonly loss: number
        readonly thread: number
      }>
      readonly loss: number
      readonly samplesPerSecond: number
      readonly milliseconds: number
      /**
       * The part of the step that was not a device computing: handing out shards, waiting for results to come
       * back, averaging gradients (the step's time minus the busiest device's own compute time).
       */
      readonly syncMilliseconds: number
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

/**
 * Row counts of the shards of `size` rows over `n` devices: contiguous, the first
 * ones one row larger when `size` does not divide evenly.
 *
 * @since 0.1.0
 * @category training
 */
export const shardSizes: (size: number, n: number) => ReadonlyArray<number> = Shard.shardSizes

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
      const opened = yield* openReplicas(devices, model, optimizer, initial, resumed)
      // checkpoints and the final parameters come from the first replica (all are identical)
      const primary = opened.replicas[0]!
      const trainStep = makeStep({
        ...opened,
        model,
        devices,
        checkReplicas: options.checkReplicas === true,
        beforeStep: options.beforeStep
      })

      const rng = resumed ? Random.fromState(resumed.manifest.rng) : Random.derive(options.seed, "shuffle")
      let step = resumed?.manifest.step ?? 0
      const startEpoch = resumed?.manifest.epoch ?? 0
      const skip = resumed?.manifest.batch ?? 0
      const every = options.checkpoint?.every
      const parameterCount = model.parameters.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)

      const saveCheckpoint = (epoch: number, batch: number, epochRng: Random.State) =>
        Effect.gen(function* () {
          const parameters = yield* readParameters(primary, model, step)
          const state = yield* onDevice(primary.device, step, "read optimizer state", () => primary.readState())
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
            optimizerState: new Map(model.parameters.map((p, i) => [p.name, state[i]!]))
          })
          return { _tag: "Checkpoint" as const, step, path }
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
            const t0 = performance.now()
            const steps$ = source.pipe(
              Stream.drop(first),
              // the next batch is gathered while the devices compute this one
              Stream.buffer({ capacity: 1 }),
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
                  step += 1
                  const event = yield* trainStep(batch, step, epoch, first + i)
                  samples += event.samples
                  lossSum += event.loss * event.samples
                  steps += 1
                  const out: Array<Event> = [event]
                  if (every !== undefined && step % every === 0) {
                    out.push(yield* saveCheckpoint(epoch, first + i + 1, epochRng))
                  }
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
        Effect.map(
          readParameters(primary, model, step),
          (parameters): Event => ({ _tag: "Completed", step, parameters })
        )
      )
      const epochs = Array.from({ length: Math.max(0, options.epochs - startEpoch) }, (_, i) => startEpoch + i)
      return Stream.make(started).pipe(
        Stream.concat(Stream.fromIterable(epochs).pipe(Stream.flatMap(epochStream))),
        Stream.concat(completed)
      )
    })
  )

/**
 * Runs a stream of training events to the end and gathers the final parameters,
 * the step count, the per-epoch metrics and the loss of every step (what {@link fit}
 * returns). Use it after tapping the stream, for example with `Progress.render`.
 *
 * @since 0.2.0
 * @category training
 */
export const collect = <E, R>(events: Stream.Stream<Event, E, R>): Effect.Effect<Result, E, R> =>
  Stream.runFold(
    events,
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
 * Trains to the end and returns the final parameters (read from the first replica),
 * the step count, the per-epoch metrics and the loss of every step.
 *
 * @since 0.1.0
 * @category training
 */
export const fit = <E = never>(options: Options<E>): Effect.Effect<Result, TrainerError | E> => collect(stream(options))

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
