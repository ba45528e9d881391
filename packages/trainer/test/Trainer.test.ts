import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Backend, Cpu, Dataset, Model, Optimizer, Progress, Random, Trainer, WebGpu } from "@org/trainer"
import { relativeError, webgpuOptions, webgpuSkip } from "./support.js"

interface Adapter {
  readonly name: string
  readonly skip: string | undefined
  readonly devices: (n: number) => Effect.Effect<ReadonlyArray<Backend.Backend>, unknown, any>
}

const adapters: ReadonlyArray<Adapter> = [
  { name: "cpu", skip: undefined, devices: (n) => Cpu.makeMany(n) },
  { name: "webgpu", skip: webgpuSkip, devices: (n) => WebGpu.makeMany(n, webgpuOptions) }
]

// 90 rows (batches of 32, 32, 26: shards 16/16 and 13/13), 6 features, 3 classes from a fixed rule
const classification = Effect.suspend(() => {
  const rows = 90
  const random = Random.make(7)
  const x = Random.uniform(random, rows * 6, -1, 1)
  const y = new Float32Array(rows)
  for (let i = 0; i < rows; i++) {
    const s = x[i * 6]! + 0.5 * x[i * 6 + 1]! - x[i * 6 + 2]!
    y[i] = s > 0.4 ? 2 : s < -0.4 ? 0 : 1
  }
  return Dataset.make({ size: rows, inputs: { x }, target: y })
})

const mlp = Model.sequential(
  [Model.dense(6, 12), Model.activation("gelu"), Model.dense(12, 8), Model.activation("tanh"), Model.dense(8, 3)],
  { loss: "softmaxCrossEntropy" }
)

// member ids (embedding) x item features -> click
const clicks = Effect.suspend(() => {
  const rows = 70
  const random = Random.make(11)
  const member = Float32Array.from({ length: rows }, () => random.int(20))
  const item = Random.uniform(random, rows * 5, -1, 1)
  const target = Float32Array.from({ length: rows }, (_, i) =>
    (member[i]! % 2) + (item[i * 5]! > 0 ? 1 : 0) === 1 ? 1 : 0
  )
  return Dataset.make({ size: rows, inputs: { member, item }, target })
})

const ranker = Model.twoTower({
  member: [Model.embedding(20, 8), Model.dense(8, 8)],
  item: [Model.dense(5, 8), Model.activation("relu"), Model.dense(8, 8)]
})

const maxRelative = (a: Model.Parameters, b: Model.Parameters) =>
  Math.max(...[...b.keys()].map((k) => relativeError(a.get(k)!, b.get(k)!)))

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "org-trainer-"))

