/**
 * Vector search: kNN over an index (filtered by a query's matching set or by the
 * current runs) and the most similar pairs between two sets.
 */
import type { StorageError } from "@org/storage"
import { Vector } from "@org/storage"
import { Effect, Either } from "effect"
import type * as AnnotationType from "../AnnotationType.js"
import { InvalidQueryError, type MarkenFailureError } from "../MarkenError.js"
import * as Query from "../Query.js"
import type { Env } from "./env.js"
import { type Accept, keyString, TopK, type IndexKey, type VectorIndex } from "./hnsw.js"
import type { Matching } from "./payloadIndex.js"
import { type Entry, failure, type Indexes } from "./indexes.js"
import * as Sql from "./query.js"
import type { Reads } from "./reads.js"
import type { Runs } from "./runs.js"
import { checkKnn, decodeQuery } from "./validation.js"

export type Search = ReturnType<typeof make>

export const make = (
  { caps, nowMs, registry, syncInterval, tuning, use }: Env,
  runs: Runs,
  indexes: Indexes,
  reads: Reads
) => {
  const { ensureMirror, entryOf, loadIndex, sync } = indexes
  const { compile, where } = reads

  const hot = new Map<string, { readonly entry: Entry; readonly spec: AnnotationType.VectorField }>()
  const indexFor = (type: string, version: string, field: string) =>
    Effect.gen(function* () {
      const def = yield* registry.get(type, version)
      const spec = def.vectors[field]
      if (!spec) {
        return yield* new InvalidQueryError({
          path: "field",
          message: `${type} ${version} has no vector field ${field} (fields: ${Object.keys(def.vectors).join(", ") || "none"})`
        })
      }
      const key = { type, version, field }
      const idx = yield* loadIndex(key, spec)
      const entry = entryOf(key)
      yield* sync(entry, idx)
      yield* ensureMirror(entry, idx, def.indexes)
      hot.set(keyString(key), { entry, spec })
      return { idx, entry, spec }
    })

  const memoryOnly = (f: Query.Query | undefined, type: string, version: string) => {
    if (f === undefined) return true
    for (const [k, v] of Object.entries(f)) {
      if (v === undefined) continue
      if (k === "type" && v === type) continue
      if (k === "version" && v === version) continue
      if (
        k === "operationId" ||
        k === "sort" ||
        k === "order" ||
        k === "limit" ||
        k === "cursor" ||
        k === "withVectors"
      )
        continue
      return false
    }
    return true
  }

  /** The labels (vector seqs) of the index whose annotations match a query. */
  /** Matching sets of recent filters, valid while `generation` is unchanged (at most 64). */
  const filterCache = new Map<string, { readonly generation: number; readonly labels: Set<number> }>()
  const matchingLabels = (idx: VectorIndex, entry: Entry, q: Query.Query) =>
    Effect.gen(function* () {
      const { cursor: _c, limit: _l, sort: _s, order: _o, withVectors: _w, ...filter } = q
      const cacheKey = `${keyString(idx.key)} ${JSON.stringify(filter)}`
      const cached = filterCache.get(cacheKey)
      if (cached && cached.generation === runs.generation()) return cached.labels
      const atStart = runs.generation()
      const conds = yield* compile(() =>
        Sql.conditions(caps, { ...q, type: idx.key.type, version: idx.key.version, cursor: undefined })
      )
      const rows = yield* use("marken.search.filter", (k) =>
        k
          .selectFrom("marken_vectors as v")
          .select("v.seq")
          .where("v.field", "=", idx.key.field)
          .where("v.annotation_id", "in", (eb) =>
            eb.selectFrom("marken_annotations as a").select("a.id").where(where(conds))
          )
          .execute()
      )
      const labels = new Set(rows.map((r) => Number(r.seq)))
      let missing = false
      for (const l of labels) if (!idx.labels.has(l)) missing = true
      if (missing) yield* sync(entry, idx, true)
      else if (runs.generation() === atStart) {
        filterCache.delete(cacheKey)
        filterCache.set(cacheKey, { generation: atStart, labels })
        if (filterCache.size > 64) filterCache.delete(filterCache.keys().next().value!)
      }
      return labels
    })

  const visible = (idx: VectorIndex, operationId: string | undefined): Accept =>
    operationId !== undefined
      ? (label, live = idx.labels.get(label)) => live?.op === operationId
      : (label, live = idx.labels.get(label)) => live !== undefined && runs.currentOps.has(live.op)

  /** Whether an operation's vectors are visible: the filter's operation, or one of the current runs. */
  const visibleOp = (operationId: string | undefined) =>
    operationId !== undefined ? (op: string) => op === operationId : (op: string) => runs.currentOps.has(op)

  /**
   * The matching set of a filter from the payload mirror, without SQL, when the
   * filter has conditions and is only conditions on indexed fields (beside its type,
   * version, operation and paging); undefined otherwise.
   */
  const mirrored = (idx: VectorIndex, f: Query.Query | undefined): Matching | undefined => {
    const mirror = idx.mirror
    if (f === undefined || f.where === undefined || f.where.length === 0 || mirror === undefined) return undefined
    for (const [k, v] of Object.entries(f)) {
      if (v === undefined) continue
      if (k === "type" && v === idx.key.type) continue
      if (k === "version" && v === idx.key.version) continue
      if (
        k === "where" ||
        k === "operationId" ||
        k === "sort" ||
        k === "order" ||
        k === "limit" ||
        k === "cursor" ||
        k === "withVectors"
      )
        continue
      return undefined
    }
    // a mirror missing labels (filled while a sync added rows) is refilled by the next `indexFor`
    if (mirror.size !== idx.size) {
      idx.mirror = undefined
      return undefined
    }
    if (!mirror.answers(f.where)) return undefined
    return { ...mirror.match(f.where, visible(idx, f.operationId)), visibleOp: visibleOp(f.operationId) }
  }

  /** The synchronous part of a search: checks, then the index (no lock needed: it runs without yielding). */
  const searchNow = (
    idx: VectorIndex,
    spec: AnnotationType.VectorField,
    knn: Query.Knn,
    matching: Matching | undefined
  ): Either.Either<ReadonlyArray<Query.Hit>, InvalidQueryError | MarkenFailureError> => {
    const bad = Vector.check(knn.vector, { dimension: spec.dimension, finite: true })
    if (bad) return Either.left(new InvalidQueryError({ path: "vector", message: bad.message }))
    try {
      const q = knn.vector
      const ef = Math.max(knn.ef ?? tuning.ef, knn.k)
      const found =
        matching === undefined
          ? idx.search(q, knn.k, ef, visible(idx, knn.filter?.operationId))
          : idx.search(q, knn.k, ef, matching.accept, matching)
      return Either.right(found.map((f) => ({ id: f.id ?? idx.labels.get(f.label)!.id, distance: f.distance })))
    } catch (e) {
      return Either.left(failure("search")(e))
    }
  }

  /** The payloads of the hits, in one query (`includePayload`). */
  const withPayloads = (
    hits: ReadonlyArray<Query.Hit>
  ): Effect.Effect<ReadonlyArray<Query.Hit>, StorageError.StorageError> =>
    hits.length === 0
      ? Effect.succeed(hits)
      : use("marken.search.payloads", (k) =>
          k
            .selectFrom("marken_annotations")
            .select(["id", "payload"])
            .where(
              "id",
              "in",
              hits.map((h) => h.id)
            )
            .execute()
        ).pipe(
          Effect.map((rows) => {
            const payloads = new Map(rows.map((r) => [r.id as string, caps.readJson(r.payload)]))
            return hits.map((h) => ({ ...h, payload: payloads.get(h.id) ?? null }))
          })
        )

  const search = (knn: Query.Knn) =>
    knn.includePayload === true ? Effect.flatMap(searchHits(knn), withPayloads) : searchHits(knn)

  const searchHits = (knn: Query.Knn) =>
    Effect.suspend(() => {
      // the vector is checked on its own (it may be a Float32Array); the rest against the schema
      const invalid = checkKnn(knn)
      if (invalid !== undefined) return Effect.fail(invalid)
      const memory = memoryOnly(knn.filter, knn.type, knn.version)
      // hot path: a loaded index, synced recently, no SQL filter (none, or one the payload mirror answers)
      const ready = hot.get(keyString(knn))
      if (ready && ready.entry.idx && (ready.entry.syncing || nowMs() - ready.entry.lastSync < syncInterval)) {
        if (memory) return searchNow(ready.entry.idx, ready.spec, knn, undefined)
        const matching = mirrored(ready.entry.idx, knn.filter)
        if (matching) return searchNow(ready.entry.idx, ready.spec, knn, matching)
      }
      return Effect.gen(function* () {
        const { idx, entry, spec } = yield* indexFor(knn.type, knn.version, knn.field)
        if (memory) return yield* searchNow(idx, spec, knn, undefined)
        const matching = mirrored(idx, knn.filter)
        if (matching) return yield* searchNow(idx, spec, knn, matching)
        const labels = yield* matchingLabels(idx, entry, knn.filter!)
        return yield* searchNow(idx, spec, knn, { size: labels.size, labels, accept: (l) => labels.has(l) })
      })
    })

  const pairs = (input: Query.Pairs) =>
    Effect.gen(function* () {
      const p = yield* decodeQuery(Query.Pairs, input)
      const { idx, entry } = yield* indexFor(p.type, p.version, p.field)
      const left = yield* matchingLabels(idx, entry, p.left)
      const right = yield* matchingLabels(idx, entry, p.right)
      return yield* entry.lock.withPermits(1)(
        Effect.try({
          try: () => {
            const heap = new TopK<[number, number]>(p.k)
            const seen = new Set<string>()
            const push = (a: number, b: number, d: number) => {
              const key = a < b ? `${a}:${b}` : `${b}:${a}`
              if (a === b || seen.has(key)) return
              if (d < heap.worst) {
                seen.add(key)
                heap.push(d, [a, b])
              }
            }
            if (left.size * right.size <= 4_000_000 || right.size <= (tuning.exactThreshold ?? 2048)) {
              const rs = [...right]
              for (const a of left) {
                const qa = idx.vectorOf(a)
                if (!qa) continue
                for (const b of rs) push(a, b, idx.distance(b, qa))
              }
            } else {
              for (const a of left) {
                const qa = idx.vectorOf(a)
                if (!qa) continue
                for (const hit of idx.search(
                  qa,
                  p.k,
                  Math.max(tuning.ef, p.k),
                  (l) => right.has(l),
                  { size: right.size, labels: right },
                  a
                )) {
                  push(a, hit.label, hit.distance)
                }
              }
            }
            return heap.sorted().map(([distance, [a, b]]) => ({
              left: idx.labels.get(a)!.id,
              right: idx.labels.get(b)!.id,
              distance
            }))
          },
          catch: failure("pairs")
        })
      )
    })

  const loadIndexStats = (key: IndexKey) =>
    indexFor(key.type, key.version, key.field).pipe(
      Effect.map(({ idx }) => ({ key: keyString(key), size: idx.size, origin: idx.origin }))
    )

  return { search, pairs, loadIndexStats }
}
