import { afterAll, describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Backend, Cpu, Devices, WebGpu } from "@org/trainer"
import { randoms, relativeError, webgpuOptions, webgpuSkip } from "./support.js"

type Case = (b: Backend.Backend) => Promise<ReadonlyArray<Float32Array>>

const worst = new Map<string, number>()

/**
 * The largest normwise relative error each kernel may show against the CPU reference on these inputs: twice the
 * worst error measured on Dawn's OpenGL ES backend over llvmpipe (Mesa 22.3.6), so a kernel that gets 3x less
 * precise fails. Zero where the kernel is one correctly rounded operation (or a copy) per output and matched exactly.
 * Measured: matmul 2.2e-7, sumRows 7.6e-7, sum 4.6e-7, gelu 8.1e-7, sigmoid 3.1e-7, tanh 1.4e-7, softmax
 * cross-entropy 9.7e-8, binary cross-entropy 5.5e-8, mean squared error 8.8e-8, embedding 7.8e-8, rowDot 1.1e-7,
 * sgd 9.6e-8, adam 1.4e-7 (1.3e-5 before `1 - beta` moved to the host in double precision).
 */
const tolerance: Readonly<Record<string, number>> = {
  matmul: 4.5e-7,
  addBias: 0,
  sumRows: 1.6e-6,
  broadcastRows: 0,
  sum: 1e-6,
  "activation relu": 0,
  "activation gelu": 1.7e-6,
  "activation sigmoid": 6.5e-7,
  "activation tanh": 3e-7,
  softmaxCrossEntropy: 2e-7,
  binaryCrossEntropy: 1.2e-7,
  meanSquaredError: 1.8e-7,
  embedding: 1.6e-7,
  rowDot: 2.4e-7,
  scaleRows: 0,
  sgd: 2e-7,
  adam: 3e-7
}

/** Runs `f` on the CPU reference and on `gpu`; every output must agree within the kernel's tolerance. */
const compare = (name: string, gpu: Backend.Backend, f: Case) =>
  Effect.promise(async () => {
    const cpu = Cpu.unsafeMake()
    const expected = await f(cpu)
    const actual = await f(gpu)
    expect(actual.length).toBe(expected.length)
    let max = 0
    expected.forEach((e, i) => {
      expect(actual[i]!.length, `${name} output ${i} length`).toBe(e.length)
      const err = relativeError(actual[i]!, e)
      max = Math.max(max, err)
      expect(err, `${name} output ${i}`).toBeLessThanOrEqual(tolerance[name]!)
    })
    // outputs must not be trivially zero (a kernel that wrote nothing would match zeros)
    expect(expected.some((e) => e.some((x) => x !== 0))).toBe(true)
    worst.set(name, Math.max(worst.get(name) ?? 0, max))
  })

const up = (b: Backend.Backend, shape: ReadonlyArray<number>, seed: number, lo = -1, hi = 1) =>
  b.upload(shape, randoms(seed, Backend.sizeOf(shape), lo, hi))

const ints = (n: number, max: number, seed: number) => randoms(seed, n, 0, max).map((x) => Math.floor(x))

// sizes that are and are not multiples of the 64x64 tile and the 16-wide K step
const matmulSizes: ReadonlyArray<readonly [number, number, number]> = [
  [1, 1, 1],
  [37, 19, 45],
  [64, 16, 64],
  [65, 130, 33],
  [3, 200, 70]
]

const activations = Backend.activations

/** The plain i-k-j loop into a Float32Array (every multiply-add rounded to float32, k in order): the CPU reference. */
const plainMatmul = (a: Float32Array, b: Float32Array, M: number, K: number, N: number, tA: boolean, tB: boolean) => {
  const C = new Float32Array(M * N)
  for (let i = 0; i < M; i++) {
    for (let k = 0; k < K; k++) {
      const aik = tA ? a[k * M + i]! : a[i * K + k]!
      for (let j = 0; j < N; j++) C[i * N + j]! += aik * (tB ? b[j * K + k]! : b[k * N + j]!)
    }
  }
  return C
}

describe("CPU kernels", () => {
  it("matmul is cache-blocked and equals the plain loop bit for bit, with every transpose", async () => {
    const cpu = Cpu.unsafeMake()
    // more than one block of k (256) and of rows (64), edge tiles of every width, zeros (ReLU outputs) in A
    const sizes = [...matmulSizes, [130, 600, 70], [70, 513, 9], [256, 257, 258], [5, 1000, 1]] as const
    for (const [M, K, N] of sizes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = randoms(M * 7 + K, M * K).map((x) => (x < -0.3 ? 0 : x))
          const b = randoms(N * 13 + K, K * N)
          const A = cpu.upload(transA ? [K, M] : [M, K], a)
          const B = cpu.upload(transB ? [N, K] : [K, N], b)
          const C = await cpu.read(cpu.matmul(A, B, { transA, transB }))
          expect(C, `${M}x${K}x${N} transA ${transA} transB ${transB}`).toEqual(
            plainMatmul(a, b, M, K, N, transA, transB)
          )
        }
      }
    }
  })
})