for (const adapter of adapters) {
  if (adapter.skip) {
    describe.skip(`Trainer on ${adapter.name} (${adapter.skip})`, () => {
      it("skipped", () => undefined)
    })
    continue
  }

  describe(`Trainer on ${adapter.name}`, () => {
    it.scoped("an MLP trained on 2 devices ends with the parameters of 1 device; replicas stay identical", () =>
      Effect.gen(function* () {
        const model = yield* mlp
        const data = yield* classification
        const base = {
          model,
          data,
          batchSize: 32,
          epochs: 3,
          optimizer: Optimizer.adam({ learningRate: 0.02 }),
          seed: 3
        }
        const one = yield* Trainer.fit({ ...base, devices: yield* adapter.devices(1) })
        const events = yield* Stream.runCollect(
          Trainer.stream({ ...base, devices: yield* adapter.devices(2), checkReplicas: true })
        )
        const steps = [...events].filter((e) => e._tag === "Step")
        expect(steps).toHaveLength(9)
        expect(steps.map((s) => s.shards)).toContainEqual([13, 13])
        for (const s of steps) {
          expect(s.replicaDifference).toBe(0)
          expect(s.samplesPerSecond).toBeGreaterThan(0)
          expect(s.syncMilliseconds).toBeGreaterThanOrEqual(0)
          expect(s.syncMilliseconds).toBeLessThanOrEqual(s.milliseconds)
        }
        // CPU devices run in worker threads of their own; WebGPU devices are driven from this thread
        const threads = new Set(steps.flatMap((s) => s.devices.map((d) => d.thread)))
        if (adapter.name === "cpu") {
          expect(threads.size).toBe(2)
          expect(threads.has(0)).toBe(false)
        } else {
          expect([...threads]).toEqual([0])
        }
        const two = [...events].find((e) => e._tag === "Completed")!
        const err = maxRelative(two.parameters, one.parameters)
        console.log(`[trainer] ${adapter.name} MLP 2 vs 1 devices: max relative difference ${err.toExponential(2)}`)
        expect(err).toBeLessThan(1e-6)
        // per-epoch metrics, and it learned something
        expect(one.epochs.map((e) => [e.epoch, e.steps, e.samples])).toEqual([
          [0, 3, 90],
          [1, 3, 90],
          [2, 3, 90]
        ])
        for (const e of one.epochs) expect(e.samplesPerSecond).toBeGreaterThan(0)
        expect(one.epochs[2]!.loss).toBeLessThan(one.epochs[0]!.loss)
        const [device] = yield* adapter.devices(1)
        const logits = yield* Trainer.predict(model, device!, one.parameters, {
          size: 90,
          inputs: { x: data.inputs.x!.data }
        })
        expect(logits).toHaveLength(270)
        let correct = 0
        for (let i = 0; i < 90; i++) {
          const row = [...logits.subarray(i * 3, i * 3 + 3)]
          if (row.indexOf(Math.max(...row)) === data.target.data[i]) correct++
        }
        expect(correct / 90).toBeGreaterThan(0.5)
        expect(maxRelative(Model.initialize(model, 3), one.parameters)).toBeGreaterThan(1e-2)
      })
    )

    it.scoped("each device trains on exactly its contiguous shard of every batch, uneven sizes included", () =>
      Effect.gen(function* () {
        const model = yield* mlp
        const data = yield* classification
        // batches of 7, 10, 1, 5 and 2 distinct rows: shards 3/2/2, 4/3/3, 1/0/0, 2/2/1, 1/1/0 on 3 devices
        const sizes = [7, 10, 1, 5, 2]
        const batches = sizes.map((size, b) =>
          Dataset.gather(
            data,
            Array.from({ length: size }, (_, i) => (b * 17 + i * 5) % data.size)
          )
        )
        // the rows [start, end) of a batch, copied row by row (independent of the trainer's slicing)
        const rowsOf = (batch: Dataset.Batch, start: number, end: number): Dataset.Batch => {
          const copy = (values: Float32Array) => {
            const width = values.length / batch.size
            const out = new Float32Array((end - start) * width)
            for (let r = start; r < end; r++)
              for (let c = 0; c < width; c++) out[(r - start) * width + c] = values[r * width + c]!
            return out
          }
          return { size: end - start, inputs: { x: copy(batch.inputs.x!) }, target: copy(batch.target) }
        }
        for (const count of [2, 3]) {
          const devices = yield* adapter.devices(count)
          const events = yield* Stream.runCollect(
            Trainer.stream({
              model,
              data: () => Stream.fromIterable(batches),
              devices,
              batchSize: 10,
              epochs: 1,
              optimizer: Optimizer.sgd({ learningRate: 0.1 }),
              seed: 2
            })
          )
          const steps = [...events].filter((e) => e._tag === "Step")
          expect(steps).toHaveLength(batches.length)
          steps.forEach((event, b) => {
            const batch = batches[b]!
            let start = 0
            const expected = devices.map((device, k) => {
              const rows = Math.floor(batch.size / count) + (k < batch.size % count ? 1 : 0)
              const shard = rowsOf(batch, start, start + rows)
              start += rows
              return { device: device.id, rows, checksum: Dataset.checksum(shard) }
            })
            expect(start).toBe(batch.size)
            expect(
              event.devices.map(({ device, rows, checksum }) => ({ device, rows, checksum })),
              `step ${event.step}: ${count} devices on a batch of ${batch.size}`
            ).toEqual(expected)
            // the step's loss is the row-weighted mean of the devices' losses over their own rows
            const weighted = event.devices.reduce((s, d) => s + (d.rows / batch.size) * d.loss, 0)
            expect(Math.abs(event.loss - weighted)).toBeLessThan(1e-6)
          })
        }
      })
    )

    it.scoped("a two-tower ranker with a sparse embedding gradient: 2 devices match 1 (SGD, momentum, decay)", () =>
      Effect.gen(function* () {
        const model = yield* ranker
        const data = yield* clicks
        const base = {
          model,
          data,
          batchSize: 25,
          epochs: 2,
          optimizer: Optimizer.sgd({ learningRate: 0.2, momentum: 0.9, weightDecay: 1e-3 }),
          seed: 5
        }
        const one = yield* Trainer.fit({ ...base, devices: yield* adapter.devices(1) })
        const two = yield* Trainer.fit({ ...base, devices: yield* adapter.devices(2), checkReplicas: true })
        const err = maxRelative(two.parameters, one.parameters)
        console.log(
          `[trainer] ${adapter.name} two-tower 2 vs 1 devices: max relative difference ${err.toExponential(2)}`
        )
        expect(err).toBeLessThan(1e-6)
        expect(one.steps).toBe(6)
        // rows of the embedding that no batch used keep their initial values only through decay/momentum
        expect(maxRelative(Model.initialize(model, 5), one.parameters)).toBeGreaterThan(1e-2)
      })
    )

    it.scoped(
      "a lost device stops training with DeviceLostError; resuming from the checkpoint ends as an uninterrupted run",
      () =>
        Effect.gen(function* () {
          const model = yield* mlp
          const data = yield* classification
          const directory = tempDir()
          yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true })))
          const base = {
            model,
            data,
            batchSize: 32,
            epochs: 3,
            optimizer: Optimizer.adam({ learningRate: 0.02 }),
            seed: 9
          }
          const uninterrupted = yield* Trainer.fit({ ...base, devices: yield* adapter.devices(2) })
          const failed = yield* Effect.either(
            Trainer.fit({
              ...base,
              devices: yield* adapter.devices(2),
              checkpoint: { directory, every: 2 },
              beforeStep: (step, devices) => {
                if (step === 5) devices[1]!.destroy()
              }
            })
          )
          expect(Either.isLeft(failed)).toBe(true)
          const error = Either.getLeft(failed).pipe((o) => (o._tag === "Some" ? o.value : undefined))!
          expect(error._tag).toBe("DeviceLostError")
          expect(error).toMatchObject({ device: `${adapter.name}:1`, step: 5 })
          const manifest = JSON.parse(fs.readFileSync(path.join(directory, "manifest.json"), "utf8"))
          expect(manifest).toMatchObject({ step: 4, epoch: 1, batch: 1, seed: 9 })
          const events = yield* Stream.runCollect(
            Trainer.stream({
              ...base,
              devices: yield* adapter.devices(2),
              checkpoint: { directory, every: 2 },
              resume: true
            })
          )
          const started = [...events][0]!
          expect(started).toMatchObject({ _tag: "Started", step: 4, epoch: 1 })
          const resumed = [...events].find((e) => e._tag === "Completed")!
          expect(resumed.step).toBe(9)
          expect(maxRelative(resumed.parameters, uninterrupted.parameters)).toBe(0)
        })
    )

    it.scoped("NaN in a batch stops training with NonFiniteError naming the step", () =>
      Effect.gen(function* () {
        const model = yield* mlp
        const data = yield* classification
        const error = yield* Effect.flip(
          Trainer.fit({
            model,
            devices: yield* adapter.devices(2),
            data: (epoch) =>
              Dataset.sequentialBatches(data, 30).pipe(
                Stream.map((batch) => {
                  if (epoch === 1) batch.inputs.x![7] = NaN
                  return batch
                })
              ),
            batchSize: 30,
            epochs: 2,
            optimizer: Optimizer.sgd({ learningRate: 0.1 }),
            seed: 1
          })
        )
        expect(error).toMatchObject({ _tag: "NonFiniteError", step: 4, what: "batch input x" })
      })
    )

    it.scoped("a diverging loss stops training with NonFiniteError instead of a NaN model", () =>
      Effect.gen(function* () {
        const model = yield* Model.mlp({ inputs: 6, hidden: [8], outputs: 1, loss: "meanSquaredError" })
        const base = yield* classification
        const data = yield* Dataset.make({
          size: base.size,
          inputs: { x: base.inputs.x!.data },
          target: base.target.data
        })
        const error = yield* Effect.flip(
          Trainer.fit({
            model,
            data,
            devices: yield* adapter.devices(2),
            batchSize: 30,
            epochs: 20,
            optimizer: Optimizer.sgd({ learningRate: 1e18 }),
            seed: 1
          })
        )
        expect(error._tag).toBe("NonFiniteError")
        if (error._tag === "NonFiniteError") {
          expect(error.step).toBeGreaterThan(1)
          expect(error.message).toContain(`step ${error.step}`)
        }
      })
    )
  })
}

