/**
 * Training data: batches of rows with named inputs and a target, and an in-memory
 * dataset that streams seeded, shuffled batches (an Effect `Stream`).
 *
 * @since 0.1.0
 */
import { Effect, Stream } from "effect"
import * as Shard from "./internal/shard.js"
import * as Random from "./Random.js"
import { TrainerConfigError } from "./TrainerError.js"

/**
 * A batch of `size` rows: each input row-major `[size, width]`, the target
 * `[size, targetWidth]` (class indices for softmax cross-entropy).
 *
 * @since 0.1.0
 * @category models
 */
export interface Batch {
  readonly size: number
  readonly inputs: Readonly<Record<string, Float32Array>>
  readonly target: Float32Array
}

/**
 * Rows held in memory.
 *
 * @since 0.1.0
 * @category models
 */
export interface Dataset {
  readonly _tag: "Dataset"
  readonly size: number
  readonly inputs: Readonly<Record<string, { readonly width: number; readonly data: Float32Array }>>
  readonly target: { readonly width: number; readonly data: Float32Array }
}

/**
 * A dataset of `size` rows; widths follow from the array lengths. Fails with
 * `TrainerConfigError` naming the input whose length is not a multiple of `size`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly size: number
  readonly inputs: Readonly<Record<string, Float32Array>>
  readonly target: Float32Array
}): Effect.Effect<Dataset, TrainerConfigError> =>
  Effect.gen(function* () {
    const { size } = options
    if (!Number.isInteger(size) || size < 1) {
      return yield* new TrainerConfigError({ option: "size", message: `dataset size must be positive, got ${size}` })
    }
    const widthOf = (name: string, data: Float32Array) =>
      data.length % size === 0 && data.length > 0
        ? Effect.succeed({ width: data.length / size, data })
        : Effect.fail(
            new TrainerConfigError({
              option: name,
              message: `${name} has ${data.length} values, not a positive multiple of ${size} rows`
            })
          )
    const inputs: Record<string, { width: number; data: Float32Array }> = {}
    for (const [name, data] of Object.entries(options.inputs)) inputs[name] = yield* widthOf(`inputs.${name}`, data)
    const target = yield* widthOf("target", options.target)
    return { _tag: "Dataset" as const, size, inputs, target }
  })

/**
 * The rows `[start, end)` of a batch (a view: no copy).
 *
 * @since 0.1.0
 * @category utils
 */
export const slice = (batch: Batch, start: number, end: number): Batch => {
  const view = (data: Float32Array) => {
    const width = batch.size === 0 ? 0 : data.length / batch.size
    return data.subarray(start * width, end * width)
  }
  const inputs: Record<string, Float32Array> = {}
  for (const [name, data] of Object.entries(batch.inputs)) inputs[name] = view(data)
  return { size: end - start, inputs, target: view(batch.target) }
}

/**
 * The rows at `rows` (copied), in that order.
 *
 * @since 0.1.0
 * @category utils
 */
export const gather = (dataset: Dataset, rows: ArrayLike<number>): Batch => {
  const take = (source: { readonly width: number; readonly data: Float32Array }) => {
    const out = new Float32Array(rows.length * source.width)
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!
      out.set(source.data.subarray(r * source.width, (r + 1) * source.width), i * source.width)
    }
    return out
  }
  const inputs: Record<string, Float32Array> = {}
  for (const [name, source] of Object.entries(dataset.inputs)) inputs[name] = take(source)
  return { size: rows.length, inputs, target: take(dataset.target) }
}

/**
 * One epoch of batches in an order drawn from `random` (a seeded permutation; the
 * last batch may be smaller). The permutation is drawn when this is called, so the
 * generator's state afterwards is the same whether or not the stream is run.
 *
 * @since 0.1.0
 * @category streams
 */
export const shuffled = (
  dataset: Dataset,
  options: { readonly batchSize: number; readonly random: Random.Random }
): Stream.Stream<Batch> => {
  const order = Random.permutation(options.random, dataset.size)
  const count = Math.ceil(dataset.size / options.batchSize)
  return Stream.range(0, count - 1).pipe(
    Stream.map((i) => gather(dataset, order.subarray(i * options.batchSize, (i + 1) * options.batchSize)))
  )
}

/**
 * One epoch of batches in row order.
 *
 * @since 0.1.0
 * @category streams
 */
export const sequentialBatches = (dataset: Dataset, batchSize: number): Stream.Stream<Batch> => {
  const count = Math.ceil(dataset.size / batchSize)
  return Stream.range(0, count - 1).pipe(
    Stream.map((i) => {
      const rows = Array.from(
        { length: Math.min(batchSize, dataset.size - i * batchSize) },
        (_, j) => i * batchSize + j
      )
      return gather(dataset, rows)
    })
  )
}

/**
 * An order-sensitive 32-bit digest (FNV-1a) of a batch's values: the inputs in name
 * order, then the target. Each device reports the digest of the rows it trained on
 * in the `Step` event, so a test can check that a shard holds exactly its rows.
 *
 * @since 0.2.0
 * @category utils
 */
export const checksum: (batch: Batch) => number = Shard.checksum
