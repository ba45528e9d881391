import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Devices, WebGpu } from "@org/trainer"
import { webgpuDiscovery, webgpuOptions, webgpuSkip } from "./support.js"

// an adapter backend that does not exist on this platform stands in for a machine without any adapter
const absent = { backend: process.platform === "win32" ? "metal" : "d3d12" } as const

describe("Devices", () => {
  it.scoped("falls back to CPU devices where no WebGPU adapter exists, and says so", () =>
    Effect.gen(function* () {
      const { devices, discovery } = yield* Devices.make({ count: 2, webgpu: absent })
      expect(discovery.kind).toBe("cpu")
      expect(discovery.message).toContain("using the CPU backend")
      expect(discovery.webgpu.attempts).toEqual([expect.objectContaining({ backend: absent.backend, found: false })])
      expect(devices.map((d) => d.id)).toEqual(["cpu:0", "cpu:1"])
    })
  )

  it.scoped("asking for WebGPU where there is no adapter fails with a BackendError", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Devices.make({ count: 1, kind: "webgpu", webgpu: absent }))
      expect(error).toMatchObject({ _tag: "BackendError", operation: "requestAdapter" })
    })
  )

  it.scoped("refuses a device count below one", () =>
    Effect.gen(function* () {
      expect(yield* Effect.flip(Devices.make({ count: 0 }))).toMatchObject({
        _tag: "TrainerConfigError",
        option: "count"
      })
    })
  )

  it.scoped("refuses unknown options, nested ones included, naming them", () =>
    Effect.gen(function* () {
      const typo = yield* Effect.flip(Devices.make({ count: 1, knd: "cpu" } as unknown as Devices.Options))
      expect(typo).toMatchObject({ _tag: "TrainerConfigError", option: "knd" })
      expect(typo.message).toContain('unknown option "knd"')
      expect(
        yield* Effect.flip(Devices.make({ count: 1, webgpu: { backnd: "vulkan" } } as unknown as Devices.Options))
      ).toMatchObject({ _tag: "TrainerConfigError", option: "webgpu.backnd" })
      expect(yield* Effect.flip(Devices.make({ count: 1, kind: "tpu" } as unknown as Devices.Options))).toMatchObject({
        _tag: "TrainerConfigError",
        option: "kind"
      })
    })
  )
})

const placement = webgpuSkip ? describe.skip : describe
placement(`Device placement on WebGPU adapters${webgpuSkip ? ` (${webgpuSkip})` : ""}`, () => {
  const backend = webgpuDiscovery.adapter?.backend ?? "opengles"

  it.scoped("enumerates the adapters; devices beyond the adapters share one and discovery says so", () =>
    Effect.gen(function* () {
      const names = yield* WebGpu.adapters(backend, webgpuOptions)
      expect(names.length).toBeGreaterThan(0)
      const { devices, discovery } = yield* Devices.make({
        count: names.length + 1,
        kind: "webgpu",
        webgpu: webgpuOptions
      })
      console.log(`[trainer] adapters: ${names.join("; ")}; ${discovery.message}`)
      expect(discovery.webgpu.adapters).toEqual(names)
      // one device per adapter in Dawn's order, then around again
      expect(discovery.placement).toEqual(devices.map((d, i) => ({ device: d.id, adapter: names[i % names.length] })))
      expect(devices.map((d) => d.adapter)).toEqual(discovery.placement.map((p) => p.adapter))
      expect(discovery.shared).toBe(true)
      expect(discovery.message).toContain(names.length === 1 ? "share one adapter" : "share")
    })
  )

  it.scoped("as many devices as adapters land on distinct adapters", () =>
    Effect.gen(function* () {
      const names = yield* WebGpu.adapters(backend, webgpuOptions)
      const { discovery } = yield* Devices.make({ count: names.length, kind: "webgpu", webgpu: webgpuOptions })
      expect(new Set(discovery.placement.map((p) => p.adapter)).size).toBe(names.length)
      expect(discovery.shared).toBe(false)
      expect(discovery.message).toContain(`on ${names.length} adapter`)
    })
  )

  it.scoped("the devices option names each device's adapter; an unknown name fails naming it and the adapters", () =>
    Effect.gen(function* () {
      const names = yield* WebGpu.adapters(backend, webgpuOptions)
      const part = names[0]!.slice(0, 5)
      const { discovery } = yield* Devices.make({
        count: 2,
        kind: "webgpu",
        webgpu: webgpuOptions,
        devices: [part, names[0]!]
      })
      expect(discovery.placement.map((p) => p.adapter)).toEqual([names[0], names[0]])
      const error = yield* Effect.flip(
        Devices.make({ count: 1, kind: "webgpu", webgpu: webgpuOptions, devices: ["no such gpu"] })
      )
      expect(error).toMatchObject({ _tag: "BackendError", device: "webgpu:0" })
      expect(error.message).toContain(`"no such gpu"`)
      expect(error.message).toContain(names[0]!)
      expect(
        yield* Effect.flip(Devices.make({ count: 2, kind: "webgpu", webgpu: webgpuOptions, devices: [part] }))
      ).toMatchObject({ _tag: "TrainerConfigError", option: "devices" })
    })
  )
})
