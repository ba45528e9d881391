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
import { checkOptions, DevicesOptions } from "./internal/options.js"
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
  /** Which physical adapter each opened WebGPU device got (empty for CPU devices and for `discover`). */
  readonly placement: ReadonlyArray<{ readonly device: string; readonly adapter: string }>
  /** Whether several devices run on one physical adapter (then they share its compute: no speed-up from it). */
  readonly shared: boolean
  /**
   * One line for logs: `"2 x webgpu on 2 adapters: webgpu:0 on A, webgpu:1 on B (vulkan, core)"`, a plain
   * `"... share one adapter ..."` when they do, or why the CPU backend was used.
   */
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
  /**
   * The physical adapter of each WebGPU device by name (or part of it), one per device; see
   * `WebGpu.adapters`. Without it devices go to distinct adapters while there are enough.
   */
  readonly devices?: ReadonlyArray<string>
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
          placement: [],
          shared: false,
          message: `webgpu: ${webgpu.adapters.length} adapter${webgpu.adapters.length === 1 ? "" : "s"} (${webgpu.adapters.join("; ") || webgpu.adapter.device}) (${webgpu.adapter.backend}, ${webgpu.adapter.featureLevel})`
        }
      : {
          kind: "cpu" as const,
          webgpu,
          placement: [],
          shared: false,
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
    yield* checkOptions("Devices", DevicesOptions, options)
    if (!Number.isInteger(options.count) || options.count < 1) {
      return yield* new TrainerConfigError({
        option: "count",
        message: `device count must be a positive integer, got ${options.count}`
      })
    }
    if (options.devices !== undefined && options.devices.length !== options.count) {
      return yield* new TrainerConfigError({
        option: "devices",
        message: `${options.count} devices but ${options.devices.length} adapters named (${options.devices.join(", ")})`
      })
    }
    const kind = options.kind ?? "auto"
    if (kind === "cpu") {
      const webgpu: WebGpu.Discovery = { adapter: undefined, adapters: [], attempts: [] }
      return {
        devices: yield* Cpu.makeMany(options.count),
        discovery: {
          kind: "cpu",
          webgpu,
          placement: [],
          shared: false,
          message: `${options.count} x cpu (requested), a worker thread each`
        }
      }
    }
    const discovery = yield* discover(options.webgpu === undefined ? {} : { webgpu: options.webgpu })
    if (discovery.kind === "cpu" && kind === "auto") {
      yield* Effect.logWarning(discovery.message)
      return { devices: yield* Cpu.makeMany(options.count), discovery }
    }
    const devices = yield* WebGpu.makeMany(options.count, {
      ...options.webgpu,
      ...(discovery.webgpu.adapter ? { backend: discovery.webgpu.adapter.backend } : {}),
      ...(options.devices ? { adapters: options.devices } : {})
    })
    const placement = devices.map((d) => ({ device: d.id, adapter: d.adapter ?? d.description }))
    const distinct = [...new Set(placement.map((p) => p.adapter))]
    const shared = distinct.length < placement.length
    const adapter = discovery.webgpu.adapter!
    const where = `(${adapter.backend}, ${adapter.featureLevel})`
    const message = shared
      ? `${options.count} x webgpu share ${distinct.length === 1 ? "one adapter" : `${distinct.length} adapters`}: ${distinct
          .map(
            (a) =>
              `${placement
                .filter((p) => p.adapter === a)
                .map((p) => p.device)
                .join(", ")} on ${a}`
          )
          .join("; ")} ${where}: they share its compute, so devices there add no throughput`
      : `${options.count} x webgpu on ${distinct.length} adapter${distinct.length === 1 ? "" : "s"}: ${placement
          .map((p) => `${p.device} on ${p.adapter}`)
          .join(", ")} ${where}`
    return { devices, discovery: { ...discovery, placement, shared, message } }
  })

/**
 * The `Devices` service as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Devices, BackendError | TrainerConfigError> =>
  Layer.scoped(Devices, make(options))
