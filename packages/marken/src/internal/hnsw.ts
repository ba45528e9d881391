import { StorageError } from "@org/storage"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import hnswlib from "hnswlib-node"
import type { Matching, PayloadMirror } from "./payloadIndex.js"
import { type Kernel, kernels, LANES, PAGE, type WasmMemory, wasmApi } from "./scanKernel.js"

export type Metric = "cosine" | "l2"

export interface IndexKey {
  readonly type: string
  readonly version: string
  readonly field: string
}

export interface IndexTuning {
  /** HNSW graph degree (default 16). */
  readonly m: number
  /** Build effort (default 200). */
  readonly efConstruction: number
  /** Default search effort (default 64). */
  readonly ef: number
  /** At or below this many matching vectors, filtered search is always exact (default: chosen by cost). */
  readonly exactThreshold: number | undefined
}

export interface Row {
  readonly seq: number
  readonly id: string
  readonly op: string
  readonly vector: Float32Array
  /** The annotation's payload, for the payload mirror (indexes with indexed fields only). */
  readonly payload?: unknown
}

export const keyString = (k: IndexKey) => `${k.type}@${k.version}#${k.field}`

const fileStem = (k: IndexKey) => {
  const raw = keyString(k)
  const safe = raw.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80)
  return `${safe}-${crypto.createHash("sha1").update(raw).digest("hex").slice(0, 10)}`
}

interface Meta {
  readonly format: 1
  readonly instance: string
  readonly key: string
  readonly dimension: number
  readonly metric: Metric
  readonly m: number
  readonly efConstruction: number
  readonly maxSeq: number
  readonly count: number
  readonly size: number
  readonly sha256: string
}

const sha256File = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/** Candidates per call of the scan kernel (a multiple of its `LANES`). */
const CHUNK = 1024

const normalizeInto = (
  v: Float32Array | ReadonlyArray<number>,
  out: Float32Array | Array<number>,
  offset: number,
  metric: Metric
) => {
  const d = v.length
  let norm = 1
  if (metric === "cosine") {
    let s = 0
    for (let i = 0; i < d; i++) s += v[i]! * v[i]!
    norm = s > 0 ? Math.sqrt(s) : 1
  }
  for (let i = 0; i < d; i++) out[offset + i] = v[i]! / norm
}

/** A live label's annotation and operation. */
export interface Live {
  readonly id: string
  readonly op: string
}

/** Whether a label counts; `live` is its entry where the caller has looked it up already. */
export type Accept = (label: number, live?: Live) => boolean

/** A hit: the label, its distance, and its annotation id where the search had it at hand. */
export interface Found {
  readonly label: number
  readonly distance: number
  readonly id?: string
}

/** One HNSW index with the live labels (vector seq -> annotation id, operation id) and a copy of its vectors. */
export class VectorIndex {
  readonly hnsw: hnswlib.HierarchicalNSW
  readonly labels = new Map<number, Live>()
  private readonly slots = new Map<number, number>()
  private free: Array<number> = []
  private data: Float32Array
  /**
   * With the WebAssembly kernel (dimensions a multiple of 4), `data` lives in its memory after
   * the query (at 0), a chunk of candidate slots (`slotsAt`) and their distances (`outAt`),
   * `wasmBase` bytes in; the memory grows in place, up to its 4 GiB, then `data` moves to a
   * plain array and scans go without the kernel.
   */
  private wasm: { memory: WasmMemory; kernel: Kernel } | undefined
  private readonly slotsAt: number
  private readonly outAt: number
  private readonly wasmBase: number
  /** Per slot: its label, and its operation as a code (-1: a free slot), for scans without lookups. */
  private slotLabel = new Float64Array(1024)
  private slotOp = new Int32Array(1024).fill(-1)
  private readonly opCodes = new Map<string, number>()
  private readonly opNames: Array<string> = []
  private used = 0
  maxSeq = 0
  /** Elements in the graph (deleted ones included) and its capacity, mirrored to spare native calls. */
  private count = 0
  private capacity = 0
  private ef = -1
  private readonly scratch: Array<number>
  /** How the index came to be: "file", "rebuilt" (with the reason) or "empty". */
  origin = "empty"
  dirty = false
  /** The indexed payload values of the labels (when the type version declares indexes). */
  mirror: PayloadMirror | undefined

