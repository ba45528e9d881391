/**
 * Payload indexes: fields of a type's payload declared as indexed
 * (`indexes: ["payload.genre"]`). Each is a real database index on the annotations
 * table (an expression index over the same expression the query compiler writes,
 * so queries use it), and each vector index keeps the indexed values of its labels
 * in memory, sorted, so a filtered kNN on indexed fields counts and lists its
 * matching set without a SQL round trip.
 */
import type { Database } from "@org/storage"
import * as crypto from "node:crypto"
import type { Condition } from "../Query.js"
import type { Tables } from "./tables.js"

/** The table and columns the payload indexes cover, their names checked by tsc. */
const ANNOTATIONS: keyof Tables = "marken_annotations"
type Column = keyof Tables["marken_annotations"]
const PAYLOAD: Column = "payload"
const TYPE: Column = "type"
const VERSION: Column = "version"

/** A declared index path (`payload.a.b`) as the path inside the payload (`["a", "b"]`); undefined when malformed. */
export const parsePath = (declared: string): ReadonlyArray<string> | undefined => {
  const m = /^payload\.([A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7})$/.exec(declared)
  return m ? m[1]!.split(".") : undefined
}

/** How a field is compared: as a number (ranges, numeric eq), as text (strings, booleans), or both when unknown. */
export type Kind = "number" | "text"

