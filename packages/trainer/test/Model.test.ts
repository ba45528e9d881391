import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Backend, Cpu, type Dataset, Model, Random } from "@org/trainer"
import { forwardBackward } from "../src/internal/execute.js"
import { randoms, relativeError } from "./support.js"

describe("Model", () => {
  it.effect("a dense layer whose input does not match the previous output fails naming the layer", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Model.sequential([Model.dense(4, 8), Model.activation("relu"), Model.dense(7, 3)], {
          loss: "softmaxCrossEntropy"
        })
      )
      expect(error).toMatchObject({ _tag: "ShapeError", layer: "dense_2", expected: [8, 3], actual: [7, 3] })
      expect(error.message).toContain("relu_1 gives 8")
      const named = yield* Effect.flip(
        Model.sequential([Model.dense(4, 8), Model.dense(9, 1, { name: "head" })], { loss: "binaryCrossEntropy" })
      )
      expect(named.layer).toBe("head")
    })
  )

  it.effect("towers of different widths, a loss that does not fit and misplaced layers are refused", () =>
    Effect.gen(function* () {
      const towers = yield* Effect.flip(
        Model.twoTower({
          member: [Model.dense(3, 4)],
          item: [Model.dense(5, 8), Model.activation("relu"), Model.dense(8, 6)]
        })
      )
      expect(towers).toMatchObject({ _tag: "ShapeError", layer: "item.dense_2", expected: [4], actual: [6] })
      const loss = yield* Effect.flip(Model.mlp({ inputs: 3, hidden: [4], outputs: 3, loss: "binaryCrossEntropy" }))
      expect(loss).toMatchObject({ _tag: "ShapeError", layer: "dense_2" })
      const late = yield* Effect.flip(
        Model.sequential([Model.dense(3, 4), Model.embedding(10, 4)], { loss: "meanSquaredError" })
      )
      expect(late).toMatchObject({ _tag: "ShapeError", layer: "embedding_1" })
    })
  )

  it.effect("initialisation is a function of the seed", () =>
    Effect.gen(function* () {
      const model = yield* Model.mlp({ inputs: 5, hidden: [7], outputs: 2, loss: "softmaxCrossEntropy" })
      const a = Model.initialize(model, 1)
      const b = Model.initialize(model, 1)
      const c = Model.initialize(model, 2)
      expect([...a.keys()]).toEqual(["dense_0.weight", "dense_0.bias", "dense_2.weight", "dense_2.bias"])
      expect(a.get("dense_0.weight")).toEqual(b.get("dense_0.weight"))
      expect(relativeError(a.get("dense_0.weight")!, c.get("dense_0.weight")!)).toBeGreaterThan(0.1)
      const limit = Math.sqrt(6 / 12)
      expect(Math.max(...a.get("dense_0.weight")!.map(Math.abs))).toBeLessThanOrEqual(limit)
      expect(a.get("dense_0.bias")!.every((x) => x === 0)).toBe(true)
    })
  )
})

/** Central finite differences of the model's loss on the CPU backend against its backward pass. */
const gradientCheck = (model: Model.Model, batch: Dataset.Batch, seed: number) =>
  Effect.promise(async () => {
    const cpu = Cpu.unsafeMake()
    const values = Model.initialize(model, seed)
    // non-zero biases so their gradients matter
    for (const [name, v] of values) if (name.endsWith(".bias")) v.set(randoms(seed + name.length, v.length, -0.3, 0.3))
    const lossAt = async (vals: Model.Parameters) => {
      const params = new Map(
        [...vals].map(([k, v]) => [k, cpu.upload(model.parameters.find((p) => p.name === k)!.shape, v)])
      )
      const { grads, loss } = forwardBackward(cpu, model, params, batch, [])
      return { loss: (await cpu.read(loss))[0]!, grads }
    }
    const { grads } = await lossAt(values)
    let worst = 0
    for (const p of model.parameters) {
      const g = grads.get(p.name)!
      const dense = new Float32Array(Backend.sizeOf(p.shape))
      if (g._tag === "Dense") dense.set(await cpu.read(g.value))
      else {
        const rowsOf = await cpu.read(g.value.values)
        const width = p.shape[1]!
        g.value.indices.forEach((r, u) => dense.set(rowsOf.subarray(u * width, (u + 1) * width), r * width))
      }
      const random = Random.make(seed)
      for (let probe = 0; probe < 4; probe++) {
        const i = random.int(dense.length)
        const eps = 2e-3
        const plus = new Map(values)
        const minus = new Map(values)
        const vp = Float32Array.from(values.get(p.name)!)
        const vm = Float32Array.from(values.get(p.name)!)
        vp[i]! += eps
        vm[i]! -= eps
        plus.set(p.name, vp)
        minus.set(p.name, vm)
        const numeric = ((await lossAt(plus)).loss - (await lossAt(minus)).loss) / (2 * eps)
        const err = Math.abs(numeric - dense[i]!) / Math.max(1e-2, Math.abs(numeric), Math.abs(dense[i]!))
        worst = Math.max(worst, err)
        expect(err, `${p.name}[${i}]: numeric ${numeric}, backward ${dense[i]}`).toBeLessThan(3e-2)
      }
    }
    return worst
  })

describe("backward passes match finite differences (CPU reference)", () => {
  const rows = 9
  const x = randoms(1, rows * 4, -1.5, 1.5)
  for (const kind of Backend.activations) {
    it.effect(`MLP with ${kind}, softmax cross-entropy`, () =>
      Effect.gen(function* () {
        const model = yield* Model.sequential([Model.dense(4, 6), Model.activation(kind), Model.dense(6, 3)], {
          loss: "softmaxCrossEntropy"
        })
        const target = Float32Array.from({ length: rows }, (_, i) => i % 3)
        yield* gradientCheck(model, { size: rows, inputs: { x }, target }, 2)
      })
    )
  }

  it.effect("MLP with mean squared error", () =>
    Effect.gen(function* () {
      const model = yield* Model.mlp({
        inputs: 4,
        hidden: [5],
        outputs: 2,
        activation: "tanh",
        loss: "meanSquaredError"
      })
      yield* gradientCheck(model, { size: rows, inputs: { x }, target: randoms(3, rows * 2) }, 3)
    })
  )

  it.effect("two-tower ranker with an embedding, binary cross-entropy", () =>
    Effect.gen(function* () {
      const model = yield* Model.twoTower({
        member: [Model.embedding(6, 4), Model.dense(4, 3)],
        item: [Model.dense(4, 5), Model.activation("sigmoid"), Model.dense(5, 3)]
      })
      const member = Float32Array.from({ length: rows }, (_, i) => (i * 5) % 6)
      const target = Float32Array.from({ length: rows }, (_, i) => i % 2)
      yield* gradientCheck(model, { size: rows, inputs: { member, item: x }, target }, 4)
    })
  )
})
