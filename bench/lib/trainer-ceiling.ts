/**
 * A worker thread of bench/trainer's "machine ceiling for this workload": trains the CPU device scaling's MLP on
 * one CPU device on this thread (no worker of its own, no group, nothing shared with any other thread), one
 * shard-sized batch per step, and answers each `{ steps }` message with its samples/s. Two of these running at
 * once against one alone is what two cores give these kernels with no synchronisation at all.
 */
import { Effect, Stream } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import { Cpu, Dataset, Model, Optimizer, Random, Trainer } from "@org/trainer"

const { inputs, hidden, classes, rows } = workerData as {
  readonly inputs: number
  readonly hidden: number
  readonly classes: number
  readonly rows: number
}

const rate = (steps: number) =>
  Effect.gen(function* () {
    const model = yield* Model.mlp({ inputs, hidden: [hidden, hidden], outputs: classes, loss: "softmaxCrossEntropy" })
    const size = rows * (steps + 1)
    const x = Random.uniform(Random.make(3), size * inputs, -1, 1)
    const y = Float32Array.from({ length: size }, (_, i) => (x[i * inputs]! > 0 ? 1 : 0) % classes)
    const data = yield* Dataset.make({ size, inputs: { x }, target: y })
    const events = yield* Stream.runCollect(
      Trainer.stream({
        model,
        data,
        devices: [yield* Cpu.make({ threads: false })],
        batchSize: rows,
        epochs: 1,
        optimizer: Optimizer.sgd({ learningRate: 0.01 }),
        seed: 1
      })
    )
    // the first step warms up
    const timed = [...events].filter((e) => e._tag === "Step").slice(1)
    const ms = timed.reduce((s, e) => s + e.milliseconds, 0)
    return timed.reduce((s, e) => s + e.samples, 0) / (ms / 1000)
  })

parentPort!.on("message", (steps: number) => {
  Effect.runPromise(rate(steps)).then(
    (samplesPerSecond) => parentPort!.postMessage(samplesPerSecond),
    (error) => parentPort!.postMessage({ error: String(error) })
  )
})
