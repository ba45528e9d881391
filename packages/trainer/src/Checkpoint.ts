/**
 * Checkpoints: parameters and optimizer state in a safetensors file plus a small
 * JSON manifest (step, epoch, optimizer settings and step, seed, random state).
 * The manifest is written last and atomically, so a directory always names one
 * complete checkpoint.
 *
 * @since 0.1.0
 */
import { Effect, Either } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type { Model } from "./Model.js"
import type { Optimizer } from "./Optimizer.js"
import type * as Random from "./Random.js"
import * as Safetensors from "./Safetensors.js"
import { CheckpointError } from "./TrainerError.js"
import { messageOf } from "./internal/common.js"

/**
 * The manifest of a checkpoint (`manifest.json`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Manifest {
  readonly format: "org-trainer-checkpoint/1"
  /** Optimizer steps completed. */
  readonly step: number
  /** The epoch in progress (0-based) and the batches of it already trained on. */
  readonly epoch: number
  readonly batch: number
  readonly seed: number
  /** The shuffling generator's state at the start of `epoch`. */
  readonly rng: Random.State
  readonly optimizer: Optimizer
  /** The parameter names and shapes (checked against the model on load). */
  readonly parameters: ReadonlyArray<{ readonly name: string; readonly shape: ReadonlyArray<number> }>
  /** The safetensors file beside the manifest. */
  readonly tensors: string
}

/**
 * A checkpoint's content.
 *
 * @since 0.1.0
 * @category models
 */
export interface Checkpoint {
  readonly manifest: Manifest
  readonly parameters: ReadonlyMap<string, Float32Array>
  /** Per parameter, the optimizer's state tensors in `Optimizer.stateNames` order. */
  readonly optimizerState: ReadonlyMap<string, ReadonlyArray<Float32Array>>
}

const MANIFEST = "manifest.json"

const stateKey = (state: string, parameter: string) => `optimizer.${state}.${parameter}`

const stateNamesOf = (optimizer: Optimizer) => (optimizer._tag === "Sgd" ? ["velocity"] : ["m", "v"])

/**
 * Writes a checkpoint into `directory` (created when missing), replacing the one
 * there. Returns the manifest's path.
 *
 * @since 0.1.0
 * @category io
 */
export const save = (directory: string, checkpoint: Checkpoint): Effect.Effect<string, CheckpointError> =>
  Effect.tryPromise({
    try: async () => {
      await fs.mkdir(directory, { recursive: true })
      const { manifest } = checkpoint
      const tensors = new Map<string, Safetensors.Entry>()
      for (const p of manifest.parameters)
        tensors.set(p.name, { shape: p.shape, data: checkpoint.parameters.get(p.name)! })
      const names = stateNamesOf(manifest.optimizer)
      for (const p of manifest.parameters) {
        const state = checkpoint.optimizerState.get(p.name)!
        names.forEach((s, i) => tensors.set(stateKey(s, p.name), { shape: p.shape, data: state[i]! }))
      }
      const file = `step-${String(manifest.step).padStart(8, "0")}.safetensors`
      const bytes = Safetensors.encode(tensors, { format: manifest.format, step: String(manifest.step) })
      await fs.writeFile(path.join(directory, `${file}.tmp`), bytes)
      await fs.rename(path.join(directory, `${file}.tmp`), path.join(directory, file))
      const previous = await readManifest(directory).catch(() => undefined)
      const target = path.join(directory, MANIFEST)
      await fs.writeFile(`${target}.tmp`, JSON.stringify({ ...manifest, tensors: file }, null, 2))
      await fs.rename(`${target}.tmp`, target)
      if (previous && previous.tensors !== file) await fs.rm(path.join(directory, previous.tensors), { force: true })
      return target
    },
    catch: (cause) =>
      new CheckpointError({
        path: directory,
        message: `could not write a checkpoint to ${directory}: ${messageOf(cause)}`,
        cause
      })
  })

const readManifest = async (directory: string): Promise<Manifest> =>
  JSON.parse(await fs.readFile(path.join(directory, MANIFEST), "utf8")) as Manifest

/**
 * True when `directory` holds a checkpoint manifest.
 *
 * @since 0.1.0
 * @category io
 */
export const exists = (directory: string): Effect.Effect<boolean> =>
  Effect.promise(() =>
    fs.access(path.join(directory, MANIFEST)).then(
      () => true,
      () => false
    )
  )

/**
 * Reads the checkpoint in `directory`. When `model` is given, parameter names and
 * shapes must match it.
 *
 * @since 0.1.0
 * @category io
 */
export const load = (directory: string, model?: Model): Effect.Effect<Checkpoint, CheckpointError> =>
  Effect.gen(function* () {
    const manifestPath = path.join(directory, MANIFEST)
    const fail = (file: string, message: string, cause?: unknown) =>
      new CheckpointError({ path: file, message: `${file}: ${message}`, ...(cause ? { cause } : {}) })
    const manifest = yield* Effect.tryPromise({
      try: () => readManifest(directory),
      catch: (cause) => fail(manifestPath, `cannot read the manifest (${messageOf(cause)})`, cause)
    })
    if (manifest.format !== "org-trainer-checkpoint/1") {
      return yield* fail(manifestPath, `unknown format ${JSON.stringify(manifest.format)}`)
    }
    const file = path.join(directory, manifest.tensors)
    const bytes = yield* Effect.tryPromise({
      try: () => fs.readFile(file),
      catch: (cause) => fail(file, `cannot read the tensors (${messageOf(cause)})`, cause)
    })
    const decoded = Safetensors.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    if (Either.isLeft(decoded)) return yield* fail(file, decoded.left)
    const { tensors } = decoded.right
    if (model) {
      const expected = model.parameters.map((p) => `${p.name}[${p.shape}]`).join(", ")
      const actual = manifest.parameters.map((p) => `${p.name}[${p.shape}]`).join(", ")
      if (expected !== actual)
        return yield* fail(manifestPath, `parameters ${actual} do not match the model's ${expected}`)
    }
    const parameters = new Map<string, Float32Array>()
    const optimizerState = new Map<string, Array<Float32Array>>()
    const names = stateNamesOf(manifest.optimizer)
    for (const p of manifest.parameters) {
      const keys = [p.name, ...names.map((s) => stateKey(s, p.name))]
      const found = keys.map((k) => tensors.get(k))
      const missing = keys.filter((_, i) => found[i] === undefined || found[i]!.shape.join() !== p.shape.join())
      if (missing.length > 0) return yield* fail(file, `missing or misshapen tensors: ${missing.join(", ")}`)
      parameters.set(p.name, found[0]!.data)
      optimizerState.set(
        p.name,
        found.slice(1).map((e) => e!.data)
      )
    }
    return { manifest, parameters, optimizerState }
  })
