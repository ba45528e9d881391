/**
 * Writes: items upserted into open operations, CRUD on the current run of a
 * producer, and deletes by id or by query, each in one transaction with the
 * indexes updated once it commits.
 */
import type { StorageError } from "@org/storage"
import { Vector } from "@org/storage"
import { Array as Arr, Effect, Either } from "effect"
import type * as Annotation from "../Annotation.js"
import * as Query from "../Query.js"
import type { Env } from "./env.js"
import { uuidv7 } from "./ids.js"
import type { Changes, Indexes } from "./indexes.js"
import type { Operations } from "./operations.js"
import * as Sql from "./query.js"
import type { Reads } from "./reads.js"
import type { OperationRow } from "./tables.js"
import { opKey, type Runs } from "./runs.js"
import { checkProducer, decodeQuery, type Prepared, prepare as prepareWith, rowOf } from "./validation.js"

export type Writes = ReturnType<typeof make>

export const make = (
  { caps, db, nowMs, registry, statistics, use }: Env,
  runs: Runs,
  indexes: Indexes,
  ops: Operations,
  reads: Reads
) => {
  const { applyChanges, changes } = indexes
  const { deleteAnnotations, findOperation, insertOperation, lockOperation, requireOpen, vectorKeysOf } = ops
  const { compile, findRow, get, toAnnotation, vectorsOf, where } = reads
  const prepare = prepareWith(registry)

  /** Inserts prepared rows (and their vectors) into an operation, replacing same-key ones. Inside a transaction. */
  const writeRows = (op: OperationRow, prepared: ReadonlyArray<{ index: number; p: Prepared }>, ch: Changes) =>
    Effect.gen(function* () {
      const now = nowMs()
      // the last item with a key wins within a batch
      const lastOfKey = new Map<string, number>()
      prepared.forEach(({ p }, i) => {
        if (p.key !== undefined) lastOfKey.set(p.key, i)
      })
      const keys = [...lastOfKey.keys()]
      const existing = new Map<string, string>()
      for (const part of Arr.chunksOf(keys, 500)) {
        const rows = yield* use("marken.upsert.keys", (k) =>
          k
            .selectFrom("marken_annotations")
            .select(["id", "key"])
            .where("operation_id", "=", op.id)
            .where("key", "in", part)
            .execute()
        )
        for (const r of rows) if (r.key !== null) existing.set(r.key, r.id)
      }
      if (existing.size > 0) yield* deleteAnnotations([...existing.values()], ch)
      const written: Array<{ index: number; id: string }> = []
      const rows: Array<ReturnType<typeof rowOf>> = []
      const vectors: Array<{
        annotation_id: string
        operation_id: string
        type: string
        version: string
        field: string
        vector: Buffer
        f32: Float32Array
        json: unknown
      }> = []
      const idOfKey = new Map<string, string>()
      prepared.forEach(({ index, p }, i) => {
        if (p.key !== undefined && lastOfKey.get(p.key) !== i) return
        const id = (p.key !== undefined ? existing.get(p.key) : undefined) ?? uuidv7(now)
        if (p.key !== undefined) idOfKey.set(p.key, id)
        rows.push(rowOf(p, id, op, now))
        for (const v of p.vectors) {
          vectors.push({
            annotation_id: id,
            operation_id: op.id,
            type: op.type,
            version: op.version,
            field: v.field,
            vector: Vector.encodeUnsafe(v.vector),
            f32: v.vector,
            json: p.payload
          })
        }
        written.push({ index, id })
      })
      prepared.forEach(({ index, p }, i) => {
        if (p.key !== undefined && lastOfKey.get(p.key) !== i) written.push({ index, id: idOfKey.get(p.key)! })
      })
      for (const part of Arr.chunksOf(rows, 400)) {
        yield* use("marken.upsert.annotations", (k) => k.insertInto("marken_annotations").values(part).execute())
      }
      statistics.wrote(rows.length)
      for (const part of Arr.chunksOf(vectors, 1000)) {
        const seqs = yield* use("marken.upsert.vectors", (k) =>
          k
            .insertInto("marken_vectors")
            .values(part.map(({ f32: _, json: _j, ...v }) => v))
            .returning(["seq"])
            .execute()
        )
        seqs.forEach((s, i) => {
          const v = part[i]!
          ch.of(vectorKeysOf(v.type, v.version, v.field)).added.push({
            seq: Number(s.seq),
            id: v.annotation_id,
            op: v.operation_id,
            vector: v.f32,
            payload: v.json
          })
        })
      }
      written.sort((a, b) => a.index - b.index)
      return written
    })

  const upsert = (operationId: string, items: ReadonlyArray<Annotation.Item>, opts?: { readonly atomic?: boolean }) =>
    Effect.gen(function* () {
      const op0 = yield* findOperation(operationId).pipe(Effect.flatMap(requireOpen))
      const def = yield* registry.get(op0.type, op0.version)
      const prepared: Array<{ index: number; p: Prepared }> = []
      const rejected: Array<{ index: number; path: string; message: string }> = []
      for (let i = 0; i < items.length; i++) {
        const r = yield* Effect.either(prepare(def, items[i]!, opts?.atomic ? `items.${i}` : ""))
        if (Either.isRight(r)) prepared.push({ index: i, p: r.right })
        else if (r.left._tag === "InvalidAnnotationError") {
          if (opts?.atomic) return yield* r.left
          rejected.push({ index: i, path: r.left.path, message: r.left.message })
        } else return yield* r.left
      }
      const ch = changes()
      const written = yield* db.transaction(
        Effect.gen(function* () {
          const op = yield* lockOperation(operationId).pipe(Effect.flatMap(requireOpen))
          return yield* writeRows(op, prepared, ch)
        })
      )
      yield* applyChanges(ch.map)
      return { written, rejected }
    })

  const create = (input: Annotation.Input) =>
    Effect.gen(function* () {
      const def = yield* registry.get(input.type, input.version)
      const producer = yield* checkProducer(input.producer, "producer")
      const { type: _t, version: _v, producer: _p, ...item } = input
      const p = yield* prepare(def, item as Annotation.Item, "")
      const ch = changes()
      const producerKey = producer.key ?? producer.algorithm
      const { id, created } = yield* db.transaction(
        Effect.gen(function* () {
          const pointer = yield* use("marken.create.current", (k) =>
            k
              .selectFrom("marken_current")
              .select("operation_id")
              .where("type", "=", input.type)
              .where("version", "=", input.version)
              .where("producer_key", "=", producerKey)
              .executeTakeFirst()
          )
          let op: OperationRow
          let created = false
          if (pointer)
            op = yield* findOperation(pointer.operation_id).pipe(Effect.catchTag("OperationNotFoundError", Effect.die))
          else {
            op = yield* insertOperation(input.type, input.version, producer, "finished")
            yield* use("marken.create.pointer", (k) =>
              k
                .insertInto("marken_current")
                .values({ type: input.type, version: input.version, producer_key: producerKey, operation_id: op.id })
                .execute()
            )
            created = true
          }
          const written = yield* writeRows(op, [{ index: 0, p }], ch)
          return { id: written[0]!.id, created: created ? op.id : undefined }
        })
      )
      if (created) runs.setCurrent(opKey(input.type, input.version, producerKey), created)
      yield* applyChanges(ch.map)
      yield* statistics.check
      return yield* get(id, { withVectors: p.vectors.length > 0 }).pipe(Effect.orDie)
    })

  const update = (id: string, patch: Annotation.Patch) =>
    Effect.gen(function* () {
      const r = yield* findRow(id)
      const before = toAnnotation(r, (yield* vectorsOf([id])).get(id) ?? {})
      const def = yield* registry.get(before.type, before.version)
      const merged: Record<string, unknown> = {
        entity: before.entity,
        ...(before.key !== undefined ? { key: before.key } : {}),
        ...(before.time ? { time: before.time } : {}),
        ...(before.frameRate ? { frameRate: before.frameRate } : {}),
        ...(before.region ? { region: before.region } : {}),
        payload: before.payload,
        ...(before.label !== undefined ? { label: before.label } : {}),
        ...(before.confidence !== undefined ? { confidence: before.confidence } : {}),
        vectors: { ...before.vectors }
      }
      for (const [k, v] of Object.entries(patch)) {
        if (v === undefined) continue
        merged[k] = k === "vectors" ? { ...(merged.vectors as object), ...(v as object) } : v
      }
      const p = yield* prepare(def, merged as Annotation.Item, "")
      const ch = changes()
      yield* db.transaction(
        Effect.gen(function* () {
          const op = yield* findOperation(r.operation_id).pipe(Effect.catchTag("OperationNotFoundError", Effect.die))
          yield* deleteAnnotations([id], ch)
          const row = rowOf(p, id, op, Number(r.created_ms))
          yield* use("marken.update", (k) => k.insertInto("marken_annotations").values(row).execute())
          statistics.wrote(1)
          for (const v of p.vectors) {
            const [s] = yield* use("marken.update.vector", (k) =>
              k
                .insertInto("marken_vectors")
                .values({
                  annotation_id: id,
                  operation_id: op.id,
                  type: op.type,
                  version: op.version,
                  field: v.field,
                  vector: Vector.encodeUnsafe(v.vector)
                })
                .returning(["seq"])
                .execute()
            )
            ch.of(vectorKeysOf(op.type, op.version, v.field)).added.push({
              seq: Number(s!.seq),
              id,
              op: op.id,
              vector: v.vector,
              payload: p.payload
            })
          }
        })
      )
      yield* applyChanges(ch.map)
      yield* statistics.check
      return yield* get(id, { withVectors: p.vectors.length > 0 }).pipe(Effect.orDie)
    })

  const remove = (id: string) =>
    Effect.gen(function* () {
      const ch = changes()
      yield* db.transaction(
        Effect.gen(function* () {
          yield* findRow(id)
          yield* deleteAnnotations([id], ch)
        })
      )
      yield* applyChanges(ch.map)
      yield* statistics.check
    })

  const removeIds = (ids: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const ch = changes()
      const removed = yield* db.transaction(
        Effect.gen(function* () {
          const known = yield* Effect.forEach(Arr.chunksOf([...new Set(ids)], 500), (part) =>
            use("marken.removeMany.ids", (k) =>
              k.selectFrom("marken_annotations").select("id").where("id", "in", part).execute()
            )
          )
          const found = known.flat().map((r) => r.id as string)
          yield* deleteAnnotations(found, ch)
          return found.length
        })
      )
      yield* applyChanges(ch.map)
      yield* statistics.check
      return { removed }
    })

  const removeMany = (
    ids: ReadonlyArray<string>
  ): Effect.Effect<{ readonly removed: number }, StorageError.StorageError> =>
    ids.length === 0 ? Effect.succeed({ removed: 0 }) : removeIds(ids)

  const removeWhere = (input: Query.Query) =>
    Effect.gen(function* () {
      const q = yield* decodeQuery(Query.Query, input)
      const conds = yield* compile(() => Sql.conditions(caps, { ...q, cursor: undefined }))
      const rows = yield* use("marken.removeWhere.ids", (k) =>
        k.selectFrom("marken_annotations as a").select("a.id").where(where(conds)).execute()
      )
      return yield* removeMany(rows.map((r) => r.id as string))
    })

  return { upsert, create, update, remove, removeMany, removeWhere }
}
