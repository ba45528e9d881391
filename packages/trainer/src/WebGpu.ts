/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend on Dawn (the `webgpu` package). The adapter backend is an
 * option: Dawn's default (Vulkan, Metal or D3D12) on machines with a GPU, OpenGL ES
 * in compatibility mode on Mesa's CPU renderer (llvmpipe) where there is none.
 * Each device comes from its own adapter object (Dawn hands out one device per
 * adapter); devices are placed on distinct physical adapters when there are several,
 * and each device says which one it got.
 *
 * @since 0.1.0
 */
import { Effect, type Scope } from "effect"
import { create } from "webgpu"
import type { Backend } from "./Backend.js"
import { makeWebGpu } from "./internal/webgpu.js"
import { BackendError } from "./TrainerError.js"
import { messageOf } from "./internal/common.js"

/**
 * Which Dawn backend to ask for. `"auto"` tries Dawn's default first and OpenGL ES
 * (compatibility mode) second; `"default"` lets Dawn choose (Vulkan on Linux).
 *
 * @since 0.1.0
 * @category models
 */
export type AdapterBackend = "auto" | "default" | "vulkan" | "metal" | "d3d12" | "opengles" | "opengl"

/**
 * How to open WebGPU devices.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Defaults to `"auto"`. */
  readonly backend?: AdapterBackend
  /** Defaults to `"compatibility"` on OpenGL (ES), `"core"` otherwise. */
  readonly featureLevel?: "core" | "compatibility"
  readonly powerPreference?: "low-power" | "high-performance"
  /** Extra Dawn options passed to `create` (`"enable-dawn-features=..."`). */
  readonly dawnOptions?: ReadonlyArray<string>
  /**
   * The physical adapter of each device, by name (a part of the name is enough, as in Dawn's `adapter=` flag;
   * `adapters()` lists them). Without it, devices go to distinct adapters in the order Dawn lists them, and share
   * adapters only when there are more devices than adapters.
   */
  readonly adapters?: ReadonlyArray<string>
}

/**
 * What an adapter said about itself.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdapterInfo {
  readonly backend: Exclude<AdapterBackend, "auto">
  readonly featureLevel: "core" | "compatibility"
  readonly vendor: string
  readonly architecture: string
  readonly device: string
  readonly description: string
  /** The compute limits the adapter reports (the most a device on it can be asked for). */
  readonly limits: Readonly<Record<(typeof computeLimits)[number], number>>
}

const computeLimits = [
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupsPerDimension",
  "maxComputeWorkgroupStorageSize",
  "maxStorageBufferBindingSize",
  "maxBufferSize"
] as const

/**
 * The result of looking for an adapter: the first backend that gave one, and
 * every attempt with its outcome.
 *
 * @since 0.1.0
 * @category models
 */
export interface Discovery {
  readonly adapter: AdapterInfo | undefined
  /** The names of every physical adapter on the backend that was found (as Dawn lists them). */
  readonly adapters: ReadonlyArray<string>
  readonly attempts: ReadonlyArray<{ readonly backend: string; readonly found: boolean; readonly message: string }>
}

const candidates = (backend: AdapterBackend): ReadonlyArray<Exclude<AdapterBackend, "auto">> =>
  backend === "auto" ? ["default", "opengles"] : [backend]

const levelFor = (backend: string, options: Options) =>
  options.featureLevel ?? (backend === "opengles" || backend === "opengl" ? "compatibility" : "core")

const open = async (backend: Exclude<AdapterBackend, "auto">, options: Options, adapter?: string) => {
  if (backend === "opengles" || backend === "opengl") process.env.EGL_PLATFORM ??= "surfaceless"
  const gpu = create([
    ...(backend === "default" ? [] : [`backend=${backend}`]),
    ...(adapter === undefined ? [] : [`adapter=${adapter}`]),
    ...(options.dawnOptions ?? [])
  ])
  const featureLevel = levelFor(backend, options)
  const request = () =>
    gpu.requestAdapter({
      featureLevel,
      ...(options.powerPreference ? { powerPreference: options.powerPreference } : {})
    } as GPURequestAdapterOptions)
  return { gpu, featureLevel, request }
}

const describe = (
  backend: Exclude<AdapterBackend, "auto">,
  featureLevel: "core" | "compatibility",
  adapter: GPUAdapter
): AdapterInfo => {
  const info = adapter.info
  return {
    backend,
    featureLevel,
    vendor: info?.vendor ?? "",
    architecture: info?.architecture ?? "",
    device: info?.device ?? "",
    description: info?.description ?? "",
    limits: Object.fromEntries(computeLimits.map((k) => [k, Number(adapter.limits[k])])) as AdapterInfo["limits"]
  }
}

/** A name no adapter has: Dawn then refuses the request and lists the adapters it has. */
const NO_ADAPTER = "org-trainer: list the adapters"

