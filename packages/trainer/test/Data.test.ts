import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Checkpoint, Dataset, Model, Optimizer, Random, Safetensors } from "@org/trainer"

const dataset = Dataset.make({
  size: 10,
  inputs: { x: Float32Array.from({ length: 20 }, (_, i) => i) },
  target: Float32Array.from({ length: 10 }, (_, i) => i)
})

const epochOrder = (seed: number) =>
  Effect.gen(function* () {
    const data = yield* dataset
    const batches = yield* Stream.runCollect(Dataset.shuffled(data, { batchSize: 4, random: Random.make(seed) }))
    expect(Chunk.toReadonlyArray(batches).map((b) => b.size)).toEqual([4, 4, 2])
    const rows = Chunk.toReadonlyArray(batches).flatMap((b) => [...b.target])
    // inputs travel with their targets
    for (const b of batches) for (let i = 0; i < b.size; i++) expect(b.inputs.x![2 * i]).toBe(2 * b.target[i]!)
    return rows
  })

describe("Dataset", () => {
  it.effect("shuffles each epoch into a permutation that depends only on the seed", () =>
    Effect.gen(function* () {
      const a = yield* epochOrder(1)
      expect([...a].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      expect(yield* epochOrder(1)).toEqual(a)
      expect(yield* epochOrder(2)).not.toEqual(a)
    })
  )

  it.effect("refuses arrays that are not whole rows, naming the input", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Dataset.make({ size: 3, inputs: { x: new Float32Array(7) }, target: new Float32Array(3) })
      )
      expect(error).toMatchObject({ _tag: "TrainerConfigError", option: "inputs.x" })
    })
  )
})

describe("Safetensors", () => {
  it("writes the 8-byte little-endian header length, a JSON header and raw little-endian floats", () => {
    const tensors = new Map([
      ["a.weight", { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }],
      ["b", { shape: [1], data: Float32Array.of(-0.5) }]
    ])
    const bytes = Safetensors.encode(tensors, { step: "3" })
    const view = new DataView(bytes.buffer)
    const n = Number(view.getBigUint64(0, true))
    expect((8 + n) % 8).toBe(0)
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8"))
    expect(header).toEqual({
      __metadata__: { step: "3" },
      "a.weight": { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
      b: { dtype: "F32", shape: [1], data_offsets: [24, 28] }
    })
    expect(bytes.length).toBe(8 + n + 28)
    expect(view.getFloat32(8 + n + 4, true)).toBe(2)
    expect(view.getFloat32(8 + n + 24, true)).toBe(-0.5)
    const decoded = Either.getOrThrow(Safetensors.decode(bytes))
    expect(decoded.tensors.get("a.weight")!.data).toEqual(tensors.get("a.weight")!.data)
    expect(decoded.metadata).toEqual({ step: "3" })
  })

  it("refuses truncated files, bad headers and other dtypes", () => {
    const good = Safetensors.encode(new Map([["w", { shape: [4], data: new Float32Array(4) }]]))
    expect(Either.isLeft(Safetensors.decode(good.subarray(0, good.length - 4)))).toBe(true)
    expect(Either.isLeft(Safetensors.decode(new Uint8Array(5)))).toBe(true)
    const f16 = Buffer.from(Buffer.from(good).toString("latin1").replace('"F32"', '"F16"'), "latin1")
    expect(Safetensors.decode(new Uint8Array(f16))).toMatchObject({
      _tag: "Left",
      left: expect.stringContaining("F16")
    })
  })
})

describe("Checkpoint", () => {
  it.scoped("saves and loads parameters, optimizer state and the manifest; refuses another model's checkpoint", () =>
    Effect.gen(function* () {
      const directory = fs.mkdtempSync(path.join(os.tmpdir(), "org-trainer-ckpt-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true })))
      const model = yield* Model.mlp({ inputs: 3, hidden: [4], outputs: 2, loss: "softmaxCrossEntropy" })
      const parameters = Model.initialize(model, 1)
      const optimizerState = new Map(
        [...parameters].map(([k, v]) => [k, [v.map((x) => x * 2), v.map((x) => x * 3)]] as const)
      )
      const manifest: Checkpoint.Manifest = {
        format: "org-trainer-checkpoint/1",
        step: 7,
        epoch: 1,
        batch: 2,
        seed: 1,
        rng: Random.make(3).state(),
        optimizer: Optimizer.adam({ learningRate: 0.1 }),
        parameters: model.parameters.map((p) => ({ name: p.name, shape: p.shape })),
        tensors: ""
      }
      yield* Checkpoint.save(directory, { manifest, parameters, optimizerState })
      yield* Checkpoint.save(directory, { manifest: { ...manifest, step: 8 }, parameters, optimizerState })
      // the older tensors file is gone, the manifest names the newer
      expect(fs.readdirSync(directory).sort()).toEqual(["manifest.json", "step-00000008.safetensors"])
      const loaded = yield* Checkpoint.load(directory, model)
      expect(loaded.manifest).toMatchObject({ step: 8, epoch: 1, batch: 2, rng: manifest.rng })
      expect(loaded.parameters.get("dense_2.weight")).toEqual(parameters.get("dense_2.weight"))
      expect(loaded.optimizerState.get("dense_0.bias")![1]).toEqual(optimizerState.get("dense_0.bias")![1])
      const other = yield* Model.mlp({ inputs: 3, hidden: [5], outputs: 2, loss: "softmaxCrossEntropy" })
      const error = yield* Effect.flip(Checkpoint.load(directory, other))
      expect(error).toMatchObject({ _tag: "CheckpointError" })
      expect(error.path).toContain("manifest.json")
      fs.writeFileSync(path.join(directory, "step-00000008.safetensors"), "garbage")
      expect(yield* Effect.flip(Checkpoint.load(directory))).toMatchObject({ _tag: "CheckpointError" })
    })
  )
})
