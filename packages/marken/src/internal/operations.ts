/**
 * Operations: runs of a producer over a type version, started, written, finished
 * (made current) or cancelled.
 */
import type { StorageError } from "@org/storage"
import type * as Annotation from "../Annotation.js"
import { Array as Arr, Effect } from "effect"
import { OperationClosedError, OperationNotFoundError } from "../MarkenError.js"
import type * as Operation from "../Operation.js"
import type { Env } from "./env.js"
import type { IndexKey } from "./hnsw.js"
import type { Changes, Indexes } from "./indexes.js"
import { uuidv7 } from "./ids.js"
import { opKey, type Runs } from "./runs.js"
import type { OperationRow } from "./tables.js"
import { checkProducer } from "./validation.js"

export type Operations = ReturnType<typeof make>

export const make = ({ db, nowMs, registry, statistics, use }: Env, runs: Runs, indexes: Indexes) => {
  const toOperation = (r: OperationRow): Operation.Operation => ({
    id: r.id,
    type: r.type,
    version: r.version,
    producerKey: r.producer_key,
    producer: { algorithm: r.algorithm, version: r.algorithm_version, ...(r.run !== null ? { run: r.run } : {}) },
    status: r.status,
    current: runs.currentOps.has(r.id),
    startedMs: Number(r.started_ms),
    ...(r.finished_ms !== null && r.finished_ms !== undefined ? { finishedMs: Number(r.finished_ms) } : {})
  })

  const findOperation = (
    operationId: string
  ): Effect.Effect<OperationRow, OperationNotFoundError | StorageError.StorageError> =>
    use("marken.operation", (k) =>
      k.selectFrom("marken_operations").selectAll().where("id", "=", operationId).executeTakeFirst()
    ).pipe(
      Effect.flatMap((r) =>
        r
          ? Effect.succeed(r)
          : Effect.fail(new OperationNotFoundError({ operationId, message: `operation ${operationId} does not exist` }))
      )
    )

  const operation = (operationId: string) =>
    Effect.gen(function* () {
      const r = yield* findOperation(operationId)
      const pointer = yield* use("marken.operation.current", (k) =>
        k.selectFrom("marken_current").select("operation_id").where("operation_id", "=", operationId).executeTakeFirst()
      )
      return { ...toOperation(r), current: pointer !== undefined }
    })

  const insertOperation = (type: string, version: string, producer: Annotation.Producer, status: "open" | "finished") =>
    Effect.gen(function* () {
      const now = nowMs()
      const row = {
        id: uuidv7(now),
        type,
        version,
        producer_key: producer.key ?? producer.algorithm,
        algorithm: producer.algorithm,
        algorithm_version: producer.version,
        run: producer.run ?? null,
        status,
        started_ms: now,
        finished_ms: status === "finished" ? now : null
      }
      yield* use("marken.operation.insert", (k) => k.insertInto("marken_operations").values(row).execute())
      return row
    })

  const start = (s: Operation.Start) =>
    Effect.gen(function* () {
      yield* registry.get(s.type, s.version)
      const producer = yield* checkProducer(s.producer, "producer")
      const row = yield* insertOperation(s.type, s.version, producer, "open")
      return toOperation(row)
    })

  const lockOperation = (operationId: string) =>
    Effect.gen(function* () {
      const r = yield* use("marken.operation.lock", (k) => {
        // an update takes the row lock (PostgreSQL) inside the transaction; SQLite holds the write lock already
        return k
          .updateTable("marken_operations")
          .set((eb) => ({ status: eb.ref("status") }))
          .where("id", "=", operationId)
          .returningAll()
          .executeTakeFirst()
      })
      if (!r)
        return yield* new OperationNotFoundError({ operationId, message: `operation ${operationId} does not exist` })
      return r
    })

  const requireOpen = (r: OperationRow) =>
    r.status === "open"
      ? Effect.succeed(r)
      : Effect.fail(
          new OperationClosedError({
            operationId: r.id,
            status: r.status,
            message: `operation ${r.id} is ${r.status}: it takes no more writes`
          })
        )

  const finish = (operationId: string) =>
    Effect.gen(function* () {
      const r = yield* db.transaction(
        Effect.gen(function* () {
          const r = yield* lockOperation(operationId).pipe(Effect.flatMap(requireOpen))
          const now = nowMs()
          yield* use("marken.operation.finish", async (k) => {
            await k
              .updateTable("marken_operations")
              .set({ status: "finished", finished_ms: now })
              .where("id", "=", operationId)
              .execute()
            await k
              .insertInto("marken_current")
              .values({ type: r.type, version: r.version, producer_key: r.producer_key, operation_id: operationId })
              .onConflict((oc) =>
                oc.columns(["type", "version", "producer_key"]).doUpdateSet({ operation_id: operationId })
              )
              .execute()
          })
          return { ...r, status: "finished" as const, finished_ms: now }
        })
      )
      runs.setCurrent(opKey(r.type, r.version, r.producer_key), operationId)
      yield* statistics.check
      return toOperation(r)
    })

  const vectorKeysOf = (type: string, version: string, field: string): IndexKey => ({ type, version, field })

  const deleteAnnotations = (ids: ReadonlyArray<string>, ch: Changes) =>
    Effect.forEach(
      Arr.chunksOf(ids, 500),
      (part) =>
        use("marken.annotations.delete", async (k) => {
          const seqs = await k
            .deleteFrom("marken_vectors")
            .where("annotation_id", "in", part)
            .returning(["seq", "type", "version", "field"])
            .execute()
          for (const s of seqs) ch.of(vectorKeysOf(s.type, s.version, s.field)).removed.push(Number(s.seq))
          await k.deleteFrom("marken_annotations").where("id", "in", part).execute()
          statistics.wrote(part.length)
        }),
      { discard: true }
    )

  const cancel = (operationId: string) =>
    Effect.gen(function* () {
      const ch = indexes.changes()
      const r = yield* db.transaction(
        Effect.gen(function* () {
          const r = yield* lockOperation(operationId).pipe(Effect.flatMap(requireOpen))
          const ids = yield* use("marken.operation.ids", (k) =>
            k.selectFrom("marken_annotations").select("id").where("operation_id", "=", operationId).execute()
          )
          yield* deleteAnnotations(
            ids.map((i) => i.id),
            ch
          )
          yield* use("marken.operation.cancel", (k) =>
            k
              .updateTable("marken_operations")
              .set({ status: "cancelled", finished_ms: nowMs() })
              .where("id", "=", operationId)
              .execute()
          )
          return { ...r, status: "cancelled" as const }
        })
      )
      yield* indexes.applyChanges(ch.map)
      yield* statistics.check
      return toOperation(r)
    })

  const operations = (filter: {
    readonly type: string
    readonly version?: string | undefined
    readonly producer?: string | undefined
  }) =>
    Effect.gen(function* () {
      const rows = yield* use("marken.operations", (k) => {
        let q = k.selectFrom("marken_operations").selectAll().where("type", "=", filter.type)
        if (filter.version !== undefined) q = q.where("version", "=", filter.version)
        if (filter.producer !== undefined) q = q.where("producer_key", "=", filter.producer)
        return q.orderBy("id", "desc").limit(1000).execute()
      })
      const pointers = yield* use("marken.operations.current", (k) =>
        k.selectFrom("marken_current").select("operation_id").where("type", "=", filter.type).execute()
      )
      const cur = new Set(pointers.map((p) => p.operation_id))
      return rows.map((r) => ({ ...toOperation(r), current: cur.has(r.id) }))
    })

  return {
    toOperation,
    findOperation,
    operation,
    insertOperation,
    start,
    lockOperation,
    requireOpen,
    finish,
    vectorKeysOf,
    deleteAnnotations,
    cancel,
    operations
  }
}
