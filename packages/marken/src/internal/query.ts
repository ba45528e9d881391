import type { Database } from "@org/storage"
import { sql, type Expression, type RawBuilder, type SqlBool } from "kysely"
import * as Region from "../Region.js"
import type { Condition, GroupBy, Query } from "../Query.js"
import { InvalidQueryError } from "../MarkenError.js"
import type { AnnotationRow, Tables } from "./tables.js"

/** A column of `marken_annotations as a` (the alias every query here reads through), its name checked by tsc. */
export const a = (column: keyof Tables["marken_annotations"] & string) => sql.ref(`a.${column}`)

/** A column of `marken_current as c`, its name checked by tsc. */
const current = (column: keyof Tables["marken_current"] & string) => sql.ref(`c.${column}`)

/** One of marken's tables, its name checked by tsc. */
export const table = (name: keyof Tables & string) => sql.table(name)

const payloadColumn: keyof Tables["marken_annotations"] = "payload"

const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/

/** The payload field as text/number: path segments are identifiers (checked), never user SQL. */
export const payloadField = (caps: Database.Capabilities, field: string, alias = "a"): RawBuilder<unknown> => {
  const path = field.split(".")
  if (path.length === 0 || path.length > 8 || !path.every((p) => identifier.test(p))) {
    throw new InvalidQueryError({ path: "field", message: `invalid field path ${JSON.stringify(field)}` })
  }
  return sql.raw(caps.jsonText(`${alias}.${payloadColumn}`, path))
}

/** A payload field as a number, NULL where it holds anything but a JSON number (no failing casts). */
const payloadNumber = (caps: Database.Capabilities, field: string, alias = "a"): RawBuilder<unknown> => {
  payloadField(caps, field, alias) // validates the path
  return sql.raw(caps.jsonNumber(`${alias}.${payloadColumn}`, field.split(".")))
}

const asText = (e: RawBuilder<unknown>) => sql`cast(${e} as text)`
const scalarMatch = (
  caps: Database.Capabilities,
  e: RawBuilder<unknown>,
  n: RawBuilder<unknown>,
  value: string | number | boolean
) => {
  if (typeof value === "number") return sql<SqlBool>`${n} = ${value}`
  if (typeof value === "boolean") {
    return value ? sql<SqlBool>`${asText(e)} in ('true', '1')` : sql<SqlBool>`${asText(e)} in ('false', '0')`
  }
  return sql<SqlBool>`${asText(e)} = ${value}`
}

const condition = (caps: Database.Capabilities, c: Condition, index: number): Expression<SqlBool> => {
  const e = payloadField(caps, c.field)
  const n = payloadNumber(caps, c.field)
  switch (c.op) {
    case "eq":
      return scalarMatch(caps, e, n, c.value)
    case "in": {
      const parts = c.values.map((v) => scalarMatch(caps, e, n, v))
      return sql<SqlBool>`(${sql.join(parts, sql` or `)})`
    }
    case "range": {
      const parts: Array<RawBuilder<SqlBool>> = []
      if (c.gte !== undefined) parts.push(sql<SqlBool>`${n} >= ${c.gte}`)
      if (c.gt !== undefined) parts.push(sql<SqlBool>`${n} > ${c.gt}`)
      if (c.lte !== undefined) parts.push(sql<SqlBool>`${n} <= ${c.lte}`)
      if (c.lt !== undefined) parts.push(sql<SqlBool>`${n} < ${c.lt}`)
      if (parts.length === 0) {
        throw new InvalidQueryError({ path: `where.${index}`, message: "a range condition needs gte, gt, lte or lt" })
      }
      return sql<SqlBool>`(${n} is not null and ${sql.join(parts, sql` and `)})`
    }
    case "exists":
      return c.exists === false ? sql<SqlBool>`${e} is null` : sql<SqlBool>`${e} is not null`
  }
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (m) => `\\${m}`)

const sortColumn = (sort: Query["sort"]) => {
  switch (sort) {
    case "created":
      return a("created_ms")
    case "start":
      return sql`coalesce(${a("start_ns")}, -1)`
    case "confidence":
      return sql`coalesce(${a("confidence")}, -1)`
    default:
      return undefined
  }
}

