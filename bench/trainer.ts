/**
 * @org/trainer in one run:
 *  - WGSL tiled matmul GFLOP/s at 512^3 and 1024^3 (and any `--sizes`) against the CPU backend on the same machine,
 *    with the adapter and the compute limits it reports (and the share of `--peak-gflops` when given);
 *  - MLP training samples/s for 1, 2 and 4 devices on each backend (CPU devices in worker threads; WebGPU devices
 *    placed on distinct adapters where there are several), the CPU time per sample (all threads), and the share of
 *    a step spent in host synchronisation (handing out shards, waiting for results, averaging), and next to the
 *    2-vs-1 ratio the machine's ceiling for this workload: the same kernels in 2 independent threads (no
 *    synchronisation at all) vs 1 thread;
 *  - the CPU backend's MLP training step against @tensorflow/tfjs on its pure JavaScript CPU backend;
 *  - with `--sizes N` (N >= 2048): the data-parallel MLP at a size where a real GPU is busy (hidden width N, batch
 *    N), samples/s for 1 and 2 WebGPU devices and the scaling efficiency.
 *
 * Run: npm run bench -- trainer
 * On a GPU machine: npm run bench -- trainer --sizes 4096 --peak-gflops <the card's fp32 peak>
 * (`--sizes` takes N or MxKxN, comma separated; `TRAINER_BENCH_SIZES` works too; `--backend vulkan|opengles|...`.)
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import { type Backend, Cpu, Dataset, Devices, Model, Optimizer, Random, Trainer, WebGpu } from "@org/trainer"
import { report, row, type Row } from "./lib/report.js"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  if (i >= 0) return process.argv[i + 1]
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`))
  return eq?.slice(name.length + 3)
}

const parseSizes = (text: string) =>
  text.split(",").map((s) => {
    const parts = s.trim().split("x").map(Number)
    const [m, k, n] = parts.length === 3 ? parts : [parts[0]!, parts[0]!, parts[0]!]
    return [m!, k!, n!] as const
  })
const extraSizes = arg("sizes") ?? process.env.TRAINER_BENCH_SIZES
const sizes = [...parseSizes("512,1024"), ...(extraSizes ? parseSizes(extraSizes) : [])]
// the busy-GPU MLP's width: `--mlp-size N`, else the largest `--sizes` from 2048 up (none by default)
const bigSize = arg("mlp-size")
  ? Number(arg("mlp-size"))
  : extraSizes
    ? Math.max(...parseSizes(extraSizes).map(([m]) => m))
    : 0
// `--only big` runs only the busy-GPU MLP (to check it quickly), `--only cpu` only the CPU device scaling
const only = arg("only")
const peak = arg("peak-gflops") ? Number(arg("peak-gflops")) : undefined
const adapterBackend = (arg("backend") ?? "auto") as WebGpu.AdapterBackend
const CPU_MATMUL_LIMIT = 2 * 1024 ** 3 // flops: larger sizes take too long in plain TypeScript

const rows: Array<Row> = []
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1)

/** GFLOP/s of one matmul, median of `repeat` after a warm-up, waiting for the device each time. */
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

interface Shape {
  readonly inputs: number
  readonly hidden: number
  readonly classes: number
  readonly batch: number
}
// the MLP of the WebGPU and tfjs rows: 64 -> 128 -> 128 -> 10, ReLU, softmax cross-entropy, batch 256
const SMALL: Shape = { inputs: 64, hidden: 128, classes: 10, batch: 256 }
// the MLP of the CPU device scaling: an MNIST-sized classifier, 784 -> 256 -> 256 -> 10, batch 256 (269,322
// parameters, 0.41 GFLOP per step): per device the step's compute dwarfs a message, and its gradient (1 MiB) is
// what data parallelism exchanges in practice
const SCALING: Shape = { inputs: 784, hidden: 256, classes: 10, batch: 256 }
const shapeText = (shape: Shape) =>
  `batch ${shape.batch}, ${shape.inputs}-${shape.hidden}-${shape.hidden}-${shape.classes}, SGD`

