/**
 * A 3-class MLP trained on 2 devices (WebGPU where an adapter exists, else CPU worker threads),
 * with progress lines, a checkpoint, and resume.
 * Run: npx tsx train.ts
 */
import { Effect } from "effect"
import { Dataset, Devices, Model, Optimizer, Progress, Trainer } from "@org/trainer"

// 150 rows of 4 features (row-major) and their class (0, 1 or 2): three separable clusters
const features = new Float32Array(150 * 4)
const labels = new Float32Array(150)
for (let row = 0; row < 150; row++) {
  const label = row % 3
  labels[row] = label
  for (let j = 0; j < 4; j++) features[row * 4 + j] = label * 2 + Math.sin(row * 7 + j * 3)
}

const program = Effect.gen(function* () {
  const { devices, discovery } = yield* Devices.make({ count: 2 }) // WebGPU where an adapter exists, else CPU
  console.log(discovery.message) // "2 x webgpu on 2 adapters: webgpu:0 on ..., webgpu:1 on ... (vulkan, core)"
  const model = yield* Model.mlp({ inputs: 4, hidden: [16], outputs: 3, loss: "softmaxCrossEntropy" })
  const data = yield* Dataset.make({ size: 150, inputs: { x: features }, target: labels })
  const { epochs, parameters } = yield* Trainer.stream({
    model,
    data,
    devices,
    batchSize: 32,
    epochs: 20,
    seed: 42,
    optimizer: Optimizer.adam({ learningRate: 0.01 }),
    checkpoint: { directory: "checkpoints" },
    resume: true // picks up where a failed run stopped
  }).pipe(Progress.render({ write: (line) => console.error(line) }), Trainer.collect) // or Trainer.fit({...}): silent
  console.log(
    `final loss ${epochs.at(-1)?.loss ?? "(resumed a finished run)"}`,
    parameters.get("dense_0.weight")?.length
  )
})

Effect.runPromise(Effect.scoped(program)) // closing the scope destroys the devices
