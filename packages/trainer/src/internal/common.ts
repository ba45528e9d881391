import type { Activation, Tensor } from "../Backend.js"
import { BackendError, DeviceLostError } from "../TrainerError.js"

/** Throws a `BackendError` for `operation` on `device` unless `ok`. */
export const require = (ok: boolean, device: string, operation: string, message: () => string): void => {
  if (!ok) throw new BackendError({ device, operation, message: `${operation} on ${device}: ${message()}` })
}

/** Throws a `DeviceLostError` when the device is lost (step 0: outside training). */
export const requireAlive = (device: string, lost: string | undefined): void => {
  if (lost !== undefined) throw new DeviceLostError({ device, step: 0, message: `device ${device} is lost: ${lost}` })
}

export const rows = (t: Tensor): number => (t.shape.length <= 1 ? 1 : t.shape.slice(0, -1).reduce((a, b) => a * b, 1))
export const cols = (t: Tensor): number => (t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1]!)

export const shapeText = (shape: ReadonlyArray<number>): string => `[${shape.join(",")}]`

export const activationCode = (kind: Activation): number => ["relu", "gelu", "sigmoid", "tanh"].indexOf(kind)

const GELU_C = Math.sqrt(2 / Math.PI)

/** Scalar activations in double precision, shared by the CPU backend. */
export const activate = (kind: Activation, x: number): number => {
  switch (kind) {
    case "relu":
      return x > 0 ? x : 0
    case "gelu":
      return 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)))
    case "sigmoid":
      return sigmoid(x)
    case "tanh":
      return Math.tanh(x)
  }
}

export const activateGrad = (kind: Activation, x: number): number => {
  switch (kind) {
    case "relu":
      return x > 0 ? 1 : 0
    case "gelu": {
      const u = GELU_C * (x + 0.044715 * x * x * x)
      const t = Math.tanh(u)
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x)
    }
    case "sigmoid": {
      const s = sigmoid(x)
      return s * (1 - s)
    }
    case "tanh": {
      const t = Math.tanh(x)
      return 1 - t * t
    }
  }
}

export const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))

/** Groups batch rows by id: sorted unique ids, and for each the rows that used it (CSR). */
export const groupIds = (ids: Int32Array): { indices: Int32Array; offsets: Uint32Array; positions: Uint32Array } => {
  const order = Array.from(ids.keys()).sort((a, b) => ids[a]! - ids[b]! || a - b)
  const indices: Array<number> = []
  const offsets: Array<number> = [0]
  const positions = new Uint32Array(ids.length)
  order.forEach((row, i) => {
    positions[i] = row
    if (indices.length === 0 || indices[indices.length - 1] !== ids[row]) {
      if (indices.length > 0) offsets.push(i)
      indices.push(ids[row]!)
    }
  })
  offsets.push(ids.length)
  return { indices: Int32Array.from(indices), offsets: Uint32Array.from(offsets), positions }
}

/** The message of a thrown value: an `Error`'s message, anything else as text. */
export const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))