const makeData = (shape: Shape, rowsCount: number) => {
  const random = Random.make(3)
  const x = Random.uniform(random, rowsCount * shape.inputs, -1, 1)
  const y = Float32Array.from(
    { length: rowsCount },
    (_, i) => ((x[i * shape.inputs]! > 0 ? 1 : 0) + (x[i * shape.inputs + 1]! > 0 ? 2 : 0)) % shape.classes
  )
  return { x, y }
}

/** Trains `steps` batches (after one warm-up step) and measures samples/s, CPU time and the synchronisation share. */
const trainRate = (devices: ReadonlyArray<Backend.Backend>, shape: Shape, steps: number) =>
  Effect.gen(function* () {
    const model = yield* Model.mlp({
      inputs: shape.inputs,
      hidden: [shape.hidden, shape.hidden],
      outputs: shape.classes,
      loss: "softmaxCrossEntropy"
    })
    const rowsCount = shape.batch * (steps + 1)
    const { x, y } = makeData(shape, rowsCount)
    const data = yield* Dataset.make({ size: rowsCount, inputs: { x }, target: y })
    let cpu0 = process.cpuUsage()
    let first = true
    const events = yield* Stream.runCollect(
      Trainer.stream({
        model,
        data,
        devices,
        batchSize: shape.batch,
        epochs: 1,
        optimizer: Optimizer.sgd({ learningRate: 0.01 }),
        seed: 1
      }).pipe(
        Stream.tap((e) =>
          Effect.sync(() => {
            // CPU time counts from the end of the warm-up step (pipeline compilation, thread start)
            if (e._tag === "Step" && first) {
              first = false
              cpu0 = process.cpuUsage()
            }
          })
        )
      )
    )
    const cpu = process.cpuUsage(cpu0)
    const timed = [...events].filter((e) => e._tag === "Step").slice(1)
    const samples = timed.reduce((s, e) => s + e.samples, 0)
    const ms = timed.reduce((s, e) => s + e.milliseconds, 0)
    return {
      samplesPerSecond: samples / (ms / 1000),
      stepMs: median(timed.map((e) => e.milliseconds)),
      cpuMicrosPerSample: (cpu.user + cpu.system) / samples,
      syncShare: mean(timed.map((e) => e.syncMilliseconds)) / mean(timed.map((e) => e.milliseconds))
    }
  })

type Rate = Effect.Effect.Success<ReturnType<typeof trainRate>>

/** The best of several runs: highest samples/s, lowest step time and CPU time per sample; the median sync share. */
const best = (r: ReadonlyArray<Rate>): Rate => ({
  samplesPerSecond: Math.max(...r.map((x) => x.samplesPerSecond)),
  stepMs: Math.min(...r.map((x) => x.stepMs)),
  cpuMicrosPerSample: Math.min(...r.map((x) => x.cpuMicrosPerSample)),
  syncShare: median(r.map((x) => x.syncShare))
})

/**
 * Each device count `repeat` times, the counts taking turns (1, 2, 4, 1, 2, 4, ...) so that all of them meet the same
 * spells of load; per count the best run (highest samples/s, lowest CPU time per sample): on a shared machine the
 * least disturbed run is the closest to what the code does.
 */
const bestRates = (
  counts: ReadonlyArray<number>,
  devices: (count: number) => Effect.Effect<ReadonlyArray<Backend.Backend>>,
  shape: Shape,
  steps: number,
  repeat: number
) =>
  Effect.gen(function* () {
    const runs = new Map<number, Array<Rate>>(counts.map((c) => [c, []]))
    for (let i = 0; i < repeat; i++) {
      for (const count of counts) runs.get(count)!.push(yield* trainRate(yield* devices(count), shape, steps))
    }
    return counts.map((count) => ({ count, r: best(runs.get(count)!) }))
  })

