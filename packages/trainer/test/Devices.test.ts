import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Devices } from "@org/trainer"

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
})
