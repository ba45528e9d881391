import type { Activation, AdamStep, Backend, LossResult, SgdStep, SparseGrad, Tensor } from "../Backend.js"
import { sizeOf } from "../Backend.js"
import { activate, activateGrad, cols, groupIds, require, requireAlive, rows, shapeText } from "./common.js"

class CpuTensor implements Tensor {
  readonly size: number
  constructor(
    readonly device: string,
    readonly shape: ReadonlyArray<number>,
    public data: Float32Array
  ) {
    this.size = data.length
  }
}

/** The plain TypeScript float32 backend. */
export const makeCpu = (id: string): Backend => {
  let lost: string | undefined
  const t = (x: Tensor, op: string): CpuTensor => {
    requireAlive(id, lost)
    require(x instanceof CpuTensor && x.device === id, id, op, () => `tensor belongs to ${x.device}`)
    const c = x as CpuTensor
    require(c.data.length > 0 || c.size === 0, id, op, () => "tensor was disposed")
    return c
  }
  // the packed operands of matmul, reused from call to call (each device, and so each worker thread, has its own)
  const scratch: Scratch = { a: new Float32Array(0), b: new Float32Array(0), tile: new Float64Array(16) }
  // the storage of disposed tensors, by length, for the next tensor of that length: a training step allocates the
  // same tensors every time, so after the first step it allocates nothing (no garbage, no page faults, no
  // collector threads competing with the device threads for the cores)
  const pool = new Map<number, Array<Float32Array>>()
  let pooled = 0
  const alloc = (n: number): Float32Array => {
    const x = pool.get(n)?.pop()
    if (x === undefined) return new Float32Array(n)
    pooled -= n
    return x.fill(0)
  }
  const out = (shape: ReadonlyArray<number>, data?: Float32Array) =>
    new CpuTensor(id, shape, data ?? alloc(sizeOf(shape)))

  const matmul: Backend["matmul"] = (a0, b0, options = {}) => {
    const a = t(a0, "matmul")
    const b = t(b0, "matmul")
    const transA = options.transA === true
    const transB = options.transB === true
    require(a.shape.length === 2 && b.shape.length === 2, id, "matmul", () => "operands must be 2-D")
    const M = transA ? a.shape[1]! : a.shape[0]!
    const K = transA ? a.shape[0]! : a.shape[1]!
    const K2 = transB ? b.shape[1]! : b.shape[0]!
    const N = transB ? b.shape[0]! : b.shape[1]!
    require(K === K2, id, "matmul", () => `inner sizes differ: ${shapeText(a.shape)} x ${shapeText(b.shape)}`)
    const C = alloc(M * N)
    gemm(scratch, a.data, b.data, C, M, K, N, transA, transB)
    return out([M, N], C)
  }

  const binaryMap = (op: string, a0: Tensor, b0: Tensor, f: (a: number, b: number) => number): CpuTensor => {
    const a = t(a0, op)
    const b = t(b0, op)
    require(a.size === b.size, id, op, () => `sizes differ: ${shapeText(a.shape)} vs ${shapeText(b.shape)}`)
    const o = alloc(a.size)
    for (let i = 0; i < o.length; i++) o[i] = f(a.data[i]!, b.data[i]!)
    return out(a.shape, o)
  }

  const sumRows = (x0: Tensor): Tensor => {
    const x = t(x0, "sumRows")
    const M = rows(x)
    const N = cols(x)
    const o = alloc(N)
    for (let j = 0; j < N; j++) {
      let s = 0
      for (let i = 0; i < M; i++) s += x.data[i * N + j]!
      o[j] = s
    }
    return out([N], o)
  }

  const sum = (x0: Tensor, scale = 1): Tensor => {
    const x = t(x0, "sum")
    let s = 0
    for (let i = 0; i < x.size; i++) s += x.data[i]!
    return out([1], Float32Array.of(s * scale))
  }

  const lossResult = (perRow: Float64Array, grad: Float32Array, shape: ReadonlyArray<number>): LossResult => {
    let s = 0
    for (let i = 0; i < perRow.length; i++) s += perRow[i]!
    return { loss: out([1], Float32Array.of(s / Math.max(perRow.length, 1))), grad: out(shape, grad) }
  }

  return {
    kind: "cpu",
    id,
    description: `${id} (TypeScript float32 reference)`,
    lost: () => lost,
    upload: (shape, data) => {
      requireAlive(id, lost)
      require(data.length === sizeOf(shape), id, "upload", () => `${data.length} values for ${shapeText(shape)}`)
      const x = alloc(data.length)
      x.set(data)
      return out(shape, x)
    },
    zeros: (shape) => {
      requireAlive(id, lost)
      return out(shape)
    },
    write: (x0, data) => {
      const x = t(x0, "write")
      require(data.length === x.size, id, "write", () => `${data.length} values for ${shapeText(x.shape)}`)
      x.data.set(data)
    },
    read: async (x0) => Float32Array.from(t(x0, "read").data),
    readMany: async (xs) => xs.map((x0) => Float32Array.from(t(x0, "read").data)),
    dispose: (x0) => {
      if (!(x0 instanceof CpuTensor)) return
      const data = x0.data
      x0.data = new Float32Array(0)
      if (x0.device !== id || data.length === 0 || pooled + data.length > POOL_VALUES) return
      pooled += data.length
      const list = pool.get(data.length)
      if (list === undefined) pool.set(data.length, [data])
      else list.push(data)
    },
    matmul,
    addBias: (x0, b0) => {
      const x = t(x0, "addBias")
      const b = t(b0, "addBias")
      const N = cols(x)
      require(b.size === N, id, "addBias", () => `bias ${shapeText(b.shape)} for rows of ${N}`)
      const o = alloc(x.size)
      for (let i = 0; i < o.length; i++) o[i] = x.data[i]! + b.data[i % N]!
      return out(x.shape, o)
    },
    sumRows,
    broadcastRows: (v0, M) => {
      const v = t(v0, "broadcastRows")
      const o = alloc(M * v.size)
      for (let i = 0; i < M; i++) o.set(v.data, i * v.size)
      return out([M, v.size], o)
    },
    sum,
    activation: (kind: Activation, x0) => {
      const x = t(x0, "activation")
      const o = alloc(x.size)
      for (let i = 0; i < o.length; i++) o[i] = activate(kind, x.data[i]!)
      return out(x.shape, o)
    },
    activationGrad: (kind, x0, dy0) => binaryMap("activationGrad", x0, dy0, (x, dy) => dy * activateGrad(kind, x)),
    softmaxCrossEntropy: (l0, y0) => {
      const l = t(l0, "softmaxCrossEntropy")
      const y = t(y0, "softmaxCrossEntropy")
      const M = rows(l)
      const C = cols(l)
      require(y.size === M, id, "softmaxCrossEntropy", () => `${y.size} labels for ${M} rows`)
      const perRow = new Float64Array(M)
      const grad = alloc(M * C)
      for (let i = 0; i < M; i++) {
        let max = -Infinity
        for (let c = 0; c < C; c++) max = Math.max(max, l.data[i * C + c]!)
        let s = 0
        for (let c = 0; c < C; c++) s += Math.exp(l.data[i * C + c]! - max)
        const label = Math.trunc(y.data[i]!)
        perRow[i] = Math.log(s) + max - l.data[i * C + label]!
        for (let c = 0; c < C; c++) {
          grad[i * C + c] = (Math.exp(l.data[i * C + c]! - max) / s - (c === label ? 1 : 0)) / M
        }
      }
      return lossResult(perRow, grad, l.shape)
    },
    binaryCrossEntropy: (z0, y0) => {
      const z = t(z0, "binaryCrossEntropy")
      const y = t(y0, "binaryCrossEntropy")
      require(z.size === y.size, id, "binaryCrossEntropy", () => `${y.size} targets for ${z.size} logits`)
      const M = z.size
      const perRow = new Float64Array(M)
      const grad = alloc(M)
      for (let i = 0; i < M; i++) {
        const x = z.data[i]!
        const target = y.data[i]!
        perRow[i] = Math.max(x, 0) - x * target + Math.log1p(Math.exp(-Math.abs(x)))
        grad[i] = (activate("sigmoid", x) - target) / M
      }
      return lossResult(perRow, grad, z.shape)
    },
    meanSquaredError: (p0, y0) => {
      const p = t(p0, "meanSquaredError")
      const y = t(y0, "meanSquaredError")
      require(p.size === y.size, id, "meanSquaredError", () => `${y.size} targets for ${p.size} predictions`)
      const n = p.size
      const perRow = new Float64Array(n)
      const grad = alloc(n)
      for (let i = 0; i < n; i++) {
        const d = p.data[i]! - y.data[i]!
        perRow[i] = d * d
        grad[i] = (2 * d) / n
      }
      return lossResult(perRow, grad, p.shape)
    },
    embedding: (table0, ids0) => {
      const table = t(table0, "embedding")
      const ids = t(ids0, "embedding")
      const V = rows(table)
      const D = cols(table)
      const o = alloc(ids.size * D)
      for (let i = 0; i < ids.size; i++) {
        const r = Math.trunc(ids.data[i]!)
        require(r >= 0 && r < V, id, "embedding", () => `id ${r} outside the table of ${V} rows`)
        o.set(table.data.subarray(r * D, r * D + D), i * D)
      }
      return out([ids.size, D], o)
    },
    embeddingGrad: (dy0, ids): SparseGrad => {
      const dy = t(dy0, "embeddingGrad")
      const D = cols(dy)
      require(rows(dy) === ids.length, id, "embeddingGrad", () => `${ids.length} ids for ${rows(dy)} rows`)
      const { indices, offsets, positions } = groupIds(ids)
      const values = alloc(indices.length * D)
      for (let u = 0; u < indices.length; u++) {
        for (let d = 0; d < D; d++) {
          let s = 0
          for (let p = offsets[u]!; p < offsets[u + 1]!; p++) s += dy.data[positions[p]! * D + d]!
          values[u * D + d] = s
        }
      }
      return { indices, values: out([indices.length, D], values) }
    },
    rowDot: (a0, b0) => {
      const a = t(a0, "rowDot")
      const b = t(b0, "rowDot")
      require(a.size === b.size, id, "rowDot", () => `${shapeText(a.shape)} vs ${shapeText(b.shape)}`)
      const M = rows(a)
      const D = cols(a)
      const o = alloc(M)
      for (let i = 0; i < M; i++) {
        let s = 0
        for (let d = 0; d < D; d++) s += a.data[i * D + d]! * b.data[i * D + d]!
        o[i] = s
      }
      return out([M, 1], o)
    },
    scaleRows: (x0, s0) => {
      const x = t(x0, "scaleRows")
      const s = t(s0, "scaleRows")
      const N = cols(x)
      require(s.size === rows(x), id, "scaleRows", () => `${s.size} scales for ${rows(x)} rows`)
      const o = alloc(x.size)
      for (let i = 0; i < o.length; i++) o[i] = x.data[i]! * s.data[Math.floor(i / N)]!
      return out(x.shape, o)
    },
    sgd: (p0, g0, v0, step: SgdStep) => {
      const p = t(p0, "sgd")
      const g = t(g0, "sgd")
      const v = t(v0, "sgd")
      require(p.size === g.size && p.size === v.size, id, "sgd", () => "parameter, gradient and state sizes differ")
      for (let i = 0; i < p.size; i++) {
        const grad = Math.fround(g.data[i]! + step.weightDecay * p.data[i]!)
        const vel = Math.fround(step.momentum * v.data[i]! + grad)
        v.data[i] = vel
        p.data[i] = p.data[i]! - step.lr * vel
      }
    },
    adam: (p0, g0, m0, v0, step: AdamStep) => {
      const p = t(p0, "adam")
      const g = t(g0, "adam")
      const m = t(m0, "adam")
      const v = t(v0, "adam")
      require(p.size === g.size && p.size === m.size && p.size === v.size, id, "adam", () => "sizes differ")
      const c1 = 1 - Math.pow(step.beta1, step.step)
      const c2 = 1 - Math.pow(step.beta2, step.step)
      for (let i = 0; i < p.size; i++) {
        const grad = Math.fround(g.data[i]! + step.weightDecay * p.data[i]!)
        const mi = Math.fround(step.beta1 * m.data[i]! + (1 - step.beta1) * grad)
        const vi = Math.fround(step.beta2 * v.data[i]! + (1 - step.beta2) * grad * grad)
        m.data[i] = mi
        v.data[i] = vi
        p.data[i] = p.data[i]! - (step.lr * (mi / c1)) / (Math.sqrt(vi / c2) + step.epsilon)
      }
    },
    sync: async () => requireAlive(id, lost),
    destroy: () => {
      lost ??= "destroyed"
    }
  }
}

