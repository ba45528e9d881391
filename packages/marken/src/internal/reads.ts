/**
 * Reads: annotations by id, queries with cursor pages pinned to their runs, group
 * counts and typed decoding of payloads.
 */
import type { StorageError } from "@org/storage"
import { Vector } from "@org/storage"
import { Array as Arr, Effect, Schema } from "effect"
import { sql, type Expression, type SqlBool } from "kysely"
import * as crypto from "node:crypto"
import type * as Annotation from "../Annotation.js"
import type { Page } from "../Annotations.js"
import type * as AnnotationType from "../AnnotationType.js"
import { AnnotationNotFoundError, InvalidAnnotationError, InvalidQueryError } from "../MarkenError.js"
import * as Query from "../Query.js"
import type * as Region from "../Region.js"
import { formatPath } from "./codec.js"
import { toNumber, type Env } from "./env.js"
import * as Sql from "./query.js"
import type { AnnotationRow } from "./tables.js"
import { decodeQuery, firstIssue } from "./validation.js"

export type Reads = ReturnType<typeof make>

export const make = ({ caps, use }: Env) => {
  const toAnnotation = (r: AnnotationRow, vectors?: Record<string, Float32Array>): Annotation.Annotation => {
    const start = toNumber(r.start_ns)
    const num = toNumber(r.rate_num)
    return {
      id: r.id,
      operationId: r.operation_id,
      type: r.type,
      version: r.version,
      entity: r.entity,
      ...(r.key !== null ? { key: r.key } : {}),
      ...(start !== undefined ? { time: { startNs: start, endNs: Number(r.end_ns) } } : {}),
      ...(num !== undefined ? { frameRate: { num, den: Number(r.rate_den) } } : {}),
      ...(r.region !== null && r.region !== undefined ? { region: caps.readJson(r.region) as Region.Region } : {}),
      payload: caps.readJson(r.payload),
      ...(r.label !== null ? { label: r.label } : {}),
      ...(r.confidence !== null && r.confidence !== undefined ? { confidence: Number(r.confidence) } : {}),
      producer: {
        algorithm: r.algorithm,
        version: r.algorithm_version,
        ...(r.run !== null ? { run: r.run } : {}),
        key: r.producer_key
      },
      createdMs: Number(r.created_ms),
      ...(vectors ? { vectors } : {})
    }
  }

  const vectorsOf = (ids: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const out = new Map<string, Record<string, Float32Array>>()
      for (const part of Arr.chunksOf(ids, 500)) {
        const rows = yield* use("marken.vectors", (k) =>
          k
            .selectFrom("marken_vectors")
            .select(["annotation_id", "field", "vector"])
            .where("annotation_id", "in", part)
            .execute()
        )
        for (const r of rows) {
          const rec = out.get(r.annotation_id) ?? {}
          rec[r.field] = Vector.decodeUnsafe(r.vector)
          out.set(r.annotation_id, rec)
        }
      }
      return out
    })

  const findRow = (id: string): Effect.Effect<AnnotationRow, AnnotationNotFoundError | StorageError.StorageError> =>
    use("marken.get", (k) =>
      k.selectFrom("marken_annotations").selectAll().where("id", "=", id).executeTakeFirst()
    ).pipe(
      Effect.flatMap((r) =>
        r
          ? Effect.succeed(r)
          : Effect.fail(new AnnotationNotFoundError({ id, message: `annotation ${id} does not exist` }))
      )
    )

  const get = (id: string, opts?: { readonly withVectors?: boolean }) =>
    Effect.gen(function* () {
      const r = yield* findRow(id)
      const vs = opts?.withVectors ? ((yield* vectorsOf([id])).get(id) ?? {}) : undefined
      return toAnnotation(r, vs)
    })

  const compile = <A>(f: () => A) =>
    Effect.try({
      try: f,
      catch: (e) => (e instanceof InvalidQueryError ? e : new InvalidQueryError({ path: "query", message: String(e) }))
    })

  const where = (conds: ReadonlyArray<Expression<SqlBool>>) =>
    conds.length === 0 ? sql<SqlBool>`1 = 1` : sql<SqlBool>`${sql.join(conds, sql` and `)}`

  /** The current runs a query reads (its type, version and producer narrow them), sorted. */
  const currentRuns = (q: Query.Query) =>
    use("marken.query.runs", (k) => {
      let r = k.selectFrom("marken_current").select("operation_id")
      if (q.type !== undefined) r = r.where("type", "=", q.type)
      if (q.version !== undefined) r = r.where("version", "=", q.version)
      if (q.producer !== undefined) r = r.where("producer_key", "=", q.producer)
      return r.execute()
    }).pipe(Effect.map((rows) => rows.map((r) => r.operation_id as string).sort()))
  const digestOf = (ops: ReadonlyArray<string>) =>
    crypto.createHash("sha256").update(ops.join(",")).digest("base64url").slice(0, 22)
  /** A cursor carries the runs themselves up to this many; beyond, their digest. */
  const maxPinned = 40

  const query = (input: Query.Query) =>
    Effect.gen(function* () {
      const q = yield* decodeQuery(Query.Query, input)
      // the runs of the first page: later pages read the same ones (see `Sql.Cursor`)
      let ops: ReadonlyArray<string> | undefined
      let pin: { ops?: ReadonlyArray<string>; digest?: string } = {}
      if (q.operationId === undefined) {
        const cursor = q.cursor === undefined ? undefined : yield* compile(() => Sql.decodeCursor(q.cursor!))
        if (cursor?.ops !== undefined) {
          ops = cursor.ops
          pin = { ops }
        } else {
          const now = yield* currentRuns(q)
          const digest = digestOf(now)
          if (cursor?.digest !== undefined && cursor.digest !== digest) {
            return yield* new InvalidQueryError({
              path: "cursor",
              message:
                "the runs this query reads changed since its first page (an operation finished); query again without a cursor"
            })
          }
          ops = now
          pin = now.length <= maxPinned ? { ops: now } : { digest }
        }
      }
      const conds = yield* compile(() => Sql.conditions(caps, q, ops))
      const pg = yield* compile(() => Sql.page(q))
      const limit = q.limit ?? 100
      const rows = yield* use("marken.query", (k) =>
        k
          .selectFrom("marken_annotations as a")
          .selectAll("a")
          .where(where([...conds, ...pg.after]))
          .orderBy(pg.orderBy)
          .limit(limit + 1)
          .execute()
      )
      const more = rows.length > limit
      const pageRows = more ? rows.slice(0, limit) : rows
      const vs = q.withVectors ? yield* vectorsOf(pageRows.map((r) => r.id)) : undefined
      const last = pageRows[pageRows.length - 1]
      return {
        items: pageRows.map((r) => toAnnotation(r, vs ? (vs.get(r.id) ?? {}) : undefined)),
        ...(more && last ? { next: Sql.encodeCursor({ v: pg.sortValue(last), id: last.id, ...pin }) } : {})
      } satisfies Page
    })

  const count = (input: Query.Query, by: Query.GroupBy) =>
    Effect.gen(function* () {
      const q = yield* decodeQuery(Query.Query, input)
      yield* decodeQuery(Query.GroupBy, by, "by")
      const conds = yield* compile(() => Sql.conditions(caps, q))
      const g = yield* compile(() => Sql.groupExpression(caps, by))
      const rows = yield* use("marken.count", (k) =>
        sql<{
          key: unknown
          n: unknown
        }>`select ${g} as key, count(*) as n from ${Sql.table("marken_annotations")} a where ${where(conds)} group by ${g} order by n desc, key asc limit 1000`.execute(
          k
        )
      )
      return rows.rows.map((r) => ({
        key: r.key === null || r.key === undefined ? null : String(r.key),
        count: Number(r.n)
      }))
    })

  const decode = <A>(type: AnnotationType.AnnotationType<A, any>, a: Annotation.Annotation) =>
    Schema.decodeUnknown(type.payload)(a.payload).pipe(
      Effect.map((payload) => ({ ...a, payload }) as Annotation.Typed<A>),
      Effect.mapError((e) => {
        const issue = firstIssue(e)
        return new InvalidAnnotationError({
          path: formatPath("payload", issue?.path ?? []),
          message: issue?.message ?? e.message
        })
      })
    )

  return { toAnnotation, vectorsOf, findRow, get, compile, where, query, count, decode }
}
