/**
 * Optimizers: SGD with momentum and weight decay, and Adam. Their state (velocity,
 * moments) lives on every device beside the parameters and is saved in checkpoints.
 *
 * @since 0.1.0
 */
import type { Backend, Tensor } from "./Backend.js"

/**
 * An optimizer's settings.
 *
 * @since 0.1.0
 * @category models
 */
export type Optimizer =
  | {
      readonly _tag: "Sgd"
      readonly learningRate: number
      readonly momentum: number
      readonly weightDecay: number
    }
  | {
      readonly _tag: "Adam"
      readonly learningRate: number
      readonly beta1: number
      readonly beta2: number
      readonly epsilon: number
      readonly weightDecay: number
    }

/**
 * SGD: `v = momentum * v + (g + weightDecay * p)`, `p -= learningRate * v`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sgd = (options: {
  readonly learningRate: number
  readonly momentum?: number
  readonly weightDecay?: number
}): Optimizer => ({
  _tag: "Sgd",
  learningRate: options.learningRate,
  momentum: options.momentum ?? 0,
  weightDecay: options.weightDecay ?? 0
})

/**
 * Adam with bias correction; `weightDecay` adds `weightDecay * p` to the gradient.
 *
 * @since 0.1.0
 * @category constructors
 */
export const adam = (options: {
  readonly learningRate: number
  readonly beta1?: number
  readonly beta2?: number
  readonly epsilon?: number
  readonly weightDecay?: number
}): Optimizer => ({
  _tag: "Adam",
  learningRate: options.learningRate,
  beta1: options.beta1 ?? 0.9,
  beta2: options.beta2 ?? 0.999,
  epsilon: options.epsilon ?? 1e-8,
  weightDecay: options.weightDecay ?? 0
})

/**
 * The names of the state tensors kept per parameter.
 *
 * @since 0.1.0
 * @category utils
 */
export const stateNames = (optimizer: Optimizer): ReadonlyArray<string> =>
  optimizer._tag === "Sgd" ? ["velocity"] : ["m", "v"]

/**
 * Why the settings are invalid, or undefined.
 *
 * @since 0.1.0
 * @category utils
 */
export const validate = (optimizer: Optimizer): string | undefined => {
  if (!(optimizer.learningRate > 0) || !Number.isFinite(optimizer.learningRate)) {
    return `learningRate must be a positive number, got ${optimizer.learningRate}`
  }
  if (!(optimizer.weightDecay >= 0)) return `weightDecay must be >= 0, got ${optimizer.weightDecay}`
  if (optimizer._tag === "Sgd" && !(optimizer.momentum >= 0 && optimizer.momentum < 1)) {
    return `momentum must be in [0, 1), got ${optimizer.momentum}`
  }
  if (
    optimizer._tag === "Adam" &&
    !(optimizer.beta1 >= 0 && optimizer.beta1 < 1 && optimizer.beta2 >= 0 && optimizer.beta2 < 1)
  ) {
    return `betas must be in [0, 1), got ${optimizer.beta1}, ${optimizer.beta2}`
  }
  return undefined
}

/**
 * Applies update number `step` (1-based) to one parameter in place.
 *
 * @since 0.1.0
 * @category utils
 */
export const apply = (
  backend: Backend,
  optimizer: Optimizer,
  param: Tensor,
  grad: Tensor,
  state: ReadonlyArray<Tensor>,
  step: number
): void => {
  if (optimizer._tag === "Sgd") {
    backend.sgd(param, grad, state[0]!, {
      lr: optimizer.learningRate,
      momentum: optimizer.momentum,
      weightDecay: optimizer.weightDecay
    })
  } else {
    backend.adam(param, grad, state[0]!, state[1]!, {
      lr: optimizer.learningRate,
      beta1: optimizer.beta1,
      beta2: optimizer.beta2,
      epsilon: optimizer.epsilon,
      weightDecay: optimizer.weightDecay,
      step
    })
  }
}
