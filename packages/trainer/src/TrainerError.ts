/**
 * Tagged errors of `@org/trainer`. Each names what it concerns: the layer, the
 * training step, the device or the checkpoint.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * A model does not fit together: a layer's input width differs from the previous
 * layer's output, a loss does not match the output layer, or the data's widths
 * differ from the model's inputs. `layer` names the offending layer (`"dense_2"`,
 * `"item.dense_0"`, `"input:member"`).
 *
 * @since 0.1.0
 * @category errors
 */
export class ShapeError extends Data.TaggedError("ShapeError")<{
  readonly layer: string
  readonly expected: ReadonlyArray<number>
  readonly actual: ReadonlyArray<number>
  readonly message: string
}> {}

/**
 * A batch, a loss or a gradient held NaN or an infinity. Training stops at `step`
 * (1-based, the step that was running) instead of producing a NaN model. `what`
 * says where (`"batch input x"`, `"loss"`, `"gradient of dense_0.weight"`).
 *
 * @since 0.1.0
 * @category errors
 */
export class NonFiniteError extends Data.TaggedError("NonFiniteError")<{
  readonly step: number
  readonly what: string
  readonly message: string
}> {}

/**
 * A device was lost (destroyed, reset or removed) while training. `device` names it
 * (`"webgpu:1"`), `step` is the step that was running. Resume from the last
 * checkpoint with fresh devices.
 *
 * @since 0.1.0
 * @category errors
 */
export class DeviceLostError extends Data.TaggedError("DeviceLostError")<{
  readonly device: string
  readonly step: number
  readonly message: string
}> {}

/**
 * A backend refused an operation: no adapter for the requested backend, a kernel
 * that failed validation, tensors of the wrong shape or from another device.
 * `device` names the backend instance, `operation` the kernel or call.
 *
 * @since 0.1.0
 * @category errors
 */
export class BackendError extends Data.TaggedError("BackendError")<{
  readonly device: string
  readonly operation: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Replicas disagreed after an update (only checked when asked): `parameter` on
 * `device` differs from the first replica at `step`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReplicaMismatchError extends Data.TaggedError("ReplicaMismatchError")<{
  readonly step: number
  readonly device: string
  readonly parameter: string
  readonly message: string
}> {}

/**
 * A checkpoint could not be written or read: a malformed safetensors header, a
 * missing tensor, a manifest for another model. `path` names the file.
 *
 * @since 0.1.0
 * @category errors
 */
export class CheckpointError extends Data.TaggedError("CheckpointError")<{
  readonly path: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Training options that cannot work: no devices, a batch size below one, an
 * unknown optimizer setting, a data source that failed. `option` names it.
 *
 * @since 0.1.0
 * @category errors
 */
export class TrainerConfigError extends Data.TaggedError("TrainerConfigError")<{
  readonly option: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Any error `@org/trainer` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type TrainerError =
  | ShapeError
  | NonFiniteError
  | DeviceLostError
  | BackendError
  | ReplicaMismatchError
  | CheckpointError
  | TrainerConfigError
