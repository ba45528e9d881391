/// <reference types="@webgpu/types" />
import type { Activation, AdamStep, Backend, LossResult, SgdStep, SparseGrad, Tensor } from "../Backend.js"
import { sizeOf } from "../Backend.js"
import { BackendError, DeviceLostError } from "../TrainerError.js"
import { activationCode, cols, groupIds, messageOf, require, rows, shapeText } from "./common.js"
import * as K from "./kernels.js"

// GPUBufferUsage / GPUMapMode values (the globals need not be installed)
const MAP_READ = 0x0001
const COPY_SRC = 0x0004
const COPY_DST = 0x0008
const UNIFORM = 0x0040
const STORAGE = 0x0080
const READ = 0x0001

class GpuTensor implements Tensor {
  readonly size: number
  constructor(
    readonly device: string,
    readonly shape: ReadonlyArray<number>,
    public buffer: GPUBuffer | undefined
  ) {
    this.size = sizeOf(shape)
  }
}

/**
 * The GPU instances (from `create`) of every open device. Dawn tears a device down when its instance is collected,
 * so each device's instance is held here, in a module-level registry that no bundler can drop as dead code, from
 * the device's creation until its `destroy`. (A local `let` read only by `void` was removed by tree shaking, and the
 * packed trainer crashed with SIGABRT or SIGSEGV once the collector ran.)
 */
const liveInstances = new Set<{ readonly instance: GPU }>()

const align = (bytes: number) => Math.max(256, Math.ceil(bytes / 256) * 256)

/** Each dispatch's uniforms (`struct P`, 80 bytes) in a 256-byte slot (the uniform offset alignment). */
const UNIFORM_BYTES = 80
const UNIFORM_SLOT = 256
const UNIFORM_CHUNK = 256 * UNIFORM_SLOT

interface UniformChunk {
  readonly buffer: GPUBuffer
  readonly data: ArrayBuffer
  used: number
}

