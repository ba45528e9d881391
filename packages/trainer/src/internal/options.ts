import { Effect, ParseResult, Schema } from "effect"
import { TrainerConfigError } from "../TrainerError.js"

/**
 * Decodes a constructor's options with `schema`, refusing unknown keys, or fails with
 * a `TrainerConfigError` naming the first bad option. Only checks: callers go on with
 * the options they were given (models, devices and functions are kept by reference).
 */
export const checkOptions = <A, I>(
  what: string,
  schema: Schema.Schema<A, I>,
  options: unknown
): Effect.Effect<void, TrainerConfigError> =>
  Schema.decodeUnknown(schema, { onExcessProperty: "error", errors: "first" })(options ?? {}).pipe(
    Effect.asVoid,
    Effect.mapError((error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const option = issue?.path.map(String).join(".") || "options"
      return new TrainerConfigError({
        option,
        message: `${what}: ${issue?._tag === "Unexpected" ? `unknown option "${option}"` : `option "${option}" ${issue?.message ?? error.message}`}`
      })
    })
  )

const optional = <A, I>(schema: Schema.Schema<A, I>) => Schema.optional(schema)

/** A value checked elsewhere (a model, a device, a function): only present. */
const opaque = Schema.Unknown

/** `WebGpu.Options`. */
export const WebGpuOptions = Schema.Struct({
  backend: optional(Schema.Literal("auto", "default", "vulkan", "metal", "d3d12", "opengles", "opengl")),
  featureLevel: optional(Schema.Literal("core", "compatibility")),
  powerPreference: optional(Schema.Literal("low-power", "high-performance")),
  dawnOptions: optional(Schema.Array(Schema.String)),
  adapters: optional(Schema.Array(Schema.String))
})

/** `Devices.Options` (the count's range is checked by `Devices.make` with its own message). */
export const DevicesOptions = Schema.Struct({
  count: Schema.Number,
  kind: optional(Schema.Literal("auto", "webgpu", "cpu")),
  webgpu: optional(WebGpuOptions),
  devices: optional(Schema.Array(Schema.String))
})

/** `Trainer.Options` (ranges are checked by `validate` with their own messages). */
export const TrainerOptions = Schema.Struct({
  model: opaque,
  data: opaque,
  devices: Schema.Array(opaque),
  batchSize: Schema.Number,
  epochs: Schema.Number,
  optimizer: opaque,
  seed: Schema.Number,
  checkpoint: optional(Schema.Struct({ directory: Schema.String, every: optional(Schema.Number) })),
  resume: optional(Schema.Union(Schema.String, Schema.Boolean)),
  checkReplicas: optional(Schema.Boolean),
  beforeStep: optional(opaque)
})