describe("Trainer checks", () => {
  it.effect("a replica that computes differently is caught by checkReplicas, naming device and step", () =>
    Effect.gen(function* () {
      const model = yield* mlp
      const data = yield* classification
      const [a, b] = yield* Cpu.makeMany(2)
      const skewed: Backend.Backend = {
        ...b!,
        adam: (p, g, m, v, s) => b!.adam(p, g, m, v, { ...s, lr: s.lr * 1.001 })
      }
      const error = yield* Effect.flip(
        Trainer.fit({
          model,
          data,
          devices: [a!, skewed],
          batchSize: 32,
          epochs: 1,
          optimizer: Optimizer.adam({ learningRate: 0.01 }),
          seed: 1,
          checkReplicas: true
        })
      )
      expect(error).toMatchObject({ _tag: "ReplicaMismatchError", device: "cpu:1", step: 1 })
    })
  )

  it.effect(
    "threaded CPU devices reduce among themselves to exactly the host's average, 4 devices on 2 cores too",
    () =>
      Effect.gen(function* () {
        const base = {
          model: yield* mlp,
          data: yield* classification,
          batchSize: 32,
          epochs: 2,
          optimizer: Optimizer.adam({ learningRate: 0.02 }),
          seed: 6
        }
        const one = yield* Trainer.fit({ ...base, devices: yield* Cpu.makeMany(1) })
        for (const count of [2, 4]) {
          // averaged on the main thread (devices without threads) and reduced among the worker threads
          const host = yield* Trainer.fit({ ...base, devices: yield* Cpu.makeMany(count, { threads: false }) })
          const events = yield* Stream.runCollect(
            Trainer.stream({ ...base, devices: yield* Cpu.makeMany(count), checkReplicas: true })
          )
          const threaded = yield* Trainer.collect(Stream.fromChunk(events))
          const steps = [...events].filter((e) => e._tag === "Step")
          expect(new Set(steps.flatMap((s) => s.devices.map((d) => d.thread))).size).toBe(count)
          for (const s of steps) expect(s.replicaDifference).toBe(0)
          expect(threaded.losses).toEqual(host.losses)
          expect(maxRelative(threaded.parameters, host.parameters)).toBe(0)
          expect(maxRelative(threaded.parameters, one.parameters)).toBeLessThan(1e-6)
        }
      })
  )

  it.effect("a device failing inside a step among threads fails the run with its error; the threads stay usable", () =>
    Effect.gen(function* () {
      const model = yield* ranker
      const data = yield* clicks
      // an id outside the embedding table in the last row: only the second device's shard holds it
      const bad = Dataset.gather(
        data,
        Array.from({ length: 10 }, (_, i) => i)
      )
      bad.inputs.member![9] = 99
      const base = {
        model,
        batchSize: 10,
        epochs: 1,
        optimizer: Optimizer.sgd({ learningRate: 0.1 }),
        seed: 1
      }
      for (const count of [2, 3]) {
        const error = yield* Effect.flip(
          Trainer.fit({ ...base, data: () => Stream.make(bad), devices: yield* Cpu.makeMany(count) })
        )
        expect(error).toMatchObject({ _tag: "BackendError", device: `cpu:${count - 1}` })
        expect(error.message).toContain("id 99 outside the table")
      }
      // the worker threads went back to the pool and train the next run
      const result = yield* Trainer.fit({ ...base, data, devices: yield* Cpu.makeMany(3), checkReplicas: true })
      expect(result.steps).toBe(7)
      expect(result.losses.every(Number.isFinite)).toBe(true)
    })
  )

  it.scoped("a run extended from its end-of-epoch checkpoint matches a longer uninterrupted run", () =>
    Effect.gen(function* () {
      const model = yield* mlp
      const data = yield* classification
      const directory = tempDir()
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(directory, { recursive: true, force: true })))
      const base = {
        model,
        data,
        batchSize: 32,
        optimizer: Optimizer.sgd({ learningRate: 0.1, momentum: 0.9 }),
        seed: 4
      }
      const full = yield* Trainer.fit({ ...base, epochs: 4, devices: yield* Cpu.makeMany(2) })
      const first = yield* Trainer.fit({
        ...base,
        epochs: 2,
        devices: yield* Cpu.makeMany(2),
        checkpoint: { directory }
      })
      expect(first.steps).toBe(6)
      expect(JSON.parse(fs.readFileSync(path.join(directory, "manifest.json"), "utf8"))).toMatchObject({
        step: 6,
        epoch: 2,
        batch: 0
      })
      const rest = yield* Trainer.fit({
        ...base,
        epochs: 4,
        devices: yield* Cpu.makeMany(1),
        checkpoint: { directory },
        resume: true
      })
      expect(rest.epochs.map((e) => e.epoch)).toEqual([2, 3])
      expect(rest.steps).toBe(12)
      expect(maxRelative(rest.parameters, full.parameters)).toBeLessThan(1e-5)
      expect(maxRelative(first.parameters, full.parameters)).toBeGreaterThan(1e-3)
    })
  )

  it.effect("data that does not fit the model fails with a ShapeError naming the input", () =>
    Effect.gen(function* () {
      const model = yield* mlp
      const data = yield* Dataset.make({ size: 4, inputs: { x: new Float32Array(20) }, target: new Float32Array(4) })
      const error = yield* Effect.flip(
        Trainer.fit({
          model,
          data,
          devices: yield* Cpu.makeMany(1),
          batchSize: 2,
          epochs: 1,
          optimizer: Optimizer.sgd({ learningRate: 0.1 }),
          seed: 1
        })
      )
      expect(error).toMatchObject({ _tag: "ShapeError", layer: "input:x", expected: [6], actual: [5] })
    })
  )

  it.effect("bad options are refused with TrainerConfigError naming the option", () =>
    Effect.gen(function* () {
      const model = yield* mlp
      const data = yield* classification
      const base = { model, data, batchSize: 8, epochs: 1, optimizer: Optimizer.sgd({ learningRate: 0.1 }), seed: 1 }
      expect(yield* Effect.flip(Trainer.fit({ ...base, devices: [] }))).toMatchObject({ option: "devices" })
      const devices = yield* Cpu.makeMany(1)
      expect(yield* Effect.flip(Trainer.fit({ ...base, devices, batchSize: 0 }))).toMatchObject({ option: "batchSize" })
      expect(
        yield* Effect.flip(Trainer.fit({ ...base, devices, optimizer: Optimizer.sgd({ learningRate: -1 }) }))
      ).toMatchObject({ option: "optimizer" })
      // an unknown option (a typo) is refused, not ignored
      const typo = yield* Effect.flip(Trainer.fit({ ...base, devices, epoch: 3 } as unknown as Trainer.Options))
      expect(typo).toMatchObject({ _tag: "TrainerConfigError", option: "epoch" })
      expect(typo.message).toContain('unknown option "epoch"')
      expect(
        yield* Effect.flip(
          Trainer.fit({ ...base, devices, checkpoint: { directory: "x", evry: 2 } } as unknown as Trainer.Options)
        )
      ).toMatchObject({ _tag: "TrainerConfigError", option: "checkpoint.evry" })
      expect(
        yield* Effect.flip(Trainer.fit({ ...base, devices, seed: "1" } as unknown as Trainer.Options))
      ).toMatchObject({ _tag: "TrainerConfigError", option: "seed" })
    })
  )

  it.effect("Progress.render writes a line per epoch (and every n-th step) and passes the events on", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const result = yield* Trainer.stream({
        model: yield* mlp,
        data: yield* classification,
        devices: yield* Cpu.makeMany(1, { threads: false }),
        batchSize: 32,
        epochs: 2,
        optimizer: Optimizer.sgd({ learningRate: 0.1 }),
        seed: 1
      }).pipe(Progress.render({ write: (line) => lines.push(line), steps: 2 }), Trainer.collect)
      expect(result.steps).toBe(6)
      expect(lines[0]).toMatch(/^training \d+ parameters on cpu:0$/)
      expect(lines.filter((l) => l.startsWith("step "))).toHaveLength(3)
      expect(lines.filter((l) => l.startsWith("epoch "))).toEqual([
        expect.stringMatching(/^epoch 0: loss \d\.\d{4} over 3 steps, \d+ samples\/s$/),
        expect.stringMatching(/^epoch 1: loss /)
      ])
      expect(lines.at(-1)).toBe("completed at step 6")
    })
  )

  it("splits a batch into contiguous shards that differ by at most one row", () => {
    expect(Trainer.shardSizes(26, 2)).toEqual([13, 13])
    expect(Trainer.shardSizes(7, 3)).toEqual([3, 2, 2])
    expect(Trainer.shardSizes(1, 2)).toEqual([1, 0])
  })
})