const tfjsStepMs = async (repeat: number) => {
  await tf.setBackend("cpu")
  await tf.ready()
  const { inputs: IN, hidden: HIDDEN, classes: CLASSES, batch: BATCH } = SMALL
  const { x, y } = makeData(SMALL, BATCH)
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

/**
 * What the machine allows right now: the wall time of 1 worker thread summing square roots, then of `count` threads
 * each doing the same work at once (2.0 on two idle cores). The trainer's ratios read against this ceiling.
 */
const rawThreadScaling = async (count: number) => {
  const code = `const { parentPort, workerData } = require("node:worker_threads")
parentPort.once("message", () => {
  let s = 0
  for (let i = 0; i < workerData; i++) s += Math.sqrt(i)
  parentPort.postMessage(s)
})`
  const run = async (n: number) => {
    // threads started (and their code compiled) before the clock starts
    const workers = await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<Worker>((resolve) => {
            const w = new Worker(code, { eval: true, workerData: 2e8 })
            w.once("online", () => resolve(w))
          })
      )
    )
    const t0 = performance.now()
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once("message", () => resolve())
            w.postMessage("go")
          })
      )
    )
    const ms = performance.now() - t0
    await Promise.all(workers.map((w) => w.terminate()))
    return ms
  }
  const one = await run(1)
  return (count * one) / (await run(count))
}

/**
 * The machine's ceiling for THIS workload: the CPU device scaling's forward, backward and update, one shard-sized
 * batch per step, on one CPU device in each of `count` independent worker threads (no group, no barrier, nothing
 * shared), all at once, against one such thread alone: the sum of their samples/s over the one's. What is missing
 * from `count` here is the kernels meeting in the machine's shared parts (caches, memory, a core's sibling); what
 * the data-parallel devices lose beyond it is their synchronisation.
 */
