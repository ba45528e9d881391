/**
 * @org/trainer in one run:
 *  - WGSL tiled matmul GFLOP/s at several sizes against the CPU backend on the same machine;
 *  - MLP training samples/s on 2 devices against 1 device (WebGPU when an adapter exists, and CPU);
 *  - the CPU backend's MLP training step against @tensorflow/tfjs on its pure JavaScript CPU backend
 *    (same model, batch and optimizer).
 *
 * Run: npm run bench -- trainer
 * On a GPU machine: node_modules/.bin/tsx --conditions=@org/source bench/trainer.ts --sizes 4096 [--peak-gflops 67000]
 * (`--sizes` takes N or MxKxN, comma separated; `TRAINER_BENCH_SIZES` works too; `--backend vulkan|opengles|...`.)
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Stream } from "effect"
import { type Backend, Cpu, Dataset, Model, Optimizer, Random, Trainer, WebGpu } from "@org/trainer"
import { report, row, type Row } from "./lib/report.js"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  if (i >= 0) return process.argv[i + 1]
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`))
  return eq?.slice(name.length + 3)
}

const sizes = (arg("sizes") ?? process.env.TRAINER_BENCH_SIZES ?? "128,256,512").split(",").map((s) => {
  const parts = s.trim().split("x").map(Number)
  const [m, k, n] = parts.length === 3 ? parts : [parts[0]!, parts[0]!, parts[0]!]
  return [m!, k!, n!] as const
})
const peak = arg("peak-gflops") ? Number(arg("peak-gflops")) : undefined
const adapterBackend = (arg("backend") ?? "auto") as WebGpu.AdapterBackend
const CPU_MATMUL_LIMIT = 2 * 1024 ** 3 // flops: larger sizes take too long in plain TypeScript

const rows: Array<Row> = []
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** GFLOP/s of `repeat` matmuls enqueued back to back, after one warm-up, waiting for the device at the end. */
const matmulGflops = async (b: Backend.Backend, m: number, k: number, n: number, repeat: number) => {
  const random = Random.make(1)
  const a = b.upload([m, k], Random.uniform(random, m * k, -1, 1))
  const c = b.upload([k, n], Random.uniform(random, k * n, -1, 1))
  b.dispose(b.matmul(a, c))
  await b.sync()
  const times: Array<number> = []
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now()
    const out = b.matmul(a, c)
    await b.sync()
    times.push(performance.now() - t0)
    b.dispose(out)
  }
  b.dispose(a)
  b.dispose(c)
  return (2 * m * k * n) / (median(times) / 1000) / 1e9
}

// MLP used by the training rows: 64 -> 128 -> 128 -> 10, ReLU, softmax cross-entropy
const IN = 64
const HIDDEN = 128
const CLASSES = 10
const BATCH = 256
const makeData = (rowsCount: number) => {
  const random = Random.make(3)
  const x = Random.uniform(random, rowsCount * IN, -1, 1)
  const y = Float32Array.from({ length: rowsCount }, (_, i) => (x[i * IN]! > 0 ? 1 : 0) + (x[i * IN + 1]! > 0 ? 2 : 0))
  return { x, y }
}

const trainRate = (devices: ReadonlyArray<Backend.Backend>, rowsCount: number, epochs: number) =>
  Effect.gen(function* () {
    const model = yield* Model.mlp({
      inputs: IN,
      hidden: [HIDDEN, HIDDEN],
      outputs: CLASSES,
      loss: "softmaxCrossEntropy"
    })
    const { x, y } = makeData(rowsCount)
    const data = yield* Dataset.make({ size: rowsCount, inputs: { x }, target: y })
    const events = yield* Stream.runCollect(
      Trainer.stream({
        model,
        data,
        devices,
        batchSize: BATCH,
        epochs,
        optimizer: Optimizer.sgd({ learningRate: 0.01 }),
        seed: 1
      })
    )
    const steps = [...events].filter((e) => e._tag === "Step")
    // skip the first epoch's first step (pipeline compilation)
    const timed = steps.slice(1)
    const samples = timed.reduce((s, e) => s + e.samples, 0)
    const ms = timed.reduce((s, e) => s + e.milliseconds, 0)
    return { samplesPerSecond: samples / (ms / 1000), stepMs: median(timed.map((e) => e.milliseconds)) }
  })