// at most 64 MiB of disposed tensors kept per device
const POOL_VALUES = 16 * 2 ** 20

/** The packed operands of {@link gemm}, grown as needed and kept between calls. */
interface Scratch {
  a: Float32Array
  b: Float32Array
  /** A 4 x 4 tile of C at the edges of C and between blocks of k. */
  readonly tile: Float64Array
}

const grow = (x: Float32Array, n: number) => (x.length >= n ? x : new Float32Array(Math.max(n, 2 * x.length)))

// the blocks of gemm: KC values of k at a time, MC rows of A at a time
const KC = 256
const MC = 64

/**
 * C[M, N] = A(M, K) B(K, N), cache-blocked in the manner of GotoBLAS, for any transposes of A and B. For each block
 * of KC values of k, that block of B (KC x N) is packed into panels of 4 columns (`[jb][k][4]`: 256 KiB at N = 256,
 * it stays in L2); for each block of MC rows of A, that block of A (MC x KC) is packed into panels of 4 rows
 * (`[ib][k][4]`: 64 KiB); then for each panel of B (4 KiB, in L1) the micro-kernel runs over the panels of the A
 * block, keeping a 4 x 4 tile of C in 16 local accumulators: every value loaded feeds 4 multiply-adds, C is read and
 * written once per block of k, and a thread's working set stays in its own L1 and L2 (a few hundred KiB whatever
 * the sizes) instead of streaming whole operands. Each accumulator is rounded to float32 after every multiply-add,
 * over k in order, as the plain i-k-j loop into a Float32Array did (a tile carried to the next block of k is a
 * float32 value, stored and reloaded exactly): the results are bit for bit those of that loop.
 */
