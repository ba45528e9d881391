import { Effect } from "effect"
import type { Backend } from "../Backend.js"
import { BackendError, DeviceLostError } from "../TrainerError.js"
import { messageOf } from "./common.js"

/** Runs `f` on a device; failures become `DeviceLostError` (naming device and step) or `BackendError`. */
export const onDevice = <A>(
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
        message: `${operation} on ${device.id} failed at step ${step}: ${messageOf(cause)}`,
        cause
      })
    }
  })

/** The index of the first value that is NaN or infinite, or -1. */
export const firstNonFinite = (data: Float32Array): number => {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i
  return -1
}