  constructor(
    readonly key: IndexKey,
    readonly dimension: number,
    readonly metric: Metric,
    readonly tuning: IndexTuning
  ) {
    this.hnsw = new hnswlib.HierarchicalNSW(metric, dimension)
    this.scratch = Array.from({ length: dimension }, () => 0.5)
    this.slotsAt = Math.ceil((dimension * 4) / 64) * 64
    this.outAt = this.slotsAt + CHUNK * 4
    this.wasmBase = this.outAt + CHUNK * 4
    const floats = dimension * 1024
    if (dimension % 4 === 0 && wasmApi) {
      try {
        const memory = new wasmApi.Memory({ initial: Math.ceil((this.wasmBase + floats * 4) / PAGE) })
        const k = kernels(memory)
        if (k) this.wasm = { memory, kernel: metric === "cosine" ? k.dot : k.l2 }
      } catch {
        this.wasm = undefined
      }
    }
    this.data = this.wasm ? new Float32Array(this.wasm.memory.buffer, this.wasmBase, floats) : new Float32Array(floats)
  }

  /** Room for `floats` stored floats (in place in the kernel's memory while it can grow). */
  private grow(floats: number) {
    if (this.wasm) {
      const bytes = this.wasmBase + floats * 4
      const have = this.wasm.memory.buffer.byteLength
      try {
        if (bytes > have) this.wasm.memory.grow(Math.ceil((bytes - have) / PAGE))
        this.data = new Float32Array(this.wasm.memory.buffer, this.wasmBase, floats)
        return
      } catch {
        // past the 4 GiB of a WebAssembly memory: a plain array from here on
        const old = new Float32Array(this.wasm.memory.buffer, this.wasmBase, this.data.length)
        this.wasm = undefined
        this.data = new Float32Array(floats)
        this.data.set(old)
        return
      }
    }
    const bigger = new Float32Array(floats)
    bigger.set(this.data)
    this.data = bigger
  }

  init(capacity: number) {
    this.capacity = Math.max(1024, capacity)
    this.count = 0
    this.hnsw.initIndex({
      maxElements: this.capacity,
      m: this.tuning.m,
      efConstruction: this.tuning.efConstruction,
      randomSeed: 100
    })
  }

  get size() {
    return this.labels.size
  }

  private store(label: number, op: string, vector: Float32Array | ReadonlyArray<number>) {
    let slot = this.slots.get(label)
    if (slot === undefined) {
      slot = this.free.pop() ?? this.used++
      this.slots.set(label, slot)
      if ((slot + 1) * this.dimension > this.data.length) {
        this.grow(Math.max(this.data.length * 2, (slot + 1) * this.dimension))
      }
      if (slot >= this.slotOp.length) {
        const n = Math.max(this.slotOp.length * 2, slot + 1)
        const labels = new Float64Array(n)
        labels.set(this.slotLabel)
        this.slotLabel = labels
        const ops = new Int32Array(n).fill(-1)
        ops.set(this.slotOp)
        this.slotOp = ops
      }
    }
    let code = this.opCodes.get(op)
    if (code === undefined) {
      code = this.opNames.length
      this.opCodes.set(op, code)
      this.opNames.push(op)
    }
    this.slotLabel[slot] = label
    this.slotOp[slot] = code
    const o = slot * this.dimension
    normalizeInto(vector, this.data, o, this.metric)
  }

  /** The storage slot of a label's vector (stable until the label is removed). */
  slotOf(label: number): number | undefined {
    return this.slots.get(label)
  }

