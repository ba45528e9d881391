/**
 * Shared test helpers: which backends to run on, seeded inputs, relative errors.
 * WebGPU tests run whenever an adapter exists; with none they fail when `CI` is set
 * (Mesa is installed there) and are skipped with a message otherwise.
 */
import { Effect } from "effect"
import { Random, WebGpu } from "@org/trainer"

const requested = (process.env.ORG_TRAINER_WEBGPU_BACKEND ?? "auto") as WebGpu.AdapterBackend

export const webgpuOptions: WebGpu.Options = { backend: requested }

export const webgpuDiscovery = await Effect.runPromise(WebGpu.discover(webgpuOptions))

/** Why WebGPU tests are skipped, or undefined when they run. Throws under CI when no adapter exists. */
export const webgpuSkip: string | undefined = (() => {
  if (webgpuDiscovery.adapter) return undefined
  const why = `no WebGPU adapter (${webgpuDiscovery.attempts.map((a) => `${a.backend}: ${a.message}`).join("; ")})`
  if (process.env.CI)
    throw new Error(
      `[trainer] ${why}: WebGPU tests must run in CI (install Mesa: libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri)`
    )
  console.warn(`[trainer] SKIPPING WebGPU tests: ${why}`)
  return why
})()

export const randoms = (seed: number, n: number, lo = -1, hi = 1): Float32Array =>
  Random.uniform(Random.make(seed), n, lo, hi)

/** max |a - b| / max |b| (normwise relative error). */
export const relativeError = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Infinity
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!))
    den = Math.max(den, Math.abs(b[i]!))
  }
  if (Number.isNaN(num)) return Infinity
  return den === 0 ? num : num / den
}