/** Where clauses of a query (on `marken_annotations as a`). Throws `InvalidQueryError`. */
export const conditions = (
  caps: Database.Capabilities,
  q: Query,
  /** The runs to read (a pinned cursor's); default: the current ones. */
  operations?: ReadonlyArray<string>
): Array<Expression<SqlBool>> => {
  const out: Array<Expression<SqlBool>> = []
  if (q.entities !== undefined) {
    if (q.entities.length === 0) out.push(sql<SqlBool>`1 = 0`)
    else out.push(sql<SqlBool>`${a("entity")} in (${sql.join(q.entities)})`)
  }
  if (q.version !== undefined && q.type === undefined) {
    throw new InvalidQueryError({ path: "version", message: "a version requires a type" })
  }
  if (q.type !== undefined) out.push(sql<SqlBool>`${a("type")} = ${q.type}`)
  if (q.version !== undefined) out.push(sql<SqlBool>`${a("version")} = ${q.version}`)
  if (q.time !== undefined) {
    // half-open ranges [start, end); an instant (start = end) covers its one nanosecond
    const endNs = Math.max(q.time.endNs, q.time.startNs + 1)
    out.push(
      sql<SqlBool>`(${a("start_ns")} is not null and ${a("start_ns")} < ${endNs} and (${a("end_ns")} > ${q.time.startNs} or (${a("end_ns")} = ${a("start_ns")} and ${a("start_ns")} >= ${q.time.startNs})))`
    )
  }
  if (q.region !== undefined) {
    const b = Region.bounds(q.region)
    out.push(
      sql<SqlBool>`(${a("x0")} is not null and ${a("x0")} <= ${b.x1} and ${a("x1")} >= ${b.x0} and ${a("y0")} <= ${b.y1} and ${a("y1")} >= ${b.y0})`
    )
  }
  q.where?.forEach((c, i) => out.push(condition(caps, c, i)))
  if (q.label !== undefined) {
    out.push(sql<SqlBool>`lower(${a("label")}) like ${`%${escapeLike(q.label.toLowerCase())}%`} escape '\\'`)
  }
  if (q.minConfidence !== undefined) out.push(sql<SqlBool>`${a("confidence")} >= ${q.minConfidence}`)
  if (q.producer !== undefined) out.push(sql<SqlBool>`${a("producer_key")} = ${q.producer}`)
  if (q.operationId !== undefined) out.push(sql<SqlBool>`${a("operation_id")} = ${q.operationId}`)
  else if (operations !== undefined) {
    out.push(
      operations.length === 0 ? sql<SqlBool>`1 = 0` : sql<SqlBool>`${a("operation_id")} in (${sql.join(operations)})`
    )
  } else
    out.push(
      sql<SqlBool>`${a("operation_id")} in (select ${current("operation_id")} from ${table("marken_current")} c)`
    )
  return out
}

/**
 * Where a page ends, and the runs the first page read: their operation ids (the
 * following pages read the same runs, even after a `finish`), or, when there are too
 * many to carry, a digest of them (the following pages fail if the runs changed).
 */
export interface Cursor {
  readonly v: number | string
  readonly id: string
  readonly ops?: ReadonlyArray<string> | undefined
  readonly digest?: string | undefined
}

export const encodeCursor = (c: Cursor): string =>
  Buffer.from(JSON.stringify([c.v, c.id, c.ops ?? c.digest ?? null])).toString("base64url")

export const decodeCursor = (s: string): Cursor => {
  try {
    const [v, id, pin] = JSON.parse(Buffer.from(s, "base64url").toString("utf8"))
    if ((typeof v === "number" || typeof v === "string") && typeof id === "string") {
      if (Array.isArray(pin) && pin.every((o) => typeof o === "string")) return { v, id, ops: pin }
      if (typeof pin === "string") return { v, id, digest: pin }
      if (pin === null || pin === undefined) return { v, id }
    }
  } catch {
    // fall through
  }
  throw new InvalidQueryError({ path: "cursor", message: "the cursor is not one this server returned" })
}

/** Order and keyset conditions for a page. */
export const page = (q: Query) => {
  const col = sortColumn(q.sort)
  const desc = q.order === "desc"
  const after: Array<Expression<SqlBool>> = []
  if (q.cursor !== undefined) {
    const c = decodeCursor(q.cursor)
    if (col === undefined) {
      after.push(desc ? sql<SqlBool>`${a("id")} < ${c.id}` : sql<SqlBool>`${a("id")} > ${c.id}`)
    } else {
      if (typeof c.v !== "number")
        throw new InvalidQueryError({ path: "cursor", message: "the cursor does not match the sort" })
      after.push(
        desc
          ? sql<SqlBool>`(${col} < ${c.v} or (${col} = ${c.v} and ${a("id")} < ${c.id}))`
          : sql<SqlBool>`(${col} > ${c.v} or (${col} = ${c.v} and ${a("id")} > ${c.id}))`
      )
    }
  }
  const dir = sql.raw(desc ? "desc" : "asc")
  const orderBy = col === undefined ? sql`${a("id")} ${dir}` : sql`${col} ${dir}, ${a("id")} ${dir}`
  const sortValue = (row: AnnotationRow): number | string => {
    switch (q.sort) {
      case "created":
        return Number(row.created_ms)
      case "start":
        return row.start_ns === null || row.start_ns === undefined ? -1 : Number(row.start_ns)
      case "confidence":
        return row.confidence === null || row.confidence === undefined ? -1 : Number(row.confidence)
      default:
        return row.id
    }
  }
  return { after, orderBy, sortValue }
}

/** The grouping expression of `count`. */
export const groupExpression = (caps: Database.Capabilities, by: GroupBy): RawBuilder<unknown> => {
  switch (by) {
    case "entity":
      return a("entity")
    case "type":
      return a("type")
    case "version":
      return a("version")
    case "label":
      return a("label")
    case "producer":
      return a("producer_key")
    case "operation":
      return a("operation_id")
    default: {
      const field = by.slice("payload.".length)
      return asText(payloadField(caps, field))
    }
  }
}
