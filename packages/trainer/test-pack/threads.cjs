// The published trainer runs CPU devices in worker threads (dist/worker.cjs beside the CommonJS build, dist/worker.js
// beside the ESM build; threads.mjs runs this check through ESM): 2 threaded devices train to the parameters of 1
// within 1e-6, each on a thread of its own.
/* eslint-disable @typescript-eslint/no-require-imports */

/** The check, given the loaded `effect` and `@org/trainer` modules; resolves with what it saw. */
const check = ({ Effect, Stream }, { Cpu, Dataset, Model, Optimizer, Random, Trainer }) => {
  const program = Effect.gen(function* () {
    const random = Random.make(1)
    const x = Random.uniform(random, 96 * 8, -1, 1)
    const y = Float32Array.from({ length: 96 }, (_, i) => (x[i * 8] > 0 ? 1 : 0))
    const data = yield* Dataset.make({ size: 96, inputs: { x }, target: y })
    const model = yield* Model.mlp({ inputs: 8, hidden: [16], outputs: 2, loss: "softmaxCrossEntropy" })
    const run = (devices) =>
      Stream.runCollect(
        Trainer.stream({
          model,
          data,
          devices,
          batchSize: 32,
          epochs: 2,
          seed: 1,
          optimizer: Optimizer.adam({ learningRate: 0.01 })
        })
      ).pipe(Effect.map((c) => [...c]))
    const one = yield* run(yield* Cpu.makeMany(1))
    const two = yield* run(yield* Cpu.makeMany(2))
    const threads = new Set(two.filter((e) => e._tag === "Step").flatMap((e) => e.devices.map((d) => d.thread)))
    if (threads.size !== 2 || threads.has(0)) throw new Error(`expected 2 worker threads, saw ${[...threads]}`)
    const a = one.at(-1).parameters
    const b = two.at(-1).parameters
    let worst = 0
    for (const [name, values] of a) {
      const other = b.get(name)
      let num = 0
      let den = 0
      for (let i = 0; i < values.length; i++) {
        num = Math.max(num, Math.abs(values[i] - other[i]))
        den = Math.max(den, Math.abs(values[i]))
      }
      worst = Math.max(worst, num / den)
    }
    if (!(worst < 1e-6)) throw new Error(`2 threaded devices differ from 1 by ${worst}`)
    return `${threads.size} worker threads (${[...threads].join(", ")}); 2 vs 1 devices: ${worst.toExponential(2)} relative`
  })
  return Effect.runPromise(program)
}

const run = (kind, loaded) =>
  loaded
    .then(([effect, trainer]) => check(effect, trainer))
    .then(
      (line) => console.log(`trainer threads (${kind}): ${line}`),
      (error) => {
        console.error(error)
        process.exit(1)
      }
    )

module.exports = { run }

if (require.main === module) run("cjs", Promise.resolve([require("effect"), require("@org/trainer")]))
