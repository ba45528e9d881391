/**
 * Models: a sequential stack of layers (an MLP) and a two-tower ranker (member
 * features x item features -> score). Building a model checks that its layers fit
 * together and fails with a `ShapeError` naming the layer that does not; parameters
 * are initialised from a seed.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Activation } from "./Backend.js"
import * as Random from "./Random.js"
import { ShapeError } from "./TrainerError.js"

/**
 * One layer of a stack.
 *
 * @since 0.1.0
 * @category models
 */
export type Layer =
  | { readonly _tag: "Dense"; readonly name?: string; readonly inputs: number; readonly outputs: number }
  | { readonly _tag: "Activation"; readonly name?: string; readonly kind: Activation }
  | { readonly _tag: "Embedding"; readonly name?: string; readonly vocabulary: number; readonly dimension: number }

/**
 * The loss a model is trained with. `softmaxCrossEntropy` takes class indices as
 * targets, `binaryCrossEntropy` targets in [0,1] against one logit, `meanSquaredError`
 * one target per output.
 *
 * @since 0.1.0
 * @category models
 */
export type Loss = "softmaxCrossEntropy" | "binaryCrossEntropy" | "meanSquaredError"

/**
 * A fully connected layer `y = x W + b` with `W: [inputs, outputs]`.
 *
 * @since 0.1.0
 * @category layers
 */
export const dense = (inputs: number, outputs: number, options: { readonly name?: string } = {}): Layer => ({
  _tag: "Dense",
  inputs,
  outputs,
  ...options
})

/**
 * An activation layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const activation = (kind: Activation, options: { readonly name?: string } = {}): Layer => ({
  _tag: "Activation",
  kind,
  ...options
})

/**
 * An embedding table `[vocabulary, dimension]`; as the first layer of a stack it
 * reads one integer id per row and its gradient is sparse.
 *
 * @since 0.1.0
 * @category layers
 */
export const embedding = (vocabulary: number, dimension: number, options: { readonly name?: string } = {}): Layer => ({
  _tag: "Embedding",
  vocabulary,
  dimension,
  ...options
})

/**
 * A trainable tensor of a model.
 *
 * @since 0.1.0
 * @category models
 */
export interface ParameterSpec {
  /** `"dense_0.weight"`, `"item.dense_2.bias"`, `"embedding_0.table"`. */
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly role: "weight" | "bias" | "embedding"
}

/**
 * A layer with its resolved name and widths.
 *
 * @since 0.1.0
 * @category models
 */
export interface BuiltLayer {
  readonly name: string
  readonly layer: Layer
  readonly inputWidth: number
  readonly outputWidth: number
  readonly parameters: ReadonlyArray<ParameterSpec>
}

/**
 * A checked stack of layers reading one named input.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stack {
  readonly input: string
  readonly inputWidth: number
  readonly outputWidth: number
  readonly layers: ReadonlyArray<BuiltLayer>
}

/**
 * A checked model.
 *
 * @since 0.1.0
 * @category models
 */
export interface Model {
  readonly _tag: "Sequential" | "TwoTower"
  /** Input name -> features per row (`{ x: 8 }`, `{ member: 16, item: 12 }`). */
  readonly inputs: Readonly<Record<string, number>>
  /** Target values per row. */
  readonly targetWidth: number
  readonly loss: Loss
  readonly stacks: ReadonlyArray<Stack>
  readonly parameters: ReadonlyArray<ParameterSpec>
}

const shapeError = (layer: string, expected: ReadonlyArray<number>, actual: ReadonlyArray<number>, message: string) =>
  new ShapeError({ layer, expected, actual, message: `${layer}: ${message}` })

const positive = (n: number) => Number.isInteger(n) && n > 0

const buildStack = (layers: ReadonlyArray<Layer>, input: string, prefix: string): Effect.Effect<Stack, ShapeError> =>
  Effect.gen(function* () {
    if (layers.length === 0) return yield* shapeError(`${prefix}${input}`, [1], [0], "a stack needs at least one layer")
    const built: Array<BuiltLayer> = []
    const names = new Set<string>()
    let width = 0
    let inputWidth = 0
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i]!
      const short =
        layer.name ??
        `${layer._tag === "Activation" ? layer.kind : layer._tag === "Dense" ? "dense" : "embedding"}_${i}`
      const name = `${prefix}${short}`
      if (names.has(name)) return yield* shapeError(name, [], [], `layer name ${name} is used twice`)
      names.add(name)
      switch (layer._tag) {
        case "Dense": {
          if (!positive(layer.inputs) || !positive(layer.outputs)) {
            return yield* shapeError(name, [1, 1], [layer.inputs, layer.outputs], "widths must be positive integers")
          }
          if (i === 0) inputWidth = layer.inputs
          else if (layer.inputs !== width) {
            return yield* shapeError(
              name,
              [width, layer.outputs],
              [layer.inputs, layer.outputs],
              `expects ${layer.inputs} inputs but the previous layer ${built[i - 1]!.name} gives ${width}`
            )
          }
          width = layer.outputs
          built.push({
            name,
            layer,
            inputWidth: layer.inputs,
            outputWidth: layer.outputs,
            parameters: [
              { name: `${name}.weight`, shape: [layer.inputs, layer.outputs], role: "weight" },
              { name: `${name}.bias`, shape: [layer.outputs], role: "bias" }
            ]
          })
          break
        }
        case "Embedding": {
          if (i !== 0) return yield* shapeError(name, [], [], "an embedding must be the first layer (it reads ids)")
          if (!positive(layer.vocabulary) || !positive(layer.dimension)) {
            return yield* shapeError(
              name,
              [1, 1],
              [layer.vocabulary, layer.dimension],
              "sizes must be positive integers"
            )
          }
          inputWidth = 1
          width = layer.dimension
          built.push({
            name,
            layer,
            inputWidth: 1,
            outputWidth: layer.dimension,
            parameters: [{ name: `${name}.table`, shape: [layer.vocabulary, layer.dimension], role: "embedding" }]
          })
          break
        }
        case "Activation": {
          if (i === 0) return yield* shapeError(name, [], [], "a stack cannot start with an activation")
          built.push({ name, layer, inputWidth: width, outputWidth: width, parameters: [] })
          break
        }
      }
    }
    return { input, inputWidth, outputWidth: width, layers: built }
  })