const listAdapters = async (backend: Exclude<AdapterBackend, "auto">, options: Options): Promise<Array<string>> => {
  const { request } = await open(backend, options, NO_ADAPTER)
  try {
    await request()
    return []
  } catch (error) {
    const text = messageOf(error)
    return [...text.matchAll(/^ \* backend: '[^']*', name: '(.*)'$/gm)].map((m) => m[1]!)
  }
}

/**
 * The physical adapters on a backend (by name, in Dawn's order); empty when it has none.
 *
 * @since 0.2.0
 * @category discovery
 */
export const adapters = (
  backend: Exclude<AdapterBackend, "auto">,
  options: Options = {}
): Effect.Effect<ReadonlyArray<string>> => Effect.promise(() => listAdapters(backend, options).catch(() => []))

/**
 * Looks for a WebGPU adapter without opening a device.
 *
 * @since 0.1.0
 * @category discovery
 */
export const discover = (options: Options = {}): Effect.Effect<Discovery> =>
  Effect.promise(async () => {
    const attempts: Array<{ backend: string; found: boolean; message: string }> = []
    for (const backend of candidates(options.backend ?? "auto")) {
      try {
        const { featureLevel, request } = await open(backend, options)
        const adapter = await request()
        if (adapter) {
          const info = describe(backend, featureLevel, adapter)
          attempts.push({ backend, found: true, message: `${info.device || info.description} (${featureLevel})` })
          return { adapter: info, adapters: await listAdapters(backend, options).catch(() => []), attempts }
        }
        attempts.push({ backend, found: false, message: "no adapter" })
      } catch (error) {
        attempts.push({ backend, found: false, message: messageOf(error) })
      }
    }
    return { adapter: undefined, adapters: [], attempts }
  })

/**
 * Opens `count` WebGPU devices (one adapter each) on the first backend that has an
 * adapter. They are destroyed when the scope closes. Fails with `BackendError` when
 * no adapter exists.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMany = (
  count: number,
  options: Options = {}
): Effect.Effect<ReadonlyArray<Backend>, BackendError, Scope.Scope> =>
  Effect.gen(function* () {
    const found = yield* discover(options)
    if (!found.adapter) {
      return yield* new BackendError({
        device: "webgpu",
        operation: "requestAdapter",
        message: `no WebGPU adapter: ${found.attempts.map((a) => `${a.backend}: ${a.message}`).join("; ")}`
      })
    }
    const { backend, featureLevel } = found.adapter
    const names = found.adapters
    const wanted = options.adapters
    if (wanted !== undefined && wanted.length !== count) {
      return yield* new BackendError({
        device: "webgpu",
        operation: "requestAdapter",
        message: `${count} devices but ${wanted.length} adapters named (${wanted.join(", ")})`
      })
    }
    const placement: Array<string | undefined> = []
    for (let index = 0; index < count; index++) {
      const name = wanted?.[index]
      if (name === undefined) {
        placement.push(names.length > 0 ? names[index % names.length] : undefined)
        continue
      }
      const match = names.find((n) => n.includes(name))
      if (match === undefined) {
        return yield* new BackendError({
          device: `webgpu:${index}`,
          operation: "requestAdapter",
          message: `no ${backend} adapter named "${name}" for webgpu:${index}; adapters: ${names.map((n) => `"${n}"`).join(", ") || "none"}`
        })
      }
      placement.push(match)
    }
    const devices: Array<Backend> = []
    for (let index = 0; index < count; index++) {
      const adapterName = placement[index]
      const device = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const { gpu, request } = await open(backend, options, adapterName)
            const adapter = await request()
            if (!adapter) throw new Error(`adapter ${index} was not granted`)
            const limits = adapter.limits
            const gpuDevice = await adapter.requestDevice({
              requiredLimits: {
                maxComputeInvocationsPerWorkgroup: Math.min(256, limits.maxComputeInvocationsPerWorkgroup),
                maxComputeWorkgroupSizeX: Math.min(256, limits.maxComputeWorkgroupSizeX),
                maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
                maxBufferSize: limits.maxBufferSize
              }
            })
            const info = describe(backend, featureLevel, adapter)
            // the instance from `create` must outlive its devices: collecting it tears Dawn down under them
            const physical = adapterName ?? (info.device || info.description || "adapter")
            return makeWebGpu(
              `webgpu:${index}`,
              gpuDevice,
              `webgpu:${index} on ${physical} (${backend}, ${featureLevel})`,
              gpu,
              physical
            )
          },
          catch: (cause) =>
            new BackendError({
              device: `webgpu:${index}`,
              operation: "requestDevice",
              message: `could not open webgpu:${index}: ${messageOf(cause)}`,
              cause
            })
        }),
        (d) => Effect.sync(() => d.lost() === undefined && d.destroy())
      )
      devices.push(device)
    }
    return devices
  })

/**
 * Opens one WebGPU device.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Backend, BackendError, Scope.Scope> =>
  Effect.map(makeMany(1, options), (d) => d[0]!)
