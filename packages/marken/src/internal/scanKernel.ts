/**
 * The WebAssembly kernels (128-bit SIMD) of the exact scan, assembled here from their
 * instructions (no binary blob, no toolchain):
 *
 *   l2(q, base, bytes, slots, n, out)    dot(q, base, bytes, slots, n, out)
 *
 * write, for each of the `n` slots listed at byte offset `slots` (i32, `n` a multiple
 * of `LANES`), the squared L2 distance (`l2`) or the dot product (`dot`) of the
 * `bytes / 4` floats at `q` and those of the slot's vector at `base + slot * bytes`
 * (`bytes` a multiple of 16) to `out` (f32). They read `LANES` vectors side by side: the
 * scan is bound by memory latency (a matching set is spread over the whole store), and
 * eight independent streams keep eight vectors' cache lines in flight instead of one.
 */

/** Vectors the kernel reads side by side; callers pad the slot list to a multiple of it. */
export const LANES = 8

/** A kernel: see the module comment. */
export type Kernel = (q: number, base: number, bytes: number, slots: number, n: number, out: number) => void

/** The part of the WebAssembly API used here (the package's TypeScript libs do not declare it). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}
interface WasmApi {
  readonly Memory: new (descriptor: { initial: number }) => WasmMemory
  readonly Module: new (bytes: Uint8Array) => object
  readonly Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> }
}

export const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly

export const PAGE = 65536

// ---- a minimal encoder: LEB128 numbers, vectors, sections, the instructions used ----

const uleb = (n: number): Array<number> => {
  const out: Array<number> = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}
const sleb = (n: number): Array<number> => {
  const out: Array<number> = []
  for (;;) {
    const b = n & 0x7f
    n >>= 7
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b]
    out.push(b | 0x80)
  }
}
const vec = (items: ReadonlyArray<ReadonlyArray<number>>) => [...uleb(items.length), ...items.flat()]
const name = (s: string) => vec([...s].map((c) => [c.charCodeAt(0)]))
const section = (id: number, body: ReadonlyArray<number>) => [id, ...uleb(body.length), ...body]

const I32 = 0x7f
const V128 = 0x7b
/** A memory access's alignment (log2) and offset. */
const memarg = (align: number, offset = 0) => [align, ...uleb(offset)]
const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  get: (local: number) => [0x20, ...uleb(local)],
  set: (local: number) => [0x21, ...uleb(local)],
  tee: (local: number) => [0x22, ...uleb(local)],
  i32Load: (offset: number) => [0x28, ...memarg(2, offset)],
  f32Store: (offset: number) => [0x38, ...memarg(2, offset)],
  i32: (n: number) => [0x41, ...sleb(n)],
  i32GeU: [0x4f],
  i32LtU: [0x49],
  i32Add: [0x6a],
  i32Mul: [0x6c],
  i32Shl: [0x74],
  f32Add: [0x92],
  v128Load: [0xfd, 0x00, ...memarg(4)],
  v128Zero: [0xfd, 0x0c, ...new Array<number>(16).fill(0)],
  f32x4Lane: (lane: number) => [0xfd, 0x1f, lane],
  f32x4Add: [0xfd, ...uleb(0xe4)],
  f32x4Sub: [0xfd, ...uleb(0xe5)],
  f32x4Mul: [0xfd, ...uleb(0xe6)]
}