const e2e = webgpuSkip ? describe.skip : describe
e2e(`the same training on CPU and on WebGPU${webgpuSkip ? ` (${webgpuSkip})` : ""}`, () => {
  /**
   * Bounds for a few steps of training, about 3x the differences measured on Dawn's OpenGL ES backend over
   * llvmpipe (Mesa 22.3.6): per-step losses 1.4e-7 relative (MLP, 9 Adam steps) and 8.6e-8 (two-tower, 6 SGD
   * steps); final parameters 5.1e-7 and 2.7e-7 normwise relative.
   */
  const LOSS_BOUND = 4e-7
  const PARAMETER_BOUND = 1.5e-6

  const run = (devices: ReadonlyArray<Backend.Backend>, which: "mlp" | "ranker") =>
    Effect.gen(function* () {
      if (which === "mlp") {
        return yield* Trainer.fit({
          model: yield* mlp,
          data: yield* classification,
          devices,
          batchSize: 32,
          epochs: 3,
          optimizer: Optimizer.adam({ learningRate: 0.02 }),
          seed: 3
        })
      }
      return yield* Trainer.fit({
        model: yield* ranker,
        data: yield* clicks,
        devices,
        batchSize: 25,
        epochs: 2,
        optimizer: Optimizer.sgd({ learningRate: 0.2, momentum: 0.9, weightDecay: 1e-3 }),
        seed: 5
      })
    })

  for (const which of ["mlp", "ranker"] as const) {
    it.scoped(`${which}: per-step losses and final parameters agree; WebGPU submits once per step`, () =>
      Effect.gen(function* () {
        const cpu = yield* run(yield* Cpu.makeMany(1), which)
        const [gpu] = yield* WebGpu.makeMany(1, webgpuOptions)
        const before = gpu!.submits!()
        const webgpu = yield* run([gpu!], which)
        // one submit per step (its kernels, with the previous step's update) and one for the final read
        expect(gpu!.submits!() - before).toBe(webgpu.steps + 1)
        expect(webgpu.losses).toHaveLength(cpu.losses.length)
        const lossError = Math.max(...cpu.losses.map((l, i) => Math.abs(webgpu.losses[i]! - l) / Math.abs(l)))
        const parameterError = maxRelative(webgpu.parameters, cpu.parameters)
        console.log(
          `[trainer] ${which} WebGPU vs CPU over ${cpu.steps} steps: losses ${lossError.toExponential(2)}, parameters ${parameterError.toExponential(2)} relative`
        )
        expect(lossError).toBeLessThan(LOSS_BOUND)
        expect(parameterError).toBeLessThan(PARAMETER_BOUND)
        // and training moved the parameters far more than that
        expect(maxRelative(cpu.parameters, Model.initialize(yield* which === "mlp" ? mlp : ranker, 3))).toBeGreaterThan(
          1e-2
        )
      })
    )
  }
})