let ceilingEntry: Promise<string> | undefined
const ceilingWorker = () =>
  (ceilingEntry ??= (async () => {
    // bundled once per run, as the trainer bundles its own worker when it runs from the sources
    const outfile = path.join(os.tmpdir(), `org-trainer-ceiling-${process.pid}.mjs`)
    process.once("exit", () => fs.rmSync(outfile, { force: true }))
    const esbuild = await import("esbuild")
    await esbuild.build({
      entryPoints: [path.resolve(import.meta.dirname, "lib", "trainer-ceiling.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      conditions: ["@org/source"],
      external: ["esbuild", "webgpu"],
      outfile,
      logLevel: "silent"
    })
    return outfile
  })())

const kernelCeiling = async (shape: Shape, count: number, rounds: number, steps: number) => {
  const entry = await ceilingWorker()
  const workers = Array.from(
    { length: count },
    () => new Worker(entry, { workerData: { ...shape, rows: Math.ceil(shape.batch / count) } })
  )
  const run = (ws: ReadonlyArray<Worker>, n: number) =>
    Promise.all(
      ws.map(
        (w) =>
          new Promise<number>((resolve, reject) => {
            w.once("message", (m: number | { error: string }) =>
              typeof m === "number" ? resolve(m) : reject(new Error(m.error))
            )
            w.postMessage(n)
          })
      )
    )
  try {
    await run(workers, 3) // JIT compilation of the kernels in every thread
    const ratios: Array<number> = []
    const alone: Array<number> = []
    for (let r = 0; r < rounds; r++) {
      const [one] = await run(workers.slice(0, 1), steps)
      const all = await run(workers, steps)
      alone.push(one!)
      ratios.push(all.reduce((a, b) => a + b, 0) / one!)
    }
    return { ratios, alone }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

const loadAverage = () => os.loadavg()[0]!
const load = (value = loadAverage()) => `load average ${value.toFixed(1)} on ${os.availableParallelism()} cores`

/** The rows of bench/results/trainer.json from an earlier run, to keep what a partial run (`--only`) did not measure. */
const previousRows = (): ReadonlyArray<Row> => {
  try {
    return JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, "results", "trainer.json"), "utf8"))
  } catch {
    return []
  }
}

const main = Effect.gen(function* () {
  // `--only cpu` needs no adapter
  const discovery = only === "cpu" ? undefined : yield* WebGpu.discover({ backend: adapterBackend })
  const adapter = discovery?.adapter
  const gpuName = adapter ? `${adapter.device || adapter.description} (${adapter.backend})` : undefined
  if (discovery) {
    console.log(
      adapter
        ? `WebGPU adapters: ${discovery.adapters.join("; ")} (${adapter.backend}); limits ${JSON.stringify(adapter.limits)}`
        : `no WebGPU adapter: ${JSON.stringify(discovery.attempts)}`
    )
  }
  console.log(`machine: ${load()}`)
  const cpu = Cpu.unsafeMake()
  const webgpu = (count: number) =>
    Devices.make({ count, kind: "webgpu", webgpu: { backend: adapter!.backend } }).pipe(Effect.map((d) => d))

  // 1. matmul GFLOP/s
  const gpu = adapter ? (yield* webgpu(1)).devices[0]! : undefined
  for (const [m, k, n] of only === undefined ? sizes : []) {
    const flops = 2 * m * k * n
    const repeat = flops > 1e10 ? 5 : 3
    const cpuGflops = flops <= CPU_MATMUL_LIMIT ? yield* Effect.promise(() => matmulGflops(cpu, m, k, n, repeat)) : null
    if (gpu) {
      const gpuGflops = yield* Effect.promise(() => matmulGflops(gpu, m, k, n, repeat))
      const limits = adapter!.limits
      const notes = [
        `${gpuName}`,
        `adapter limits: ${limits.maxComputeInvocationsPerWorkgroup} invocations/workgroup, ${limits.maxComputeWorkgroupStorageSize} B workgroup storage, ${(limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB per binding (kernel: 256 invocations, 8 KiB)`,
        cpuGflops === null ? "CPU baseline skipped (too large)" : "baseline: CPU backend",
        peak ? `${((100 * gpuGflops) / peak).toFixed(2)}% of ${peak} GFLOP/s peak` : "no --peak-gflops given"
      ]
      rows.push(row(`matmul ${m}x${k}x${n} WebGPU`, gpuGflops, "GFLOP/s", cpuGflops, notes.join("; ")))
    } else if (cpuGflops !== null) {
      rows.push(row(`matmul ${m}x${k}x${n} CPU backend`, cpuGflops, "GFLOP/s", null, "no WebGPU adapter"))
    }
  }

  // 2. MLP training, 1, 2 and 4 devices per backend
  const STEPS = 20
  const shapeNote = shapeText(SMALL)
  const scaling = (
    name: string,
    shape: Shape,
    results: ReadonlyArray<{ count: number; r: Rate }>,
    runs: string,
    where: string,
    loadNow: string
  ) => {
    const one = results[0]!.r
    for (const { count, r } of results) {
      rows.push(
        row(
          `MLP train ${name}, ${count} device${count === 1 ? "" : "s"} vs 1`,
          r.samplesPerSecond,
          "samples/s",
          count === 1 ? null : one.samplesPerSecond,
          `${shapeText(shape)}; ${runs}; ${where}; ${(r.cpuMicrosPerSample / 1000).toFixed(3)} ms CPU per sample (all threads; 1 device: ${(one.cpuMicrosPerSample / 1000).toFixed(3)}); host synchronisation ${(100 * r.syncShare).toFixed(1)}% of a step; ${loadNow}`
        )
      )
    }
  }
  if (only !== "big") {
    // CPU devices: rounds of 1, 2 and 4 devices and the machine's own 2-thread ratio, so that all of them meet the
    // same spells of load; per count the best round (on a shared machine the least disturbed run is the closest to
    // what the code does), and the best 2-thread ratio as the ceiling
    const CPU_STEPS = 10
    const ROUNDS = 4
    const counts = [1, 2, 4]
    // start and warm 4 worker threads first (JIT compilation of the kernels in each), so every count runs warm threads
    yield* trainRate(yield* Cpu.makeMany(4), SCALING, 3)
    const runs = new Map<number, Array<Rate>>(counts.map((c) => [c, []]))
    const ceilings: Array<number> = []
    const workload: Array<number> = []
    const loads: Array<number> = []
    for (let round = 0; round < ROUNDS; round++) {
      for (const count of counts)
        runs.get(count)!.push(yield* trainRate(yield* Cpu.makeMany(count), SCALING, CPU_STEPS))
      ceilings.push(yield* Effect.promise(() => rawThreadScaling(2)))
      const kernels = yield* Effect.promise(() => kernelCeiling(SCALING, 2, 1, CPU_STEPS))
      workload.push(kernels.ratios[0]!)
      loads.push(loadAverage())
      console.log(
        `round ${round + 1}: ${counts.map((c) => `${c} device(s) ${runs.get(c)!.at(-1)!.samplesPerSecond.toFixed(1)} samples/s`).join(", ")}; 2 threads vs 1 ${ceilings.at(-1)!.toFixed(3)}x; this workload's kernels in 2 independent threads vs 1 ${workload.at(-1)!.toFixed(3)}x; ${load()}`
      )
    }
    const results = counts.map((count) => ({ count, r: best(runs.get(count)!) }))
    const loadNow = `load average ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)} on ${os.availableParallelism()} cores`
    scaling(
      "CPU backend",
      SCALING,
      results,
      `best of ${ROUNDS} rounds of ${CPU_STEPS} steps`,
      "one worker thread per device, a step run among the threads (shared memory, no gradient through the main thread)",
      loadNow
    )
    const ceiling = Math.max(...ceilings)
    const two = results[1]!.r.samplesPerSecond / results[0]!.r.samplesPerSecond
    rows.push(
      row(
        "machine: 2 plain JS threads vs 1 (the ceiling now)",
        ceiling,
        "x",
        null,
        `best of ${ROUNDS}, one per round of the CPU device runs (all rounds: ${ceilings.map((c) => c.toFixed(3)).join(", ")}); the same fixed work per thread; 2.0 on two idle cores; ${loadNow}`
      )
    )
    const workloadCeiling = Math.max(...workload)
    rows.push(
      row(
        "machine ceiling for this workload: its kernels in 2 independent threads vs 1",
        workloadCeiling,
        "x",
        null,
        `best of ${ROUNDS}, one per round (all rounds: ${workload.map((c) => c.toFixed(3)).join(", ")}); each thread trains ${shapeText({ ...SCALING, batch: SCALING.batch / 2 })} on one CPU device of its own (forward, backward, update; no group, no barrier, nothing shared) for ${CPU_STEPS} steps; the sum of both threads' samples/s / one thread's alone: what the machine's shared parts (caches, memory) leave of 2 cores to these kernels; ${loadNow}`
      )
    )
    rows.push(
      row(
        "MLP train CPU backend, 2 devices: share of the workload ceiling",
        two / workloadCeiling,
        "fraction",
        null,
        "(2-device samples/s / 1-device) / the best ratio of the kernels in 2 independent threads: what the data-parallel structure (sharding, reduction, barriers) loses"
      )
    )
    rows.push(
      row(
        "MLP train CPU backend, 2 devices: share of that ceiling",
        two / ceiling,
        "fraction",
        null,
        "(2-device samples/s / 1-device) / the machine's best 2-thread ratio in the same rounds"
      )
    )
    rows.push(
      row(
        "MLP train CPU backend, 2 devices: host synchronisation",
        results[1]!.r.syncShare,
        "fraction of a step",
        null,
        "the step's time minus the busiest device's forward, backward and update: staging the batch, messages, the reduction among the threads, the waits at its barriers"
      )
    )
    rows.push(row("machine: load average during the CPU device runs", Math.max(...loads), "runnable", null, loadNow))
    console.log(
      `CPU devices, ${shapeText(SCALING)}: 2 vs 1 = ${two.toFixed(3)}x, 4 vs 1 = ${(results[2]!.r.samplesPerSecond / results[0]!.r.samplesPerSecond).toFixed(3)}x; the machine's 2 threads vs 1 = ${ceiling.toFixed(3)}x (2 devices reach ${((100 * two) / ceiling).toFixed(1)}% of it); the workload's kernels in 2 independent threads vs 1 = ${workloadCeiling.toFixed(3)}x; host synchronisation ${(100 * results[1]!.r.syncShare).toFixed(1)}% of a 2-device step; ${loadNow}`
    )
  }
  if (adapter && only === undefined) {
    const opened = new Map<number, ReadonlyArray<Backend.Backend>>()
    let placement = ""
    for (const count of [1, 2, 4]) {
      const d = yield* webgpu(count)
      opened.set(count, d.devices)
      if (count > 1) placement = d.discovery.message
    }
    const gpuResults = yield* bestRates([1, 2, 4], (n) => Effect.succeed(opened.get(n)!), SMALL, STEPS, 2)
    scaling("WebGPU", SMALL, gpuResults, `best of 2 runs of ${STEPS} steps`, placement, load())
  }

  // 3. CPU backend MLP step against tfjs (pure JS CPU backend)
  if (only === undefined) {
    const cpuOne = yield* trainRate([Cpu.unsafeMake()], SMALL, STEPS)
    const tfMs = yield* Effect.promise(() => tfjsStepMs(15))
    rows.push(
      row(
        "MLP step CPU backend vs tfjs cpu",
        cpuOne.stepMs,
        "ms",
        tfMs,
        `${shapeNote}; ours: full Trainer step on 1 CPU device on the main thread`
      )
    )
    if (gpu) {
      const gpuOne = yield* trainRate([gpu], SMALL, STEPS)
      rows.push(row("MLP step WebGPU (1 device) vs tfjs cpu", gpuOne.stepMs, "ms", tfMs, `${gpuName}`))
    }
  }

  // 4. the data-parallel MLP at a size where a real GPU is busy (only with --sizes N, N >= 2048, and an adapter)
  if ((bigSize >= 2048 || arg("mlp-size")) && adapter) {
    const big: Shape = {
      inputs: Math.min(1024, bigSize),
      hidden: bigSize,
      classes: Math.min(1000, bigSize),
      batch: bigSize
    }
    const flopsPerSample = 6 * (big.inputs * big.hidden + big.hidden * big.hidden + big.hidden * big.classes)
    const results = []
    const placements: Array<string> = []
    for (const count of [1, 2]) {
      const opened = yield* webgpu(count)
      placements.push(opened.discovery.message)
      results.push(yield* trainRate(opened.devices, big, 8))
    }
    const [one, two] = results as [(typeof results)[number], (typeof results)[number]]
    const note = (k: number) =>
      `batch ${big.batch}, ${big.inputs}-${big.hidden}-${big.hidden}-${big.classes}; ${placements[k]}; ${load()}`
    rows.push(
      row(
        `MLP ${bigSize} train WebGPU, 1 device`,
        one.samplesPerSecond,
        "samples/s",
        null,
        `${note(0)}; ${((one.samplesPerSecond * flopsPerSample) / 1e9).toFixed(1)} GFLOP/s; sync ${(100 * one.syncShare).toFixed(1)}%`
      )
    )
    rows.push(
      row(
        `MLP ${bigSize} train WebGPU, 2 devices vs 1`,
        two.samplesPerSecond,
        "samples/s",
        one.samplesPerSecond,
        `${note(1)}; sync ${(100 * two.syncShare).toFixed(1)}%`
      )
    )
    rows.push(
      row(
        `MLP ${bigSize} scaling efficiency, 2 devices`,
        two.samplesPerSecond / (2 * one.samplesPerSecond),
        "fraction",
        null,
        "samples/s of 2 devices / (2 x samples/s of 1 device)"
      )
    )
  }
  // a partial run (`--only`) keeps the earlier rows of what it did not measure; rows that this run measured (and the
  // CPU scaling rows of earlier layouts, when it measured CPU scaling) are replaced
  const measured = new Set(rows.map((r) => r.metric))
  const cpuScaling = only !== "big"
  const superseded = (r: Row) =>
    measured.has(r.metric) ||
    (cpuScaling && (r.metric.startsWith("MLP train CPU backend") || r.metric.startsWith("machine")))
  const kept = only === undefined ? [] : previousRows().filter((r) => !superseded(r))
  report("trainer", [...rows, ...kept])
})

Effect.runPromise(Effect.scoped(main)).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
