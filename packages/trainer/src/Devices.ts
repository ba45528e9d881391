/**
 * Device discovery and acquisition: a job says how many devices it wants and which
 * kind; `"auto"` takes WebGPU devices where an adapter exists and falls back to
 * CPU devices (saying so) where none does.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { Backend } from "./Backend.js"
import * as Cpu from "./Cpu.js"
import { TrainerConfigError, type BackendError } from "./TrainerError.js"
import * as WebGpu from "./WebGpu.js"

/**
 * What discovery found and what was chosen.
 *
 * @since 0.1.0
 * @category models
 */
export interface Discovery {
  readonly kind: "webgpu" | "cpu"
  readonly webgpu: WebGpu.Discovery
  /** One line for logs: `"2 x webgpu (llvmpipe, opengles)"` or why the CPU backend was used. */
  readonly message: string
}

/**
 * How many devices of which kind.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly count: number
  /** Defaults to `"auto"`. */
  readonly kind?: "auto" | "webgpu" | "cpu"
  readonly webgpu?: WebGpu.Options
}

/**
 * The shape of the `Devices` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly devices: ReadonlyArray<Backend>
  readonly discovery: Discovery
}

/**
 * The devices a job trains on.
 *
 * @since 0.1.0
 * @category tags
 */
export class Devices extends Context.Tag("@org/trainer/Devices")<Devices, Service>() {}

/**
 * Looks for WebGPU adapters and reports what it found and what `"auto"` would use.
 *
 * @since 0.1.0
 * @category discovery
 */
export const discover = (options: { readonly webgpu?: WebGpu.Options } = {}): Effect.Effect<Discovery> =>
  Effect.map(WebGpu.discover(options.webgpu), (webgpu) =>
    webgpu.adapter
      ? {
          kind: "webgpu" as const,
          webgpu,
          message: `webgpu: ${webgpu.adapter.device || webgpu.adapter.description} (${webgpu.adapter.backend}, ${webgpu.adapter.featureLevel})`
        }
      : {
          kind: "cpu" as const,
          webgpu,
          message: `no WebGPU adapter (${webgpu.attempts.map((a) => `${a.backend}: ${a.message}`).join("; ")}): using the CPU backend`
        }
  )

/**
 * Opens the devices under the current scope (WebGPU devices are destroyed when it
 * closes). With `kind: "auto"` and no adapter, CPU devices are used and a warning
 * is logged.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Service, BackendError | TrainerConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    if (!Number.isInteger(options.count) || options.count < 1) {
      return yield* new TrainerConfigError({
        option: "count",
        message: `device count must be a positive integer, got ${options.count}`
      })
    }
    const kind = options.kind ?? "auto"
    if (kind === "cpu") {
      const webgpu: WebGpu.Discovery = { adapter: undefined, attempts: [] }
      return {
        devices: yield* Cpu.makeMany(options.count),
        discovery: { kind: "cpu", webgpu, message: `${options.count} x cpu (requested)` }
      }
    }
    const discovery = yield* discover(options.webgpu === undefined ? {} : { webgpu: options.webgpu })
    if (discovery.kind === "cpu" && kind === "auto") {
      yield* Effect.logWarning(discovery.message)
      return { devices: yield* Cpu.makeMany(options.count), discovery }
    }
    const devices = yield* WebGpu.makeMany(options.count, {
      ...options.webgpu,
      ...(discovery.webgpu.adapter ? { backend: discovery.webgpu.adapter.backend } : {})
    })
    return { devices, discovery: { ...discovery, message: `${options.count} x ${discovery.message}` } }
  })

/**
 * The `Devices` service as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Devices, BackendError | TrainerConfigError> =>
  Layer.scoped(Devices, make(options))