/** A backend on one WebGPU device. `onDestroy` releases what the device was created from. */
export const makeWebGpu = (
  id: string,
  device: GPUDevice,
  description: string,
  instance: GPU,
  adapter: string
): Backend => {
  const hold = { instance }
  liveInstances.add(hold)
  let lost: string | undefined
  let asyncError: string | undefined
  void device.lost.then((info) => {
    lost ??= `${info.reason}: ${info.message || "device lost"}`
  })
  try {
    device.onuncapturederror = (event: GPUUncapturedErrorEvent) => {
      asyncError ??= event.error.message
    }
  } catch {
    // not supported: errors then surface as wrong results or failed reads
  }

  const alive = (op: string) => {
    if (lost !== undefined)
      throw new DeviceLostError({ device: id, step: 0, message: `${op}: device ${id} is lost: ${lost}` })
  }

  const pool = new Map<number, Array<GPUBuffer>>()
  const pipelines = new Map<string, { readonly p: GPUComputePipeline; readonly layout: GPUBindGroupLayout }>()

  const allocate = (bytes: number): GPUBuffer => {
    const size = align(bytes)
    const free = pool.get(size)
    const reused = free?.pop()
    if (reused) return reused
    return device.createBuffer({ size, usage: STORAGE | COPY_SRC | COPY_DST })
  }
  const release = (buffer: GPUBuffer) => {
    const list = pool.get(buffer.size) ?? []
    list.push(buffer)
    pool.set(buffer.size, list)
  }

  // Kernels are recorded into one command encoder (one compute pass between copies) and go to the queue in one
  // submit when something waits for them (a read or a sync). Each dispatch's uniforms take a 256-byte slot of a
  // chunk written just before that submit; buffers disposed while recorded work may still use them return to the
  // pool only after it was submitted (queue order then keeps later writes behind it).
  let encoder: GPUCommandEncoder | undefined
  let pass: GPUComputePassEncoder | undefined
  let recording: Array<UniformChunk> = []
  const spareChunks: Array<UniformChunk> = []
  let retiring: Array<GPUBuffer> = []
  let submits = 0

  const record = () => (encoder ??= device.createCommandEncoder())
  const endPass = () => {
    pass?.end()
    pass = undefined
  }
  const uniformSlot = (): { readonly chunk: UniformChunk; readonly offset: number } => {
    let chunk = recording[recording.length - 1]
    if (!chunk || chunk.used + UNIFORM_SLOT > UNIFORM_CHUNK) {
      chunk = spareChunks.pop() ?? {
        buffer: device.createBuffer({ size: UNIFORM_CHUNK, usage: UNIFORM | COPY_DST }),
        data: new ArrayBuffer(UNIFORM_CHUNK),
        used: 0
      }
      chunk.used = 0
      recording.push(chunk)
    }
    const offset = chunk.used
    chunk.used += UNIFORM_SLOT
    return { chunk, offset }
  }
  const flush = () => {
    if (!encoder) return
    endPass()
    for (const chunk of recording) device.queue.writeBuffer(chunk.buffer, 0, chunk.data, 0, chunk.used)
    device.queue.submit([encoder.finish()])
    submits++
    encoder = undefined
    spareChunks.push(...recording)
    recording = []
    for (const buffer of retiring) release(buffer)
    retiring = []
  }
  const retire = (buffer: GPUBuffer) => {
    if (encoder) retiring.push(buffer)
    else release(buffer)
  }

  const t = (x: Tensor, op: string): GpuTensor => {
    alive(op)
    require(x instanceof GpuTensor && x.device === id, id, op, () => `tensor belongs to ${x.device}`)
    const g = x as GpuTensor
    require(g.buffer !== undefined, id, op, () => "tensor was disposed")
    return g
  }
  const out = (shape: ReadonlyArray<number>) => new GpuTensor(id, shape, allocate(sizeOf(shape) * 4))

  const pipeline = (name: keyof typeof K): { readonly p: GPUComputePipeline; readonly layout: GPUBindGroupLayout } => {
    let entry = pipelines.get(name)
    if (!entry) {
      const module = device.createShaderModule({ label: name, code: K[name] })
      const p = device.createComputePipeline({ label: name, layout: "auto", compute: { module, entryPoint: "main" } })
      entry = { p, layout: p.getBindGroupLayout(0) }
      pipelines.set(name, entry)
    }
    return entry
  }

  const dispatch = (
    name: keyof typeof K,
    params: { readonly u?: ReadonlyArray<number>; readonly f?: ReadonlyArray<number> },
    buffers: ReadonlyArray<GPUBuffer>,
    groups: readonly [number, number]
  ) => {
    if (!(groups[0] > 0 && groups[1] > 0)) return
    const { chunk, offset } = uniformSlot()
    new Uint8Array(chunk.data, offset, UNIFORM_BYTES).fill(0)
    const u = new Uint32Array(chunk.data, offset, 8)
    const f = new Float32Array(chunk.data, offset + 32, 12)
    ;(params.u ?? []).forEach((x, i) => (u[i] = x))
    ;(params.f ?? []).forEach((x, i) => (f[i] = x))
    const { p, layout } = pipeline(name)
    const bindGroup = device.createBindGroup({
      layout,
      entries: [
        { binding: 0, resource: { buffer: chunk.buffer, offset, size: UNIFORM_BYTES } },
        ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } }))
      ]
    })
    record()
    pass ??= encoder!.beginComputePass()
    pass.setPipeline(p)
    pass.setBindGroup(0, bindGroup)
    pass.dispatchWorkgroups(groups[0], groups[1])
  }

  const linear = (n: number): readonly [number, number] => {
    const g = Math.ceil(n / 256)
    const x = Math.min(g, 65535)
    return [x, x === 0 ? 0 : Math.ceil(g / x)]
  }

  const uploadRaw = (data: ArrayBufferView): GPUBuffer => {
    const buffer = allocate(data.byteLength)
    if (data.byteLength > 0) device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength)
    return buffer
  }

  const surface = async (op: string, cause?: unknown): Promise<never> => {
    // a failed map is a lost device when the lost promise settles soon after
    await Promise.race([device.lost, new Promise((r) => setTimeout(r, 50))])
    if (lost !== undefined)
      throw new DeviceLostError({ device: id, step: 0, message: `${op}: device ${id} is lost: ${lost}` })
    throw new BackendError({
      device: id,
      operation: op,
      message: `${op} on ${id} failed: ${asyncError ?? messageOf(cause)}`,
      cause
    })
  }

  const readMany = async (xs: ReadonlyArray<Tensor>): Promise<ReadonlyArray<Float32Array>> => {
    const tensors = xs.map((x) => t(x, "read"))
    const offsets: Array<number> = []
    let total = 0
    for (const x of tensors) {
      offsets.push(total)
      total += x.size === 0 ? 0 : align(x.size * 4)
    }
    if (total === 0) return tensors.map(() => new Float32Array(0))
    const staging = device.createBuffer({ size: total, usage: MAP_READ | COPY_DST })
    try {
      endPass()
      const copies = record()
      tensors.forEach((x, i) => {
        if (x.size > 0) copies.copyBufferToBuffer(x.buffer!, 0, staging, offsets[i]!, align(x.size * 4))
      })
      flush()
      try {
        await staging.mapAsync(READ)
      } catch (cause) {
        return await surface("read", cause)
      }
      if (asyncError !== undefined) return await surface("read")
      alive("read")
      const mapped = staging.getMappedRange()
      const result = tensors.map((x, i) => new Float32Array(mapped.slice(offsets[i]!, offsets[i]! + x.size * 4)))
      staging.unmap()
      return result
    } finally {
      staging.destroy()
    }
  }

  const lossKernel = (name: "softmaxCrossEntropy" | "binaryCrossEntropy" | "meanSquaredError") => {
    return (x: GpuTensor, y: GpuTensor, perRow: number, u: ReadonlyArray<number>): LossResult => {
      const losses = out([perRow])
      const grad = out(x.shape)
      dispatch(name, { u }, [x.buffer!, y.buffer!, losses.buffer!, grad.buffer!], linear(perRow))
      const loss = out([1])
      dispatch("sum", { u: [perRow], f: [1 / Math.max(perRow, 1)] }, [losses.buffer!, loss.buffer!], [1, 1])
      retire(losses.buffer!)
      return { loss, grad }
    }
  }
  const softmaxCE = lossKernel("softmaxCrossEntropy")
  const bce = lossKernel("binaryCrossEntropy")
  const mse = lossKernel("meanSquaredError")

  return {
    kind: "webgpu",
    id,
    description,
    adapter,
    lost: () => lost,
    upload: (shape, data) => {
      alive("upload")
      require(data.length === sizeOf(shape), id, "upload", () => `${data.length} values for ${shapeText(shape)}`)
      return new GpuTensor(id, shape, uploadRaw(data))
    },
    zeros: (shape) => {
      alive("zeros")
      const x = out(shape)
      endPass()
      record().clearBuffer(x.buffer!)
      return x
    },
    write: (x0, data) => {
      const x = t(x0, "write")
      require(data.length === x.size, id, "write", () => `${data.length} values for ${shapeText(x.shape)}`)
      // Dawn takes no SharedArrayBuffer (the trainer's averaged gradients live in one)
      // recorded kernels may still read the tensor: they go first
      flush()
      const own = data.buffer instanceof SharedArrayBuffer ? data.slice() : data
      if (own.byteLength > 0) device.queue.writeBuffer(x.buffer!, 0, own.buffer, own.byteOffset, own.byteLength)
    },
    read: async (x) => (await readMany([x]))[0]!,
    readMany,
    dispose: (x0) => {
      if (x0 instanceof GpuTensor && x0.buffer !== undefined) {
        retire(x0.buffer)
        x0.buffer = undefined
      }
    },
    matmul: (a0, b0, options = {}) => {
      const a = t(a0, "matmul")
      const b = t(b0, "matmul")
      require(a.shape.length === 2 && b.shape.length === 2, id, "matmul", () => "operands must be 2-D")
      const transA = options.transA === true
      const transB = options.transB === true
      const M = transA ? a.shape[1]! : a.shape[0]!
      const Kd = transA ? a.shape[0]! : a.shape[1]!
      const K2 = transB ? b.shape[1]! : b.shape[0]!
      const N = transB ? b.shape[0]! : b.shape[1]!
      require(Kd === K2, id, "matmul", () => `inner sizes differ: ${shapeText(a.shape)} x ${shapeText(b.shape)}`)
      const c = out([M, N])
      dispatch(
        "matmul",
        { u: [M, N, Kd, transA ? 1 : 0, transB ? 1 : 0] },
        [a.buffer!, b.buffer!, c.buffer!],
        [Math.ceil(N / 64), Math.ceil(M / 64)]
      )
      return c
    },
    addBias: (x0, b0) => {
      const x = t(x0, "addBias")
      const b = t(b0, "addBias")
      const N = cols(x)
      require(b.size === N, id, "addBias", () => `bias ${shapeText(b.shape)} for rows of ${N}`)
      const o = out(x.shape)
      dispatch("addBias", { u: [x.size, N] }, [x.buffer!, b.buffer!, o.buffer!], linear(x.size))
      return o
    },
    sumRows: (x0) => {
      const x = t(x0, "sumRows")
      const N = cols(x)
      const o = out([N])
      dispatch("sumRows", { u: [rows(x), N] }, [x.buffer!, o.buffer!], linear(N))
      return o
    },
    broadcastRows: (v0, M) => {
      const v = t(v0, "broadcastRows")
      const o = out([M, v.size])
      dispatch("broadcastRows", { u: [o.size, v.size] }, [v.buffer!, o.buffer!], linear(o.size))
      return o
    },
    sum: (x0, scale = 1) => {
      const x = t(x0, "sum")
      const o = out([1])
      dispatch("sum", { u: [x.size], f: [scale] }, [x.buffer!, o.buffer!], [1, 1])
      return o
    },
    activation: (kind: Activation, x0) => {
      const x = t(x0, "activation")
      const o = out(x.shape)
      dispatch("activation", { u: [x.size, activationCode(kind)] }, [x.buffer!, o.buffer!], linear(x.size))
      return o
    },
    activationGrad: (kind, x0, dy0) => {
      const x = t(x0, "activationGrad")
      const dy = t(dy0, "activationGrad")
      require(x.size === dy.size, id, "activationGrad", () => `${shapeText(x.shape)} vs ${shapeText(dy.shape)}`)
      const o = out(x.shape)
      dispatch(
        "activationGrad",
        { u: [x.size, activationCode(kind)] },
        [x.buffer!, dy.buffer!, o.buffer!],
        linear(x.size)
      )
      return o
    },
    softmaxCrossEntropy: (l0, y0) => {
      const l = t(l0, "softmaxCrossEntropy")
      const y = t(y0, "softmaxCrossEntropy")
      const M = rows(l)
      require(y.size === M, id, "softmaxCrossEntropy", () => `${y.size} labels for ${M} rows`)
      return softmaxCE(l, y, M, [M, cols(l)])
    },
    binaryCrossEntropy: (z0, y0) => {
      const z = t(z0, "binaryCrossEntropy")
      const y = t(y0, "binaryCrossEntropy")
      require(z.size === y.size, id, "binaryCrossEntropy", () => `${y.size} targets for ${z.size} logits`)
      return bce(z, y, z.size, [z.size])
    },
    meanSquaredError: (p0, y0) => {
      const p = t(p0, "meanSquaredError")
      const y = t(y0, "meanSquaredError")
      require(p.size === y.size, id, "meanSquaredError", () => `${y.size} targets for ${p.size} predictions`)
      return mse(p, y, p.size, [p.size])
    },
    embedding: (table0, ids0) => {
      const table = t(table0, "embedding")
      const ids = t(ids0, "embedding")
      const D = cols(table)
      const o = out([ids.size, D])
      dispatch("embedding", { u: [o.size, D, rows(table)] }, [table.buffer!, ids.buffer!, o.buffer!], linear(o.size))
      return o
    },
    embeddingGrad: (dy0, ids): SparseGrad => {
      const dy = t(dy0, "embeddingGrad")
      const D = cols(dy)
      require(rows(dy) === ids.length, id, "embeddingGrad", () => `${ids.length} ids for ${rows(dy)} rows`)
      const { indices, offsets, positions } = groupIds(ids)
      const off = uploadRaw(offsets)
      const pos = uploadRaw(positions.length > 0 ? positions : new Uint32Array(1))
      const values = out([indices.length, D])
      dispatch("embeddingGrad", { u: [values.size, D] }, [dy.buffer!, off, pos, values.buffer!], linear(values.size))
      retire(off)
      retire(pos)
      return { indices, values }
    },
    rowDot: (a0, b0) => {
      const a = t(a0, "rowDot")
      const b = t(b0, "rowDot")
      require(a.size === b.size, id, "rowDot", () => `${shapeText(a.shape)} vs ${shapeText(b.shape)}`)
      const M = rows(a)
      const o = out([M, 1])
      dispatch("rowDot", { u: [M, cols(a)] }, [a.buffer!, b.buffer!, o.buffer!], linear(M))
      return o
    },
    scaleRows: (x0, s0) => {
      const x = t(x0, "scaleRows")
      const s = t(s0, "scaleRows")
      require(s.size === rows(x), id, "scaleRows", () => `${s.size} scales for ${rows(x)} rows`)
      const o = out(x.shape)
      dispatch("scaleRows", { u: [x.size, cols(x)] }, [x.buffer!, s.buffer!, o.buffer!], linear(x.size))
      return o
    },
    sgd: (p0, g0, v0, step: SgdStep) => {
      const p = t(p0, "sgd")
      const g = t(g0, "sgd")
      const v = t(v0, "sgd")
      require(p.size === g.size && p.size === v.size, id, "sgd", () => "parameter, gradient and state sizes differ")
      dispatch(
        "sgd",
        { u: [p.size], f: [step.lr, step.momentum, step.weightDecay] },
        [p.buffer!, g.buffer!, v.buffer!],
        linear(p.size)
      )
    },
    adam: (p0, g0, m0, v0, step: AdamStep) => {
      const p = t(p0, "adam")
      const g = t(g0, "adam")
      const m = t(m0, "adam")
      const v = t(v0, "adam")
      require(p.size === g.size && p.size === m.size && p.size === v.size, id, "adam", () => "sizes differ")
      dispatch(
        "adam",
        {
          u: [p.size],
          f: [
            step.lr,
            step.beta1,
            step.beta2,
            step.epsilon,
            step.weightDecay,
            1 - Math.pow(step.beta1, step.step),
            1 - Math.pow(step.beta2, step.step),
            0,
            1 - step.beta1,
            1 - step.beta2
          ]
        },
        [p.buffer!, g.buffer!, m.buffer!, v.buffer!],
        linear(p.size)
      )
    },
    submits: () => submits,
    sync: async () => {
      alive("sync")
      flush()
      try {
        await device.queue.onSubmittedWorkDone()
      } catch (cause) {
        await surface("sync", cause)
      }
      if (asyncError !== undefined) await surface("sync")
      alive("sync")
    },
    destroy: () => {
      lost ??= "destroyed"
      endPass()
      encoder = undefined
      for (const list of pool.values()) for (const b of list) b.destroy()
      pool.clear()
      device.destroy()
      liveInstances.delete(hold)
    }
  }
}