  /** Records a live label without touching the graph (the graph already has it). */
  track(row: Row) {
    this.labels.set(row.seq, { id: row.id, op: row.op })
    this.store(row.seq, row.op, row.vector)
    if (this.mirror && row.payload !== undefined) this.mirror.set(row.seq, row.payload)
    if (row.seq > this.maxSeq) this.maxSeq = row.seq
  }

  add(row: Row) {
    if (this.count >= this.capacity) {
      this.hnsw.resizeIndex(this.capacity * 2)
      this.capacity *= 2
    }
    this.hnsw.addPoint(Array.from(row.vector), row.seq)
    this.count = this.hnsw.getCurrentCount()
    this.track(row)
    this.dirty = true
  }

  remove(label: number) {
    if (!this.labels.has(label)) return
    this.labels.delete(label)
    this.mirror?.delete(label)
    const slot = this.slots.get(label)
    if (slot !== undefined) {
      this.slots.delete(label)
      this.slotOp[slot] = -1
      this.free.push(slot)
    }
    try {
      this.hnsw.markDelete(label)
    } catch {
      // already deleted
    }
    this.dirty = true
  }

  /** Distance between the stored vector of `label` and a prepared query (see `prepare`). */
  distance(label: number, q: Float32Array | ReadonlyArray<number>): number {
    const slot = this.slots.get(label)
    if (slot === undefined) return Number.POSITIVE_INFINITY
    const o = slot * this.dimension
    const d = this.dimension
    const data = this.data
    if (this.metric === "cosine") {
      let dot = 0
      for (let i = 0; i < d; i++) dot += q[i]! * data[o + i]!
      return 1 - dot
    }
    let s = 0
    for (let i = 0; i < d; i++) {
      const x = q[i]! - data[o + i]!
      s += x * x
    }
    return s
  }

  vectorOf(label: number): Float32Array | undefined {
    const slot = this.slots.get(label)
    return slot === undefined ? undefined : this.data.slice(slot * this.dimension, (slot + 1) * this.dimension)
  }

  /** The query as the stored vectors are (normalized for cosine), as the plain array hnswlib takes. */
  prepare(v: Float32Array | ReadonlyArray<number>): Array<number> {
    const out = new Array<number>(this.dimension)
    normalizeInto(v, out, 0, this.metric)
    return out
  }

  /** Exact k nearest among `labels` (those `accept` takes, `skip` aside); `q` as given. */
  exact(
    q: Float32Array | ReadonlyArray<number>,
    k: number,
    labels: Iterable<number>,
    skip?: number,
    accept?: (label: number) => boolean
  ): Array<{ label: number; distance: number }> {
    const slots: Array<number> = []
    for (const label of labels) {
      if (label === skip || (accept !== undefined && !accept(label))) continue
      const slot = this.slots.get(label)
      if (slot !== undefined) slots.push(slot)
    }
    return this.nearest(q, k, [slots], undefined)
  }

  /**
   * Exact k nearest among storage slots (`parts`, each slot once): a slot counts when its
   * operation is visible (`ops`, by operation code) and, unless `exact`, `accept` takes its
   * label. One pass over the stored vectors, without a lookup per slot when every
   * operation is visible and the set is exact.
   */
  exactSlots(
    q: Float32Array | ReadonlyArray<number>,
    k: number,
    parts: ReadonlyArray<ArrayLike<number>>,
    visibleOp: (op: string) => boolean,
    exact: boolean,
    accept: (label: number) => boolean,
    skip?: number
  ): Array<{ label: number; distance: number }> {
    const ops = new Uint8Array(this.opNames.length)
    let hidden = false
    for (let i = 0; i < ops.length; i++) {
      ops[i] = visibleOp(this.opNames[i]!) ? 1 : 0
      if (ops[i] === 0) hidden = true
    }
    const slotOp = this.slotOp
    const slotLabel = this.slotLabel
    // free slots are not listed (the mirror drops a removed label's slot with it), so with
    // every operation visible and an exact set no slot needs a test
    if (!hidden && exact && skip === undefined) return this.nearest(q, k, parts, undefined)
    return this.nearest(q, k, parts, (slot) => {
      const op = slotOp[slot]!
      if (op < 0 || ops[op] !== 1) return false
      const label = slotLabel[slot]!
      return label !== skip && (exact || accept(label))
    })
  }