const checkLoss = (loss: Loss, last: string, outputs: number): Effect.Effect<number, ShapeError> => {
  switch (loss) {
    case "softmaxCrossEntropy":
      return outputs >= 2
        ? Effect.succeed(1)
        : Effect.fail(shapeError(last, [2], [outputs], "softmax cross-entropy needs at least 2 outputs (classes)"))
    case "binaryCrossEntropy":
      return outputs === 1
        ? Effect.succeed(1)
        : Effect.fail(shapeError(last, [1], [outputs], `binary cross-entropy needs 1 output (a logit), got ${outputs}`))
    case "meanSquaredError":
      return Effect.succeed(outputs)
  }
}

/**
 * A sequential model reading the input `input` (default `"x"`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const sequential = (
  layers: ReadonlyArray<Layer>,
  options: { readonly loss: Loss; readonly input?: string }
): Effect.Effect<Model, ShapeError> =>
  Effect.gen(function* () {
    const input = options.input ?? "x"
    const stack = yield* buildStack(layers, input, "")
    const targetWidth = yield* checkLoss(options.loss, stack.layers[stack.layers.length - 1]!.name, stack.outputWidth)
    return {
      _tag: "Sequential" as const,
      inputs: { [input]: stack.inputWidth },
      targetWidth,
      loss: options.loss,
      stacks: [stack],
      parameters: stack.layers.flatMap((l) => l.parameters)
    }
  })

/**
 * A multilayer perceptron: dense layers of the given widths with an activation
 * between them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const mlp = (options: {
  readonly inputs: number
  readonly hidden: ReadonlyArray<number>
  readonly outputs: number
  readonly activation?: Activation
  readonly loss: Loss
}): Effect.Effect<Model, ShapeError> => {
  const widths = [options.inputs, ...options.hidden, options.outputs]
  const layers: Array<Layer> = []
  for (let i = 0; i + 1 < widths.length; i++) {
    if (i > 0) layers.push(activation(options.activation ?? "relu"))
    layers.push(dense(widths[i]!, widths[i + 1]!))
  }
  return sequential(layers, { loss: options.loss })
}

/**
 * A two-tower ranker: a member tower on input `member`, an item tower on input
 * `item`, and the score as the dot product of their outputs (which must have the
 * same width). Trained with binary cross-entropy (clicked or not) by default.
 *
 * @since 0.1.0
 * @category constructors
 */
export const twoTower = (options: {
  readonly member: ReadonlyArray<Layer>
  readonly item: ReadonlyArray<Layer>
  readonly loss?: "binaryCrossEntropy" | "meanSquaredError"
}): Effect.Effect<Model, ShapeError> =>
  Effect.gen(function* () {
    const member = yield* buildStack(options.member, "member", "member.")
    const item = yield* buildStack(options.item, "item", "item.")
    if (member.outputWidth !== item.outputWidth) {
      const last = item.layers[item.layers.length - 1]!.name
      return yield* shapeError(
        last,
        [member.outputWidth],
        [item.outputWidth],
        `the item tower ends with ${item.outputWidth} features but the member tower with ${member.outputWidth}`
      )
    }
    return {
      _tag: "TwoTower" as const,
      inputs: { member: member.inputWidth, item: item.inputWidth },
      targetWidth: 1,
      loss: options.loss ?? "binaryCrossEntropy",
      stacks: [member, item],
      parameters: [...member.layers, ...item.layers].flatMap((l) => l.parameters)
    }
  })

/**
 * Parameter values by name.
 *
 * @since 0.1.0
 * @category models
 */
export type Parameters = ReadonlyMap<string, Float32Array>

/**
 * Initial parameters from a seed: weights uniform in +-sqrt(6 / (fanIn + fanOut))
 * (Glorot), biases zero, embeddings uniform in +-0.05. The same seed gives the same
 * values on every machine.
 *
 * @since 0.1.0
 * @category constructors
 */
export const initialize = (model: Model, seed: number): Parameters => {
  const out = new Map<string, Float32Array>()
  for (const p of model.parameters) {
    const random = Random.derive(seed, `init:${p.name}`)
    const n = p.shape.reduce((a, b) => a * b, 1)
    switch (p.role) {
      case "bias":
        out.set(p.name, new Float32Array(n))
        break
      case "weight": {
        const limit = Math.sqrt(6 / (p.shape[0]! + p.shape[1]!))
        out.set(p.name, Random.uniform(random, n, -limit, limit))
        break
      }
      case "embedding":
        out.set(p.name, Random.uniform(random, n, -0.05, 0.05))
        break
    }
  }
  return out
}