const gemm = (
  scratch: Scratch,
  a: Float32Array,
  b: Float32Array,
  C: Float32Array,
  M: number,
  K: number,
  N: number,
  transA: boolean,
  transB: boolean
): void => {
  const NB = (N + 3) >> 2
  const A = (scratch.a = grow(scratch.a, MC * Math.min(K, KC)))
  const B = (scratch.b = grow(scratch.b, NB * 4 * Math.min(K, KC)))
  // A(i, k) = a[i * si + k * sk]; B(k, j) = b[k * tk + j * tj]
  const si = transA ? 1 : K
  const sk = transA ? M : 1
  const tk = transB ? 1 : N
  const tj = transB ? K : 1
  const fr = Math.fround
  const tile = scratch.tile
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = Math.min(KC, K - k0)
    const first = k0 === 0
    for (let jb = 0; jb < NB; jb++) {
      const base = jb * kc * 4
      for (let c = 0; c < 4; c++) {
        const j = jb * 4 + c
        if (j >= N) {
          for (let k = 0; k < kc; k++) B[base + k * 4 + c] = 0
        } else {
          for (let k = 0; k < kc; k++) B[base + k * 4 + c] = b[(k0 + k) * tk + j * tj]!
        }
      }
    }
    for (let i0 = 0; i0 < M; i0 += MC) {
      const mb = (Math.min(MC, M - i0) + 3) >> 2
      for (let ib = 0; ib < mb; ib++) {
        const base = ib * kc * 4
        for (let r = 0; r < 4; r++) {
          const i = i0 + ib * 4 + r
          if (i >= M) {
            for (let k = 0; k < kc; k++) A[base + k * 4 + r] = 0
          } else {
            for (let k = 0; k < kc; k++) A[base + k * 4 + r] = a[i * si + (k0 + k) * sk]!
          }
        }
      }
      for (let jb = 0; jb < NB; jb++) {
        const j0 = jb * 4
        for (let ib = 0; ib < mb; ib++) {
          const r0 = i0 + ib * 4
          const full = r0 + 4 <= M && j0 + 4 <= N
          if (first) tile.fill(0)
          else {
            for (let r = 0; r < 4; r++) {
              for (let c = 0; c < 4; c++) {
                tile[r * 4 + c] = r0 + r < M && j0 + c < N ? C[(r0 + r) * N + j0 + c]! : 0
              }
            }
          }
          let c00 = tile[0]!
          let c01 = tile[1]!
          let c02 = tile[2]!
          let c03 = tile[3]!
          let c10 = tile[4]!
          let c11 = tile[5]!
          let c12 = tile[6]!
          let c13 = tile[7]!
          let c20 = tile[8]!
          let c21 = tile[9]!
          let c22 = tile[10]!
          let c23 = tile[11]!
          let c30 = tile[12]!
          let c31 = tile[13]!
          let c32 = tile[14]!
          let c33 = tile[15]!
          let pa = ib * kc * 4
          let pb = jb * kc * 4
          for (let k = 0; k < kc; k++) {
            const a0 = A[pa]!
            const a1 = A[pa + 1]!
            const a2 = A[pa + 2]!
            const a3 = A[pa + 3]!
            const b0 = B[pb]!
            const b1 = B[pb + 1]!
            const b2 = B[pb + 2]!
            const b3 = B[pb + 3]!
            c00 = fr(c00 + a0 * b0)
            c01 = fr(c01 + a0 * b1)
            c02 = fr(c02 + a0 * b2)
            c03 = fr(c03 + a0 * b3)
            c10 = fr(c10 + a1 * b0)
            c11 = fr(c11 + a1 * b1)
            c12 = fr(c12 + a1 * b2)
            c13 = fr(c13 + a1 * b3)
            c20 = fr(c20 + a2 * b0)
            c21 = fr(c21 + a2 * b1)
            c22 = fr(c22 + a2 * b2)
            c23 = fr(c23 + a2 * b3)
            c30 = fr(c30 + a3 * b0)
            c31 = fr(c31 + a3 * b1)
            c32 = fr(c32 + a3 * b2)
            c33 = fr(c33 + a3 * b3)
            pa += 4
            pb += 4
          }
          if (full) {
            let o = r0 * N + j0
            C[o] = c00
            C[o + 1] = c01
            C[o + 2] = c02
            C[o + 3] = c03
            o += N
            C[o] = c10
            C[o + 1] = c11
            C[o + 2] = c12
            C[o + 3] = c13
            o += N
            C[o] = c20
            C[o + 1] = c21
            C[o + 2] = c22
            C[o + 3] = c23
            o += N
            C[o] = c30
            C[o + 1] = c31
            C[o + 2] = c32
            C[o + 3] = c33
          } else {
            tile.set([c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33])
            for (let r = 0; r < 4 && r0 + r < M; r++) {
              for (let c = 0; c < 4 && j0 + c < N; c++) C[(r0 + r) * N + j0 + c] = tile[r * 4 + c]!
            }
          }
        }
      }
    }
  }
}