  /**
   * The exact k nearest of the slots listed in `parts` that `take` takes (all without
   * it); `q` as given (normalized here under cosine). With the kernel, the slots go to it
   * in chunks and it reads their vectors side by side (dot products under cosine, whose
   * vectors are unit or zero: the distance is 1 - q.v; squared L2 distances otherwise);
   * the k best are kept here, reading nothing per slot but its result.
   */
  private nearest(
    q: Float32Array | ReadonlyArray<number>,
    k: number,
    parts: ReadonlyArray<ArrayLike<number>>,
    take: ((slot: number) => boolean) | undefined
  ): Array<{ label: number; distance: number }> {
    const d = this.dimension
    const wasm = this.wasm
    // the query where the kernel reads it (the start of its memory), or a plain array
    const query = wasm ? new Float32Array(wasm.memory.buffer, 0, d) : new Float32Array(d)
    normalizeInto(q, query, 0, this.metric)
    const cosine = this.metric === "cosine"
    const slotLabel = this.slotLabel
    const heap = new TopK(k)
    if (wasm) {
      const buffer = wasm.memory.buffer
      const chunk = new Int32Array(buffer, this.slotsAt, CHUNK)
      const out = new Float32Array(buffer, this.outAt, CHUNK)
      let n = 0
      const flush = () => {
        // padded to whole rounds of the kernel with the first slot again (its extra results unread)
        const rounds = Math.ceil(n / LANES) * LANES
        for (let i = n; i < rounds; i++) chunk[i] = chunk[0]!
        wasm.kernel(0, this.wasmBase, d * 4, this.slotsAt, rounds, this.outAt)
        let worst = heap.worst
        for (let i = 0; i < n; i++) {
          const distance = cosine ? 1 - out[i]! : out[i]!
          if (distance < worst) {
            heap.push(distance, slotLabel[chunk[i]!]!)
            worst = heap.worst
          }
        }
        n = 0
      }
      for (const part of parts) {
        for (let p = 0; p < part.length; p++) {
          const slot = part[p]!
          if (take !== undefined && !take(slot)) continue
          chunk[n++] = slot
          if (n === CHUNK) flush()
        }
      }
      if (n > 0) flush()
    } else {
      const data = this.data
      for (const part of parts) {
        for (let p = 0; p < part.length; p++) {
          const slot = part[p]!
          if (take !== undefined && !take(slot)) continue
          const o = slot * d
          let sum = 0
          if (cosine) {
            for (let i = 0; i < d; i++) sum += query[i]! * data[o + i]!
            sum = 1 - sum
          } else {
            for (let i = 0; i < d; i++) {
              const x = query[i]! - data[o + i]!
              sum += x * x
            }
          }
          if (sum < heap.worst) heap.push(sum, slotLabel[slot]!)
        }
      }
    }
    return heap.sorted().map(([distance, label]) => ({ label, distance }))
  }