const tfjsStepMs = async (repeat: number) => {
  await tf.setBackend("cpu")
  await tf.ready()
  const { x, y } = makeData(BATCH)
  const xs = tf.tensor2d(x, [BATCH, IN])
  const labels = tf.oneHot(tf.tensor1d(Int32Array.from(y), "int32"), CLASSES)
  const glorot = (i: number, o: number) =>
    tf.variable(tf.randomUniform([i, o], -Math.sqrt(6 / (i + o)), Math.sqrt(6 / (i + o)), "float32", 1))
  const w1 = glorot(IN, HIDDEN)
  const b1 = tf.variable(tf.zeros([HIDDEN]))
  const w2 = glorot(HIDDEN, HIDDEN)
  const b2 = tf.variable(tf.zeros([HIDDEN]))
  const w3 = glorot(HIDDEN, CLASSES)
  const b3 = tf.variable(tf.zeros([CLASSES]))
  const optimizer = tf.train.sgd(0.01)
  const step = () =>
    tf.tidy(() => {
      const cost = optimizer.minimize(() => {
        const h1 = tf.relu(tf.add(tf.matMul(xs, w1), b1))
        const h2 = tf.relu(tf.add(tf.matMul(h1, w2), b2))
        const logits = tf.add(tf.matMul(h2, w3), b3)
        return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar
      }, true)
      return cost!.dataSync()[0]
    })
  step()
  const times: Array<number> = []
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now()
    step()
    times.push(performance.now() - t0)
  }
  return median(times)
}

const main = Effect.gen(function* () {
  const discovery = yield* WebGpu.discover({ backend: adapterBackend })
  const gpuName = discovery.adapter
    ? `${discovery.adapter.device || discovery.adapter.description} (${discovery.adapter.backend})`
    : undefined
  console.log(gpuName ? `WebGPU adapter: ${gpuName}` : `no WebGPU adapter: ${JSON.stringify(discovery.attempts)}`)
  const cpu = Cpu.unsafeMake()
  const gpus = gpuName ? yield* WebGpu.makeMany(2, { backend: discovery.adapter!.backend }) : []

  // 1. matmul GFLOP/s
  for (const [m, k, n] of sizes) {
    const flops = 2 * m * k * n
    const repeat = flops > 1e10 ? 5 : 3
    const cpuGflops = flops <= CPU_MATMUL_LIMIT ? yield* Effect.promise(() => matmulGflops(cpu, m, k, n, repeat)) : null
    if (gpus.length > 0) {
      const gpuGflops = yield* Effect.promise(() => matmulGflops(gpus[0]!, m, k, n, repeat))
      const notes = [`${gpuName}`, cpuGflops === null ? "CPU baseline skipped (too large)" : "baseline: CPU backend"]
      if (peak) notes.push(`${((100 * gpuGflops) / peak).toFixed(1)}% of ${peak} GFLOP/s peak`)
      rows.push(row(`matmul ${m}x${k}x${n} WebGPU`, gpuGflops, "GFLOP/s", cpuGflops, notes.join("; ")))
    } else if (cpuGflops !== null) {
      rows.push(row(`matmul ${m}x${k}x${n} CPU backend`, cpuGflops, "GFLOP/s", null, "no WebGPU adapter"))
    }
  }

  // 2. MLP training samples/s, 2 devices against 1
  const rowsCount = 2048
  if (gpus.length > 0) {
    const one = yield* trainRate([gpus[0]!], rowsCount, 2)
    const two = yield* trainRate(gpus, rowsCount, 2)
    rows.push(
      row(
        "MLP train WebGPU, 2 devices vs 1",
        two.samplesPerSecond,
        "samples/s",
        one.samplesPerSecond,
        `batch ${BATCH}, ${IN}-${HIDDEN}-${HIDDEN}-${CLASSES}`
      )
    )
  }
  const cpuOne = yield* trainRate(yield* Cpu.makeMany(1), rowsCount, 2)
  const cpuTwo = yield* trainRate(yield* Cpu.makeMany(2), rowsCount, 2)
  rows.push(
    row(
      "MLP train CPU backend, 2 devices vs 1",
      cpuTwo.samplesPerSecond,
      "samples/s",
      cpuOne.samplesPerSecond,
      "CPU devices share one JS thread"
    )
  )

  // 3. CPU backend MLP step against tfjs (pure JS CPU backend)
  const tfMs = yield* Effect.promise(() => tfjsStepMs(15))
  rows.push(
    row(
      "MLP step CPU backend vs tfjs cpu",
      cpuOne.stepMs,
      "ms",
      tfMs,
      `batch ${BATCH}, SGD; ours: full Trainer step on 1 CPU device`
    )
  )
  if (gpus.length > 0) {
    const gpuOne = yield* trainRate([gpus[0]!], rowsCount, 1)
    rows.push(row("MLP step WebGPU (1 device) vs tfjs cpu", gpuOne.stepMs, "ms", tfMs, `${gpuName}`))
  }
  report("trainer", rows)
})

Effect.runPromise(Effect.scoped(main)).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
