/**
 * The interface every compute backend implements: float32 tensors on one device and
 * the kernels a model and an optimizer need, each with its backward pass. `Cpu` is
 * the plain TypeScript reference; `WebGpu` runs WGSL kernels through Dawn.
 *
 * Kernels enqueue work and return at once; only {@link Backend.read} waits.
 *
 * @since 0.1.0
 */

/**
 * A float32 tensor that lives on one backend. Shapes are row-major.
 *
 * @since 0.1.0
 * @category models
 */
export interface Tensor {
  readonly shape: ReadonlyArray<number>
  /** The number of elements. */
  readonly size: number
  /** The id of the backend that owns it. */
  readonly device: string
}

/**
 * An elementwise activation.
 *
 * @since 0.1.0
 * @category models
 */
export type Activation = "relu" | "gelu" | "sigmoid" | "tanh"

/**
 * The activations in the order kernels number them.
 *
 * @since 0.1.0
 * @category constants
 */
export const activations: ReadonlyArray<Activation> = ["relu", "gelu", "sigmoid", "tanh"]

/**
 * A loss and its gradient with respect to the predictions. `loss` is a one-element
 * tensor holding the mean over the rows; `grad` already carries the 1/rows factor.
 *
 * @since 0.1.0
 * @category models
 */
export interface LossResult {
  readonly loss: Tensor
  readonly grad: Tensor
}

/**
 * The gradient of an embedding table: only the rows a batch used. `indices` are
 * sorted and unique; `values` is `[indices.length, dimension]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SparseGrad {
  readonly indices: Int32Array
  readonly values: Tensor
}

/**
 * SGD settings: `v = momentum * v + (g + weightDecay * p)`, `p -= lr * v`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SgdStep {
  readonly lr: number
  readonly momentum: number
  readonly weightDecay: number
}

/**
 * Adam settings for one update; `step` is the 1-based update count (for bias correction).
 *
 * @since 0.1.0
 * @category models
 */
export interface AdamStep {
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly epsilon: number
  readonly weightDecay: number
  readonly step: number
}

/**
 * One device. Methods throw `DeviceLostError` once the device is lost and
 * `BackendError` on bad arguments; the trainer turns both into typed failures.
 *
 * @since 0.1.0
 * @category models
 */
export interface Backend {
  readonly kind: "cpu" | "webgpu"
  /** A short id unique among the devices of a run: `"cpu:0"`, `"webgpu:1"`. */
  readonly id: string
  /** What the device is (adapter, driver, backend). */
  readonly description: string
  /** The physical adapter a WebGPU device runs on, by the name Dawn lists it under. */
  readonly adapter?: string
  /** Why the device was lost, when it was. */
  readonly lost: () => string | undefined

  readonly upload: (shape: ReadonlyArray<number>, data: Float32Array) => Tensor
  readonly zeros: (shape: ReadonlyArray<number>) => Tensor
  /** Overwrites a tensor's contents. */
  readonly write: (tensor: Tensor, data: Float32Array) => void
  readonly read: (tensor: Tensor) => Promise<Float32Array>
  /** Reads several tensors with one transfer. */
  readonly readMany: (tensors: ReadonlyArray<Tensor>) => Promise<ReadonlyArray<Float32Array>>
  /** Returns a tensor's memory to the device; the tensor must not be used again. */
  readonly dispose: (tensor: Tensor) => void

  /** `op(a) x op(b)`: `[M,K] x [K,N] -> [M,N]`, op transposes when asked. */
  readonly matmul: (a: Tensor, b: Tensor, options?: { readonly transA?: boolean; readonly transB?: boolean }) => Tensor
  /** `x[M,N] + bias[N]` on every row. Its backward is {@link Backend.sumRows}. */
  readonly addBias: (x: Tensor, bias: Tensor) => Tensor
  /** Column sums: `[M,N] -> [N]`. Its backward is {@link Backend.broadcastRows}. */
  readonly sumRows: (x: Tensor) => Tensor
  /** Repeats `v[N]` on `rows` rows: `[N] -> [rows,N]`. */
  readonly broadcastRows: (v: Tensor, rows: number) => Tensor
  /** `scale * sum(x)` as a one-element tensor (a fixed-order tree reduction). */
  readonly sum: (x: Tensor, scale?: number) => Tensor
  readonly activation: (kind: Activation, x: Tensor) => Tensor
  /** `dy * f'(x)` where `x` is the activation's input. */
  readonly activationGrad: (kind: Activation, x: Tensor, dy: Tensor) => Tensor
  /** Softmax over each row of `logits[M,C]` with cross-entropy against class indices `labels[M]`. */
  readonly softmaxCrossEntropy: (logits: Tensor, labels: Tensor) => LossResult
  /** Binary cross-entropy of `sigmoid(logits[M,1])` against targets in [0,1] (computed from logits, stable). */
  readonly binaryCrossEntropy: (logits: Tensor, targets: Tensor) => LossResult
  /** Mean squared error over all elements. */
  readonly meanSquaredError: (predictions: Tensor, targets: Tensor) => LossResult
  /** Rows of `table[V,D]` for the ids in `ids[M]` (integers stored as floats): `[M,D]`. */
  readonly embedding: (table: Tensor, ids: Tensor) => Tensor
  /** The sparse gradient of {@link Backend.embedding}: rows summed per distinct id, in a fixed order. */
  readonly embeddingGrad: (dy: Tensor, ids: Int32Array) => SparseGrad
  /** Row-wise dot product: `a[M,D] . b[M,D] -> [M,1]`. Its backward is {@link Backend.scaleRows}. */
  readonly rowDot: (a: Tensor, b: Tensor) => Tensor
  /** `x[M,N] * s[M]` row by row. */
  readonly scaleRows: (x: Tensor, s: Tensor) => Tensor
  /** In-place SGD update of `param` and `velocity`. */
  readonly sgd: (param: Tensor, grad: Tensor, velocity: Tensor, step: SgdStep) => void
  /** In-place Adam update of `param`, `m` and `v`. */
  readonly adam: (param: Tensor, grad: Tensor, m: Tensor, v: Tensor, step: AdamStep) => void

  /**
   * How many times the device's queue was handed work so far, where the backend queues work (WebGPU records
   * kernels into one command encoder and submits it when something waits: a read or a sync).
   */
  readonly submits?: () => number
  /** Waits until all queued work finished (and surfaces an asynchronous device error). */
  readonly sync: () => Promise<void>
  /** Releases the device. A destroyed device is lost. */
  readonly destroy: () => void
}

/**
 * The number of elements of a shape.
 *
 * @since 0.1.0
 * @category utils
 */
export const sizeOf = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)