  /**
   * The k nearest labels accepted by `accept`. Filtering happens here in JS on
   * over-fetched candidates (never inside hnswlib's native search, whose JS filter
   * callback can crash the process).
   *
   * With a matching set (`matching`: its size, labels and test), the search picks by
   * cost: an exact scan of the matching set (`size` distances in JS), or one HNSW
   * traversal fetching enough candidates that k of them match at the set's
   * selectivity (about `2M` native distances per candidate), whichever is cheaper;
   * when the traversal finds fewer than k, the exact scan follows (k whenever k match).
   * Without one, the fetch widens until k are accepted, then turns exact.
   * `q` is the query as given (normalized here only where needed).
   */
  search(
    q: Float32Array | ReadonlyArray<number>,
    k: number,
    ef: number,
    accept: Accept,
    matching?: Matching | { readonly size: number; readonly labels: Iterable<number> },
    skip?: number
  ): Array<Found> {
    const live = this.labels.size
    if (live === 0) return []
    const total = this.count
    const want = k + (skip !== undefined ? 1 : 0)
    if (matching !== undefined) {
      const slots = "slots" in matching ? matching.slots : undefined
      const visibleOp = "visibleOp" in matching ? matching.visibleOp : undefined
      const scan = () =>
        slots !== undefined && visibleOp !== undefined
          ? this.exactSlots(q, k, slots.parts, visibleOp, slots.exact, accept, skip)
          : this.exact(q, k, matching.labels, skip, accept)
      const plan = this.plan(matching.size, want, ef)
      if (plan.exact) return scan()
      const out = this.traverse(q, k, plan.fetch, plan.ef, accept, skip)
      return out.length >= k ? out : scan()
    }
    let fetch = Math.min(total, want)
    for (;;) {
      const n = Math.min(fetch, this.capacity)
      const out = this.traverse(q, k, n, Math.max(ef, n), accept, skip)
      if (out.length >= k) return out
      if (n >= total) break
      fetch = Math.min(total, fetch * 4)
    }
    // candidates ran out (graph unreachable parts, or most labels not accepted): exact
    return this.exact(q, k, this.labels.keys(), skip, accept)
  }

  /**
   * Exact scan or traversal for a matching set of `size` labels: the candidates a
   * traversal fetches so that about twice `want` of them match, and the costs of
   * both (in distance computations of the scan's kernel, a native one in the graph a quarter of one).
   *
   * The fetch assumes the matches are spread like the rest; a filter aligned against
   * the query (its matches far from where the walk goes) finds fewer than `want`, and
   * the exact scan follows the traversal. That fallback is counted at even odds
   * (`FALLBACK_ODDS`): a traversal costs its own distances plus half the scan, so the
   * scan wins up to twice the traversal's cost, and a failed traversal costs at most
   * three times what the scan alone would have.
   */
  plan(size: number, want: number, ef: number) {
    const live = Math.max(1, this.labels.size)
    const selectivity = Math.min(1, Math.max(size, 1) / live)
    const fetch = Math.min(this.count, Math.ceil((2 * want) / selectivity) + 16)
    const searchEf = Math.max(ef, fetch)
    // the scan's distances in the WebAssembly kernel; about twice as dear in plain JS
    const exactCost = size * (this.wasm ? 1 : 2)
    const traverseCost = searchEf * 2 * this.tuning.m * 0.25 + FALLBACK_ODDS * exactCost
    const exact =
      size <= want ||
      (this.tuning.exactThreshold !== undefined && size <= this.tuning.exactThreshold) ||
      fetch >= this.count ||
      exactCost <= traverseCost
    return { exact, fetch, ef: searchEf, exactCost, traverseCost }
  }

  /** One HNSW search fetching `n` candidates at effort `searchEf`, the first k accepted. */
  private traverse(
    q: Float32Array | ReadonlyArray<number>,
    k: number,
    n: number,
    searchEf: number,
    accept: Accept,
    skip: number | undefined
  ): Array<Found> {
    // hnswlib reads a plain array synchronously: fill one kept for the purpose instead of allocating
    let query: Array<number>
    if (Array.isArray(q)) query = q as Array<number>
    else {
      query = this.scratch
      for (let i = 0; i < q.length; i++) query[i] = q[i]!
    }
    n = Math.min(n, this.count)
    if (searchEf !== this.ef) {
      this.hnsw.setEf(searchEf)
      this.ef = searchEf
    }
    const r = this.hnsw.searchKnn(query, n)
    const out: Array<Found> = []
    for (let i = 0; i < r.neighbors.length && out.length < k; i++) {
      const label = r.neighbors[i]!
      // one lookup per candidate: its entry goes to `accept` and its id to the hit
      const live = this.labels.get(label)
      if (label !== skip && live !== undefined && accept(label, live)) {
        out.push({ label, distance: r.distances[i]!, id: live.id })
      }
    }
    return out
  }