if (webgpuSkip) {
  describe.skip(`WebGPU kernels against the CPU reference (${webgpuSkip})`, () => {
    it("skipped", () => undefined)
  })
} else {
  layer(Devices.layer({ count: 1, kind: "webgpu", webgpu: webgpuOptions }))(
    "WebGPU kernels against the CPU reference",
    (it) => {
      const gpu = Effect.map(Devices.Devices, (d) => d.devices[0]!)

      it.effect("discovery reports the adapter it used", () =>
        Effect.gen(function* () {
          const { devices, discovery } = yield* Devices.Devices
          expect(discovery.kind).toBe("webgpu")
          expect(devices[0]!.kind).toBe("webgpu")
          expect(discovery.message).toContain("webgpu")
        })
      )

      it.effect("matmul with every transpose, tile and non-tile sizes", () =>
        Effect.gen(function* () {
          const g = yield* gpu
          for (const [M, K, N] of matmulSizes) {
            for (const transA of [false, true]) {
              for (const transB of [false, true]) {
                yield* compare(`matmul`, g, async (b) => {
                  const a = up(b, transA ? [K, M] : [M, K], M * 7 + K)
                  const c = up(b, transB ? [N, K] : [K, N], N * 13 + K)
                  return [await b.read(b.matmul(a, c, { transA, transB }))]
                })
              }
            }
          }
        })
      )

      it.effect("bias add, column sums (its backward), broadcast and sum", () =>
        Effect.gen(function* () {
          const g = yield* gpu
          for (const [M, N] of [
            [1, 1],
            [37, 45],
            [300, 3]
          ] as const) {
            yield* compare("addBias", g, async (b) => [await b.read(b.addBias(up(b, [M, N], 1), up(b, [N], 2)))])
            yield* compare("sumRows", g, async (b) => [await b.read(b.sumRows(up(b, [M, N], 3)))])
            yield* compare("broadcastRows", g, async (b) => [await b.read(b.broadcastRows(up(b, [N], 4), M))])
            yield* compare("sum", g, async (b) => [await b.read(b.sum(up(b, [M, N], 5), 0.5))])
          }
        })
      )

      it.effect("activations and their backward passes", () =>
        Effect.gen(function* () {
          const g = yield* gpu
          for (const kind of activations) {
            yield* compare(`activation ${kind}`, g, async (b) => {
              const x = up(b, [33, 31], 6, -6, 6)
              return [await b.read(b.activation(kind, x)), await b.read(b.activationGrad(kind, x, up(b, [33, 31], 7)))]
            })
          }
        })
      )

      it.effect("losses with their gradients", () =>
        Effect.gen(function* () {
          const g = yield* gpu
          yield* compare("softmaxCrossEntropy", g, async (b) => {
            const { grad, loss } = b.softmaxCrossEntropy(up(b, [13, 7], 8, -4, 4), b.upload([13], ints(13, 7, 9)))
            return [await b.read(loss), await b.read(grad)]
          })
          yield* compare("binaryCrossEntropy", g, async (b) => {
            const { grad, loss } = b.binaryCrossEntropy(up(b, [29, 1], 10, -8, 8), up(b, [29, 1], 11, 0, 1))
            return [await b.read(loss), await b.read(grad)]
          })
          yield* compare("meanSquaredError", g, async (b) => {
            const { grad, loss } = b.meanSquaredError(up(b, [11, 3], 12), up(b, [11, 3], 13))
            return [await b.read(loss), await b.read(grad)]
          })
        })
      )

      it.effect("embedding lookup and its sparse gradient", () =>
        Effect.gen(function* () {
          const g = yield* gpu
          const ids = Int32Array.from(ints(17, 10, 14))
          yield* compare("embedding", g, async (b) => {
            const table = up(b, [10, 5], 15)
            const out = b.embedding(table, b.upload([17], Float32Array.from(ids)))
            const sparse = b.embeddingGrad(up(b, [17, 5], 16), ids)
            expect([...sparse.indices]).toEqual([...new Set(ids)].sort((x, y) => x - y))
            return [await b.read(out), await b.read(sparse.values), Float32Array.from(sparse.indices)]
          })
        })
      )

      it.effect("row dot product and row scaling (its backward)", () =>
        Effect.gen(function* () {
          const g = yield* gpu
          yield* compare("rowDot", g, async (b) => [await b.read(b.rowDot(up(b, [19, 9], 17), up(b, [19, 9], 18)))])
          yield* compare("scaleRows", g, async (b) => [await b.read(b.scaleRows(up(b, [19, 9], 19), up(b, [19], 20)))])
        })
      )

      it.effect("SGD with momentum and weight decay, Adam, over three updates", () =>
        Effect.gen(function* () {
          const g = yield* gpu
          yield* compare("sgd", g, async (b) => {
            const p = up(b, [301], 21)
            const v = b.zeros([301])
            for (let s = 1; s <= 3; s++)
              b.sgd(p, up(b, [301], 21 + s), v, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 })
            return [await b.read(p), await b.read(v)]
          })
          yield* compare("adam", g, async (b) => {
            const p = up(b, [301], 31)
            const m = b.zeros([301])
            const v = b.zeros([301])
            for (let s = 1; s <= 3; s++) {
              b.adam(p, up(b, [301], 31 + s), m, v, {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                weightDecay: 0.01,
                step: s
              })
            }
            return [await b.read(p), await b.read(m), await b.read(v)]
          })
        })
      )

      it.scoped("a destroyed device fails with DeviceLostError naming it", () =>
        Effect.gen(function* () {
          const device = yield* WebGpu.make(webgpuOptions)
          const x = device.upload([2], Float32Array.of(1, 2))
          expect(yield* Effect.promise(() => device.read(x))).toEqual(Float32Array.of(1, 2))
          device.destroy()
          expect(device.lost()).toBeDefined()
          const error = yield* Effect.flip(Effect.tryPromise({ try: () => device.read(x), catch: (e) => e as any }))
          expect(error).toMatchObject({ _tag: "DeviceLostError", device: device.id })
          expect(() => device.upload([1], Float32Array.of(1))).toThrow(/lost/)
        })
      )
    }
  )
}

afterAll(() => {
  if (worst.size > 0) {
    const rows = [...worst.entries()].map(([k, v]) => `${k}: ${v.toExponential(2)}`)
    console.log(`[trainer] max relative error WebGPU vs CPU: ${rows.join(", ")}`)
  }
})