/** The kinds of a payload field, from the type's JSON Schema (both when the schema does not say). */
export const kindsOf = (jsonSchema: Readonly<Record<string, unknown>>, path: ReadonlyArray<string>): Array<Kind> => {
  const defs = (jsonSchema.$defs ?? {}) as Record<string, Record<string, unknown>>
  const deref = (s: Record<string, unknown> | undefined) => {
    for (let i = 0; i < 8 && s && typeof s.$ref === "string"; i++) {
      s = defs[(s.$ref as string).replace(/^#\/\$defs\//, "")]
    }
    return s
  }
  let s: Record<string, unknown> | undefined = deref(jsonSchema as Record<string, unknown>)
  for (const p of path) {
    const props = s?.properties as Record<string, Record<string, unknown>> | undefined
    s = deref(props?.[p])
  }
  switch (s?.type) {
    case "integer":
    case "number":
      return ["number"]
    case "string":
    case "boolean":
      return ["text"]
    default:
      return ["number", "text"]
  }
}

/** The database index of a payload field and kind (one per field and kind, shared by every type declaring it). */
export const dbIndexName = (kind: Kind, path: ReadonlyArray<string>) =>
  `marken_px_${kind === "number" ? "n" : "t"}_${crypto.createHash("sha1").update(path.join(".")).digest("hex").slice(0, 16)}`

/**
 * The indexed expression: exactly what `query.ts` compiles for a condition on the
 * field (the number, or the text cast), so both backends' planners match it.
 */
export const dbIndexExpression = (caps: Database.Capabilities, kind: Kind, path: ReadonlyArray<string>) =>
  kind === "number" ? caps.jsonNumber(PAYLOAD, path) : `cast(${caps.jsonText(PAYLOAD, path)} as text)`

/** `create index` for a field and kind: type and version first, then the expression. */
export const createIndexSql = (caps: Database.Capabilities, kind: Kind, path: ReadonlyArray<string>) =>
  `create index if not exists ${dbIndexName(kind, path)} on ${ANNOTATIONS} (${TYPE}, ${VERSION}, (${dbIndexExpression(caps, kind, path)}))`

export const dropIndexSql = (name: string) => `drop index if exists ${name}`

/** The value at a path of a payload (undefined when absent). */
export const valueAt = (payload: unknown, path: ReadonlyArray<string>): unknown => {
  let v: unknown = payload
  for (const p of path) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined
    v = (v as Record<string, unknown>)[p]
  }
  return v
}

/** A value as the text comparisons see it. */
const textOf = (v: unknown): string | undefined => {
  if (v === undefined || v === null) return undefined
  if (typeof v === "string") return v
  if (typeof v === "number") return String(v)
  if (typeof v === "boolean") return v ? "true" : "false"
  return JSON.stringify(v)
}

const scalarAccepts = (q: string | number | boolean, v: unknown) => {
  if (typeof q === "number") return typeof v === "number" && v === q
  const t = textOf(v)
  if (typeof q === "boolean") return q ? t === "true" || t === "1" : t === "false" || t === "0"
  return t === q
}

/** Whether a condition accepts a value, with the semantics of the SQL `query.ts` writes. */
export const accepts = (c: Condition, v: unknown): boolean => {
  switch (c.op) {
    case "eq":
      return scalarAccepts(c.value, v)
    case "in":
      return c.values.some((q) => scalarAccepts(q, v))
    case "range":
      return (
        typeof v === "number" &&
        (c.gte === undefined || v >= c.gte) &&
        (c.gt === undefined || v > c.gt) &&
        (c.lte === undefined || v <= c.lte) &&
        (c.lt === undefined || v < c.lt)
      )
    case "exists":
      return c.exists === false ? v === undefined || v === null : v !== undefined && v !== null
  }
}

/** A matching set: its size (an upper bound), its labels (a superset, checked by `accept`) and the test. */
export interface Matching {
  readonly size: number
  readonly labels: Iterable<number>
  readonly accept: (label: number) => boolean
  /**
   * The same set as the vector index's storage slots (see `PayloadMirror`), each at most
   * once, in parts; `exact` when every slot satisfies the conditions (visibility aside),
   * so an exact scan tests only the operation of each slot.
   */
  readonly slots?: { readonly parts: ReadonlyArray<ArrayLike<number>>; readonly exact: boolean }
  /** Which operations' vectors the search may return (the runs or the `operationId` of the filter). */
  readonly visibleOp?: (op: string) => boolean
}

interface Sorted {
  /** Labels whose value is a number, by value (and their slots, in the same order). */
  readonly numbers: Float64Array
  readonly numberLabels: Float64Array
  readonly numberSlots: Int32Array
  /** Labels (and slots) by the text of their value. */
  readonly texts: Map<string, Array<number>>
  readonly textSlots: Map<string, Int32Array>
  /** Every label had a slot when sorted. */
  readonly slotted: boolean
}

/** Where a condition's matching labels are: their count, the labels, their slots, whether they are exactly the matches. */
interface Source {
  readonly size: number
  readonly labels: Iterable<number>
  readonly slots: ReadonlyArray<ArrayLike<number>>
  /** Every label satisfies the condition, and none is listed twice. */
  readonly exact: boolean
}

const lowerBound = (xs: Float64Array, x: number, strict: boolean) => {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (strict ? xs[mid]! <= x : xs[mid]! < x) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * The indexed payload values of a vector index's labels, sorted on demand after changes.
 * With `slotOf` (the vector index's storage slot of a label), the sorted lists carry the
 * slots too, so an exact scan reads the matching vectors without a lookup per label: the
 * slot of a label in the mirror stays the same until the label is deleted, which re-sorts.
 */
export class PayloadMirror {
  private readonly values = new Map<number, ReadonlyArray<unknown>>()
  private sorted: Array<Sorted> | undefined

  /** The field paths (as in `where`) this mirror answers, and their positions. */
  readonly fields: ReadonlyMap<string, number>

  constructor(
    readonly paths: ReadonlyArray<ReadonlyArray<string>>,
    private readonly slotOf: (label: number) => number | undefined = () => undefined
  ) {
    this.fields = new Map(paths.map((p, i) => [p.join("."), i]))
  }

  set(label: number, payload: unknown) {
    this.values.set(
      label,
      this.paths.map((p) => valueAt(payload, p))
    )
    this.sorted = undefined
  }

  delete(label: number) {
    if (this.values.delete(label)) this.sorted = undefined
  }

  /** Labels with values. */
  get size() {
    return this.values.size
  }

  /** Whether every condition is on an indexed field. */
  answers(where: ReadonlyArray<Condition>) {
    return where.every((c) => this.fields.has(c.field))
  }

  private build(): Array<Sorted> {
    if (this.sorted) return this.sorted
    const entries = [...this.values]
    this.sorted = this.paths.map((_, i) => {
      const nums: Array<[number, number]> = []
      const texts = new Map<string, Array<number>>()
      for (const [label, vs] of entries) {
        const v = vs[i]
        if (typeof v === "number") nums.push([v, label])
        const t = textOf(v)
        if (t !== undefined) {
          const list = texts.get(t)
          if (list) list.push(label)
          else texts.set(t, [label])
        }
      }
      nums.sort((a, b) => a[0] - b[0])
      const slotsOf = (labels: ArrayLike<number>) => Int32Array.from(labels, (l) => this.slotOf(l) ?? -1)
      const numberLabels = Float64Array.from(nums, (n) => n[1])
      const numberSlots = slotsOf(numberLabels)
      const textSlots = new Map([...texts].map(([t, labels]) => [t, slotsOf(labels)]))
      return {
        numbers: Float64Array.from(nums, (n) => n[0]),
        numberLabels,
        numberSlots,
        texts,
        textSlots,
        slotted: !numberSlots.includes(-1) && [...textSlots.values()].every((xs) => !xs.includes(-1))
      }
    })
    return this.sorted
  }

  /** The labels one condition can match, when the sorted values narrow them (not for `exists`). */
  private source(c: Condition, s: Sorted): Source | undefined {
    const noSlots = new Int32Array(0)
    type Part = { readonly labels: ArrayLike<number> & Iterable<number>; readonly slots: ArrayLike<number> }
    const text = (t: string): Part => ({ labels: s.texts.get(t) ?? [], slots: s.textSlots.get(t) ?? noSlots })
    const texts = (q: string | number | boolean) =>
      typeof q === "boolean" ? (q ? ["true", "1"] : ["false", "0"]).map(text) : [text(String(q))]
    const numbers = (lo: number, hi: number): Part => ({
      labels: s.numberLabels.subarray(lo, Math.max(lo, hi)),
      slots: s.numberSlots.subarray(lo, Math.max(lo, hi))
    })
    const number = (q: number) => numbers(lowerBound(s.numbers, q, false), lowerBound(s.numbers, q, true))
    switch (c.op) {
      case "eq":
        return concat(typeof c.value === "number" ? [number(c.value)] : texts(c.value), true)
      case "in": {
        const values = [...new Set(c.values)]
        // distinct numbers, or distinct strings, match disjoint lists; a mix may list a label twice
        const disjoint = values.every((q) => typeof q === "number") || values.every((q) => typeof q === "string")
        return concat(
          values.flatMap((q): Array<Part> => (typeof q === "number" ? [number(q)] : texts(q))),
          disjoint
        )
      }
      case "range": {
        const lo =
          c.gte !== undefined && (c.gt === undefined || c.gte > c.gt)
            ? lowerBound(s.numbers, c.gte, false)
            : c.gt !== undefined
              ? lowerBound(s.numbers, c.gt, true)
              : 0
        const hi =
          c.lte !== undefined && (c.lt === undefined || c.lte < c.lt)
            ? lowerBound(s.numbers, c.lte, true)
            : c.lt !== undefined
              ? lowerBound(s.numbers, c.lt, false)
              : s.numbers.length
        return concat([numbers(lo, hi)], true)
      }
      case "exists":
        return undefined
    }
  }

  /**
   * The matching set of conditions on indexed fields (all of them must be: see
   * `answers`), narrowed by the most selective one; `visible` tests the rest
   * (runs, operation).
   */
  match(where: ReadonlyArray<Condition>, visible: (label: number) => boolean): Matching {
    const sorted = this.build()
    let best: Source | undefined
    let slotted = false
    for (const c of where) {
      const field = sorted[this.fields.get(c.field)!]!
      const src = this.source(c, field)
      if (src && (!best || src.size < best.size)) {
        best = src
        slotted = field.slotted
      }
    }
    const tests = where.map((c) => ({ c, i: this.fields.get(c.field)! }))
    const values = this.values
    const accept = (label: number) => {
      if (!visible(label)) return false
      const vs = values.get(label)
      if (!vs) return false
      for (const t of tests) if (!accepts(t.c, vs[t.i])) return false
      return true
    }
    if (!best) return { size: values.size, labels: values.keys(), accept }
    // slots only when every label had one (a mirror built without `slotOf` has none)
    const exact = best.exact && where.length === 1
    return {
      size: best.size,
      labels: best.labels,
      accept,
      ...(slotted && best.exact ? { slots: { parts: best.slots, exact } } : {})
    }
  }
}

const concat = (
  parts: ReadonlyArray<{ readonly labels: ArrayLike<number> & Iterable<number>; readonly slots: ArrayLike<number> }>,
  exact: boolean
): Source => {
  let size = 0
  for (const p of parts) size += p.labels.length
  return {
    size,
    labels: {
      *[Symbol.iterator]() {
        for (const p of parts) yield* p.labels
      }
    },
    slots: parts.map((p) => p.slots),
    exact
  }
}