  // ----- persistence -----

  files(directory: string) {
    const stem = path.join(directory, fileStem(this.key))
    return { index: `${stem}.hnsw`, meta: `${stem}.json` }
  }

  persist(directory: string, instance: string) {
    fs.mkdirSync(directory, { recursive: true })
    const { index, meta } = this.files(directory)
    const tmp = `${index}.${process.pid}.tmp`
    this.hnsw.writeIndexSync(tmp)
    const m: Meta = {
      format: 1,
      instance,
      key: keyString(this.key),
      dimension: this.dimension,
      metric: this.metric,
      m: this.tuning.m,
      efConstruction: this.tuning.efConstruction,
      maxSeq: this.maxSeq,
      count: this.labels.size,
      size: fs.statSync(tmp).size,
      sha256: sha256File(tmp)
    }
    fs.renameSync(tmp, index)
    fs.writeFileSync(`${meta}.tmp`, JSON.stringify(m))
    fs.renameSync(`${meta}.tmp`, meta)
    this.dirty = false
  }

  /**
   * Loads the graph from `directory` when its files are present, whole (size and
   * checksum as recorded) and made for this database and key. Returns the reason
   * it could not, or undefined on success.
   */
  load(directory: string, instance: string): string | undefined {
    const { index, meta } = this.files(directory)
    if (!fs.existsSync(index) || !fs.existsSync(meta)) return "missing"
    let m: Meta
    try {
      m = JSON.parse(fs.readFileSync(meta, "utf8"))
    } catch {
      return "corrupt metadata"
    }
    if (m.format !== 1 || m.instance !== instance || m.key !== keyString(this.key)) return "made for another database"
    if (m.dimension !== this.dimension || m.metric !== this.metric) return "made for another dimension or metric"
    const size = fs.statSync(index).size
    if (size !== m.size) return `truncated (${size} bytes, expected ${m.size})`
    if (sha256File(index) !== m.sha256) return "corrupt (checksum mismatch)"
    try {
      this.hnsw.readIndexSync(index)
      this.capacity = this.hnsw.getMaxElements()
      this.count = this.hnsw.getCurrentCount()
    } catch (e) {
      return `unreadable (${StorageError.messageOf(e)})`
    }
    this.maxSeq = m.maxSeq
    return undefined
  }
}

/** The odds, in the cost model of filtered search, that a traversal finds fewer than k and scans after all. */
const FALLBACK_ODDS = 0.5

/** A bounded max-heap keeping the k smallest distances. */
export class TopK<T = number> {
  private readonly items: Array<[number, T]> = []
  constructor(readonly k: number) {}
  get worst() {
    return this.items.length < this.k ? Number.POSITIVE_INFINITY : this.items[0]![0]
  }
  push(d: number, v: T) {
    const h = this.items
    if (h.length < this.k) {
      h.push([d, v])
      let i = h.length - 1
      while (i > 0) {
        const p = (i - 1) >> 1
        if (h[p]![0] >= h[i]![0]) break
        ;[h[p], h[i]] = [h[i]!, h[p]!]
        i = p
      }
    } else if (d < h[0]![0]) {
      h[0] = [d, v]
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && h[l]![0] > h[m]![0]) m = l
        if (r < h.length && h[r]![0] > h[m]![0]) m = r
        if (m === i) break
        ;[h[m], h[i]] = [h[i]!, h[m]!]
        i = m
      }
    }
  }
  sorted(): Array<[number, T]> {
    return [...this.items].sort((a, b) => a[0] - b[0])
  }
}