/** The body of `l2` or `dot` (see the module comment), `LANES` vectors per round. */
const kernelBody = (dot: boolean) => {
  // parameters, then locals
  const [q, base, bytes, slots, n, out, i, j, qv, tmp] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
  const v = (r: number) => 10 + r
  const acc = (r: number) => 10 + LANES + r
  const lanes = Array.from({ length: LANES }, (_, r) => r)
  const code: Array<ReadonlyArray<number>> = [
    op.i32(0),
    op.set(i),
    op.block,
    op.loop,
    // i >= n: done
    op.get(i),
    op.get(n),
    op.i32GeU,
    op.brIf(1),
    // v[r] = base + slots[i + r] * bytes; acc[r] = 0
    ...lanes.flatMap((r) => [
      op.get(base),
      op.get(slots),
      op.get(i),
      op.i32(2),
      op.i32Shl,
      op.i32Add,
      op.i32Load(4 * r),
      op.get(bytes),
      op.i32Mul,
      op.i32Add,
      op.set(v(r)),
      op.v128Zero,
      op.set(acc(r))
    ]),
    // for j in 0, 16, .. bytes: qv = q[j..]; acc[r] += (qv - v[r][j..])^2, or qv * v[r][j..]
    op.i32(0),
    op.set(j),
    op.loop,
    op.get(q),
    op.get(j),
    op.i32Add,
    op.v128Load,
    op.set(qv),
    ...lanes.flatMap((r) => [
      op.get(qv),
      op.get(v(r)),
      op.get(j),
      op.i32Add,
      op.v128Load,
      ...(dot ? [op.f32x4Mul] : [op.f32x4Sub, op.tee(tmp), op.get(tmp), op.f32x4Mul]),
      op.get(acc(r)),
      op.f32x4Add,
      op.set(acc(r))
    ]),
    op.get(j),
    op.i32(16),
    op.i32Add,
    op.tee(j),
    op.get(bytes),
    op.i32LtU,
    op.brIf(0),
    op.end,
    // out[i + r] = the sum of acc[r]'s lanes
    ...lanes.flatMap((r) => [
      op.get(out),
      op.get(i),
      op.i32(2),
      op.i32Shl,
      op.i32Add,
      op.get(acc(r)),
      op.f32x4Lane(0),
      op.get(acc(r)),
      op.f32x4Lane(1),
      op.f32Add,
      op.get(acc(r)),
      op.f32x4Lane(2),
      op.f32Add,
      op.get(acc(r)),
      op.f32x4Lane(3),
      op.f32Add,
      op.f32Store(4 * r)
    ]),
    op.get(i),
    op.i32(LANES),
    op.i32Add,
    op.set(i),
    op.br(0),
    op.end,
    op.end
  ]
  // locals after the 6 parameters: i, j (i32), qv, tmp (v128), v[LANES] (i32), acc[LANES] (v128)
  const locals = vec([
    [2, I32],
    [2, V128],
    [LANES, I32],
    [LANES, V128]
  ])
  const body = [...locals, ...code.flat(), ...op.end]
  return [...uleb(body.length), ...body]
}

/** The encoded module: it imports its memory (`env.memory`) and exports `l2` and `dot`. */
const moduleBytes = () =>
  new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    // types: (i32 x 6) -> ()
    ...section(1, vec([[0x60, ...vec(new Array(6).fill([I32])), ...vec([])]])),
    // imports: env.memory, at least one page
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, 0x01]])),
    // functions: two, of type 0
    ...section(3, vec([[0x00], [0x00]])),
    // exports: l2 = function 0, dot = function 1
    ...section(
      7,
      vec([
        [...name("l2"), 0x00, 0x00],
        [...name("dot"), 0x00, 0x01]
      ])
    ),
    ...section(10, vec([kernelBody(false), kernelBody(true)]))
  ])

let compiled: object | null | undefined

/** The kernels over `memory`; undefined where the runtime has no WebAssembly (or no SIMD). */
export const kernels = (memory: WasmMemory): { readonly l2: Kernel; readonly dot: Kernel } | undefined => {
  if (compiled === undefined) {
    try {
      compiled = wasmApi ? new wasmApi.Module(moduleBytes()) : null
    } catch {
      compiled = null
    }
  }
  if (compiled === null || !wasmApi) return undefined
  const exports = new wasmApi.Instance(compiled, { env: { memory } }).exports
  return { l2: exports.l2 as Kernel, dot: exports.dot as Kernel }
}
