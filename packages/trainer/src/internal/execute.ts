import type { Backend, SparseGrad, Tensor } from "../Backend.js"
import type { Batch } from "../Dataset.js"
import type { Model, Stack } from "../Model.js"

/** A gradient as a device produced it. */
export type Grad =
  | { readonly _tag: "Dense"; readonly value: Tensor }
  | { readonly _tag: "Sparse"; readonly value: SparseGrad }

interface Cache {
  readonly input: Tensor
  readonly ids?: Int32Array
}

const forwardStack = (
  b: Backend,
  stack: Stack,
  params: ReadonlyMap<string, Tensor>,
  input: Tensor,
  ids: Int32Array | undefined,
  temps: Array<Tensor>
): { output: Tensor; caches: Array<Cache> } => {
  const caches: Array<Cache> = []
  let x = input
  for (const l of stack.layers) {
    caches.push(ids !== undefined && l.layer._tag === "Embedding" ? { input: x, ids } : { input: x })
    switch (l.layer._tag) {
      case "Dense": {
        const h = b.matmul(x, params.get(`${l.name}.weight`)!)
        temps.push(h)
        x = b.addBias(h, params.get(`${l.name}.bias`)!)
        break
      }
      case "Embedding":
        x = b.embedding(params.get(`${l.name}.table`)!, x)
        break
      case "Activation":
        x = b.activation(l.layer.kind, x)
        break
    }
    temps.push(x)
  }
  return { output: x, caches }
}

const backwardStack = (
  b: Backend,
  stack: Stack,
  params: ReadonlyMap<string, Tensor>,
  caches: ReadonlyArray<Cache>,
  dOut: Tensor,
  temps: Array<Tensor>,
  grads: Map<string, Grad>
): void => {
  let dy = dOut
  for (let i = stack.layers.length - 1; i >= 0; i--) {
    const l = stack.layers[i]!
    const cache = caches[i]!
    switch (l.layer._tag) {
      case "Dense": {
        grads.set(`${l.name}.weight`, { _tag: "Dense", value: b.matmul(cache.input, dy, { transA: true }) })
        grads.set(`${l.name}.bias`, { _tag: "Dense", value: b.sumRows(dy) })
        if (i > 0) {
          dy = b.matmul(dy, params.get(`${l.name}.weight`)!, { transB: true })
          temps.push(dy)
        }
        break
      }
      case "Embedding":
        grads.set(`${l.name}.table`, { _tag: "Sparse", value: b.embeddingGrad(dy, cache.ids!) })
        break
      case "Activation":
        dy = b.activationGrad(l.layer.kind, cache.input, dy)
        temps.push(dy)
        break
    }
  }
}

const lossOf = (b: Backend, model: Model, output: Tensor, target: Tensor) => {
  switch (model.loss) {
    case "softmaxCrossEntropy":
      return b.softmaxCrossEntropy(output, target)
    case "binaryCrossEntropy":
      return b.binaryCrossEntropy(output, target)
    case "meanSquaredError":
      return b.meanSquaredError(output, target)
  }
}

const upload = (b: Backend, stack: Stack, batch: Omit<Batch, "target">, temps: Array<Tensor>) => {
  const data = batch.inputs[stack.input]!
  const t = b.upload([batch.size, stack.inputWidth], data)
  temps.push(t)
  const ids = stack.layers[0]!.layer._tag === "Embedding" ? Int32Array.from(data) : undefined
  return { t, ids }
}

/**
 * The forward pass of every tower; `output` is the model's output (the row dot of
 * the towers for a two-tower model, not added to `temps`).
 */
const forwardModel = (
  b: Backend,
  model: Model,
  params: ReadonlyMap<string, Tensor>,
  batch: Omit<Batch, "target">,
  temps: Array<Tensor>
) => {
  const inputs = model.stacks.map((stack) => upload(b, stack, batch, temps))
  const towers = model.stacks.map((stack, k) => forwardStack(b, stack, params, inputs[k]!.t, inputs[k]!.ids, temps))
  const output = model._tag === "Sequential" ? towers[0]!.output : b.rowDot(towers[0]!.output, towers[1]!.output)
  return { towers, output }
}

/**
 * Forward and backward of one shard: enqueues everything and returns the mean loss
 * (a one-element tensor) and the gradients. `temps` collects what to dispose.
 */
export const forwardBackward = (
  b: Backend,
  model: Model,
  params: ReadonlyMap<string, Tensor>,
  batch: Batch,
  temps: Array<Tensor>
): { loss: Tensor; grads: Map<string, Grad> } => {
  const grads = new Map<string, Grad>()
  const target = b.upload([batch.size, model.targetWidth], batch.target)
  temps.push(target)
  const { towers, output } = forwardModel(b, model, params, batch, temps)
  if (model._tag === "Sequential") {
    const { grad, loss } = lossOf(b, model, output, target)
    temps.push(grad)
    backwardStack(b, model.stacks[0]!, params, towers[0]!.caches, grad, temps, grads)
    return { loss, grads }
  }
  const [memberStack, itemStack] = model.stacks as readonly [Stack, Stack]
  const [member, item] = towers as [(typeof towers)[number], (typeof towers)[number]]
  temps.push(output)
  const { grad, loss } = lossOf(b, model, output, target)
  temps.push(grad)
  const dMember = b.scaleRows(item.output, grad)
  const dItem = b.scaleRows(member.output, grad)
  temps.push(dMember, dItem)
  backwardStack(b, memberStack, params, member.caches, dMember, temps, grads)
  backwardStack(b, itemStack, params, item.caches, dItem, temps, grads)
  return { loss, grads }
}

/** Forward only: the model's outputs (scores for a two-tower model). */
export const forward = (
  b: Backend,
  model: Model,
  params: ReadonlyMap<string, Tensor>,
  batch: Omit<Batch, "target">,
  temps: Array<Tensor>
): Tensor => forwardModel(b, model, params, batch, temps).output
