// @repeat 5
// Trains a small MLP from the installed @org/trainer on WebGPU with 1 and with 2 devices, forcing a full garbage
// collection before every step (the published trainer once let the collector take the GPU instance from under its
// live devices: SIGABRT, SIGSEGV or a hang), then the same job on the CPU backend, and checks that the WebGPU losses
// follow the CPU losses. With CI set, a missing WebGPU adapter is a failure.
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { Effect } from "effect"
import { Dataset, Devices, Model, Optimizer, Random, Trainer } from "@org/trainer"

v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc")
// The WebGPU losses may differ from the CPU losses by at most this much, relative to the CPU loss (float32 kernels in
// a different summation order, a few steps of Adam).
const bound = 1e-3
const backend = process.env.ORG_TRAINER_WEBGPU_BACKEND ?? "auto"

const size = 96
const inputs = 6
const classes = 3
const random = Random.make(7)
const features = Random.uniform(random, size * inputs, -1, 1)
const labels = new Float32Array(size)
for (let i = 0; i < size; i++) {
  const row = features.subarray(i * inputs, (i + 1) * inputs)
  labels[i] = row[0] + row[1] > 0.3 ? 0 : row[2] - row[3] > 0 ? 1 : 2
}

const train = (kind, count) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { devices, discovery } = yield* Devices.make({ count, kind, webgpu: { backend } })
      gc()
      const model = yield* Model.mlp({ inputs, hidden: [16], outputs: classes, loss: "softmaxCrossEntropy" })
      const data = yield* Dataset.make({ size, inputs: { x: features }, target: labels })
      let gcs = 0
      const result = yield* Trainer.fit({
        model,
        data,
        devices,
        batchSize: 32,
        epochs: 2,
        seed: 42,
        checkReplicas: count > 1,
        optimizer: Optimizer.adam({ learningRate: 0.01 }),
        beforeStep: () => {
          gc()
          gcs++
        }
      })
      gc()
      return { discovery, losses: result.losses, steps: result.steps, gcs }
    })
  )

const main = Effect.gen(function* () {
  const discovery = yield* Devices.discover({ webgpu: { backend } })
  if (discovery.kind !== "webgpu") {
    if (process.env.CI) throw new Error(`no WebGPU adapter under CI: ${discovery.message}`)
    console.log(`SKIPPED @org/trainer WebGPU training: ${discovery.message}`)
    return
  }
  const cpu = yield* train("cpu", 1)
  if (!(cpu.steps === 6 && cpu.losses.every(Number.isFinite))) throw new Error(`cpu: ${JSON.stringify(cpu)}`)
  if (!(cpu.losses.at(-1) < cpu.losses[0])) throw new Error(`cpu loss did not fall: ${cpu.losses.join(", ")}`)
  for (const count of [1, 2]) {
    const gpu = yield* train("webgpu", count)
    if (!gpu.discovery.message.includes("webgpu")) throw new Error(`not on WebGPU: ${gpu.discovery.message}`)
    if (gpu.steps !== cpu.steps) throw new Error(`${count} webgpu device(s): ${gpu.steps} steps, cpu ${cpu.steps}`)
    const worst = Math.max(...gpu.losses.map((l, i) => Math.abs(l - cpu.losses[i]) / Math.abs(cpu.losses[i])))
    if (!(worst <= bound)) {
      throw new Error(
        `${count} webgpu device(s): losses ${gpu.losses.join(", ")} differ from cpu ${cpu.losses.join(", ")} by ${worst} (bound ${bound})`
      )
    }
    console.log(
      `trainer: ${gpu.discovery.message}: ${gpu.steps} steps with gc() before each (${gpu.gcs}), final loss ${gpu.losses.at(-1).toFixed(5)} vs cpu ${cpu.losses.at(-1).toFixed(5)} (worst rel. diff ${worst.toExponential(1)} <= ${bound})`
    )
  }
})

await Effect.runPromise(main)
