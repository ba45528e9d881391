/**
 * The `Annotations` service: annotation operations (start, upsert, finish, cancel),
 * CRUD, queries with cursor pagination and group counts, and vector search (HNSW,
 * filtered kNN and pairs) kept in step with every write.
 *
 * @since 0.1.0
 */
import { Database, Vector, type StorageError as StorageErrors } from "@org/storage"
import { Context, Effect, Either, Layer, type ParseResult, Schema } from "effect"
import type { Scope } from "effect"
import { sql, type Expression, type SqlBool } from "kysely"
import * as Annotation from "./Annotation.js"
import type * as AnnotationType from "./AnnotationType.js"
import { describeParseError, formatPath } from "./internal/codec.js"
import * as crypto from "node:crypto"
import { keyString, TopK, VectorIndex, type IndexKey, type IndexTuning, type Row } from "./internal/hnsw.js"
import { uuidv7 } from "./internal/ids.js"
import * as Sql from "./internal/query.js"
import {
  AnnotationNotFoundError,
  InvalidAnnotationError,
  InvalidQueryError,
  MarkenFailureError,
  OperationClosedError,
  OperationNotFoundError,
  type UnknownTypeError
} from "./MarkenError.js"
import type * as Operation from "./Operation.js"
import * as Query from "./Query.js"
import * as Region from "./Region.js"
import * as Registries from "./Registry.js"
import { Registry } from "./Registry.js"

type StorageError = StorageErrors.StorageError

/**
 * Options of the service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A folder for the HNSW index files (kept beside the database). Without it indexes live in memory only. */
  readonly indexDirectory?: string
  /** HNSW graph degree (default 16). */
  readonly m?: number
  /** HNSW build effort (default 200). */
  readonly efConstruction?: number
  /** Default search effort (default 64). */
  readonly ef?: number
  /** Filtered searches matching at most this many vectors are exact (default 2048). */
  readonly exactThreshold?: number
  /** How often (ms) a search looks for writes made by other processes (default 1000). */
  readonly syncIntervalMs?: number
}

/**
 * A page of query results; `next` is the cursor of the following page, when there is one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Page {
  readonly items: ReadonlyArray<Annotation.Annotation>
  readonly next?: string
}

/**
 * One group of `count`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Group {
  readonly key: string | null
  readonly count: number
}

/**
 * A migration of stored annotations from one type version to another.
 *
 * @since 0.1.0
 * @category models
 */
export interface Migration<A, B> {
  readonly from: AnnotationType.AnnotationType<A, any>
  readonly to: AnnotationType.AnnotationType<B, any>
  readonly migrate: (payload: A) => B
}

/**
 * What the vector indexes hold (for health checks and tests).
 *
 * @since 0.1.0
 * @category models
 */
export interface IndexStats {
  readonly key: string
  readonly size: number
  readonly origin: string
}

/**
 * The shape of the `Annotations` service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Starts an operation: a run of a producer over a type version, invisible until finished. */
  readonly start: (
    start: Operation.Start
  ) => Effect.Effect<Operation.Operation, UnknownTypeError | InvalidAnnotationError | StorageError>
  /**
   * Writes annotations into an open operation; an item with the `key` of an earlier
   * one in the same operation replaces it. Invalid items are refused one by one
   * (`rejected`, with the failing field) while the others are written; with
   * `atomic: true` the first invalid item fails the call and nothing is written.
   */
  readonly upsert: (
    operationId: string,
    items: ReadonlyArray<Annotation.Item>,
    options?: { readonly atomic?: boolean }
  ) => Effect.Effect<
    Operation.UpsertResult,
    OperationNotFoundError | OperationClosedError | InvalidAnnotationError | UnknownTypeError | StorageError
  >
  /** Makes the operation the run readers see for its key, in one transaction. */
  readonly finish: (
    operationId: string
  ) => Effect.Effect<Operation.Operation, OperationNotFoundError | OperationClosedError | StorageError>
  /** Cancels an open operation and removes what it wrote. */
  readonly cancel: (
    operationId: string
  ) => Effect.Effect<Operation.Operation, OperationNotFoundError | OperationClosedError | StorageError>
  readonly operation: (operationId: string) => Effect.Effect<Operation.Operation, OperationNotFoundError | StorageError>
  /** Operations of a type version (and producer key), newest first. */
  readonly operations: (filter: {
    readonly type: string
    readonly version?: string | undefined
    readonly producer?: string | undefined
  }) => Effect.Effect<ReadonlyArray<Operation.Operation>, StorageError>
  /** Creates one annotation in the current run of its producer (CRUD). */
  readonly create: (
    input: Annotation.Input
  ) => Effect.Effect<Annotation.Annotation, InvalidAnnotationError | UnknownTypeError | StorageError>
  readonly get: (
    id: string,
    options?: { readonly withVectors?: boolean }
  ) => Effect.Effect<Annotation.Annotation, AnnotationNotFoundError | StorageError>
  readonly update: (
    id: string,
    patch: Annotation.Patch
  ) => Effect.Effect<
    Annotation.Annotation,
    AnnotationNotFoundError | InvalidAnnotationError | UnknownTypeError | StorageError
  >
  readonly remove: (id: string) => Effect.Effect<void, AnnotationNotFoundError | StorageError>
  /** Deletes annotations by id in one transaction, the indexes updated once; unknown ids are skipped. */
  readonly removeMany: (ids: ReadonlyArray<string>) => Effect.Effect<{ readonly removed: number }, StorageError>
  /**
   * Deletes every annotation a query matches (its runs: the current ones, or `operationId`'s;
   * `limit` and `cursor` are ignored) in one transaction, the indexes updated once.
   */
  readonly removeWhere: (
    query: Query.Query
  ) => Effect.Effect<{ readonly removed: number }, InvalidQueryError | StorageError>
  readonly query: (query: Query.Query) => Effect.Effect<Page, InvalidQueryError | StorageError>
  /** Counts the annotations matching a query, grouped (largest groups first, at most 1000). */
  readonly count: (
    query: Query.Query,
    by: Query.GroupBy
  ) => Effect.Effect<ReadonlyArray<Group>, InvalidQueryError | StorageError>
  /** The k nearest annotations to a vector among those matching the filter (k whenever k match). */
  readonly search: (
    knn: Query.Knn
  ) => Effect.Effect<ReadonlyArray<Query.Hit>, InvalidQueryError | UnknownTypeError | MarkenFailureError | StorageError>
  /** The k most similar pairs between two sets. */
  readonly pairs: (
    pairs: Query.Pairs
  ) => Effect.Effect<
    ReadonlyArray<Query.Pair>,
    InvalidQueryError | UnknownTypeError | MarkenFailureError | StorageError
  >
  /** Rewrites the latest runs of a type version into a new version (old ones stay readable). */
  readonly migrate: <A, B>(
    migration: Migration<A, B>
  ) => Effect.Effect<
    { readonly operations: number; readonly annotations: number },
    InvalidAnnotationError | UnknownTypeError | OperationNotFoundError | OperationClosedError | StorageError
  >
  /** Decodes an annotation's payload with its type (typed read). */
  readonly decode: <A>(
    type: AnnotationType.AnnotationType<A, any>,
    annotation: Annotation.Annotation
  ) => Effect.Effect<Annotation.Typed<A>, InvalidAnnotationError>
  /** Writes every changed index to the index folder. */
  readonly persist: Effect.Effect<void, MarkenFailureError>
  /** Loads (or rebuilds) the index of a vector field now and tells where it came from. */
  readonly loadIndex: (
    key: IndexKey
  ) => Effect.Effect<IndexStats, UnknownTypeError | InvalidQueryError | MarkenFailureError | StorageError>
}

/**
 * The annotations service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Annotations extends Context.Tag("@org/marken/Annotations")<Annotations, Service>() {}

const Base = Schema.Struct(Annotation.Fields)
const decodeBase = Schema.decodeUnknownEither(Base, { onExcessProperty: "error" })
const decodeProducer = Schema.decodeUnknownEither(Annotation.Producer, { onExcessProperty: "error" })

const firstIssue = (e: ParseResult.ParseError) => describeParseError(e)

/** A query that fails its schema: `InvalidQueryError` with the field path and a one-line message. */
const invalidQuery = (e: ParseResult.ParseError, prefix = "") => {
  const issue = describeParseError(e)
  return new InvalidQueryError({ path: formatPath(prefix, issue.path) || "query", message: issue.message })
}

/** Queries from code are decoded as HTTP decodes them: one validation, one error. */
const decodeQuery = <A, I>(schema: Schema.Schema<A, I>, value: unknown, prefix = "") =>
  Effect.mapError(Schema.decodeUnknown(schema)(value), (e) => invalidQuery(e, prefix))

const decodeKnn = Schema.decodeUnknownEither(Query.Knn)

interface Prepared {
  readonly key: string | undefined
  readonly base: Schema.Schema.Type<typeof Base>
  readonly payload: unknown
  readonly bounds: Region.Bounds | undefined
  readonly vectors: ReadonlyArray<{ readonly field: string; readonly vector: Float32Array }>
}

const opKey = (type: string, version: string, producer: string) => JSON.stringify([type, version, producer])

const chunk = <A>(xs: ReadonlyArray<A>, n: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n))
  return out
}

const toNumber = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v))

/**
 * Builds the service. Needs the `Registry` and the `Database`; index files are
 * written when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Service, StorageError, Database.Database | Registry | Scope.Scope> =>
  Effect.gen(function* () {
    const db = yield* Database.Database
    const registry = yield* Registry
    const clock = yield* Effect.clock
    /** Milliseconds from the `Clock` (tests drive it with `TestClock`). */
    const nowMs = () => clock.unsafeCurrentTimeMillis()
    const caps = db.capabilities
    const tuning: IndexTuning = {
      m: options.m ?? 16,
      efConstruction: options.efConstruction ?? 200,
      ef: options.ef ?? 64,
      exactThreshold: options.exactThreshold ?? 2048
    }
    const syncInterval = options.syncIntervalMs ?? 1000
    const directory = options.indexDirectory
    const instance = yield* db.use("marken.instance", (k) =>
      k.selectFrom("marken_meta").select("value").where("key", "=", "instance").executeTakeFirstOrThrow()
    )

    // ---- current runs (the pointer rows), mirrored in memory for vector search ----
    const current = new Map<string, string>()
    const currentOps = new Set<string>()
    /** Bumped by every change readers could see; cached filter results of an older generation are stale. */
    let generation = 0
    const setCurrent = (key: string, op: string) => {
      const old = current.get(key)
      if (old === op) return
      if (old !== undefined) currentOps.delete(old)
      current.set(key, op)
      currentOps.add(op)
      generation++
    }
    const readCurrent = db.use("marken.current", (k) => k.selectFrom("marken_current").selectAll().execute())
    /** Mirrors the pointer rows read by `readCurrent` (synchronous: readers see the whole change at once). */
    const applyCurrent = (rows: ReadonlyArray<Record<string, any>>) => {
      const seen = new Set<string>()
      for (const r of rows) {
        const key = opKey(r.type, r.version, r.producer_key)
        seen.add(key)
        setCurrent(key, r.operation_id)
      }
      for (const [key, op] of [...current]) {
        if (!seen.has(key)) {
          current.delete(key)
          currentOps.delete(op)
          generation++
        }
      }
    }
    const loadCurrent = Effect.map(readCurrent, applyCurrent)
    yield* loadCurrent

    // ---- vector indexes ----
    interface Entry {
      idx: VectorIndex | undefined
      /** Held while the index changes (readers on the hot path never yield, so they see it before or after). */
      readonly lock: Effect.Semaphore
      /** One sync at a time per index. */
      readonly syncLock: Effect.Semaphore
      lastSync: number
      /** A sync is reading the database: readers keep searching the state before it. */
      syncing: boolean
    }
    const indexes = new Map<string, Entry>()
    const entryOf = (key: IndexKey): Entry => {
      const ks = keyString(key)
      let e = indexes.get(ks)
      if (!e) {
        e = {
          idx: undefined,
          lock: Effect.unsafeMakeSemaphore(1),
          syncLock: Effect.unsafeMakeSemaphore(1),
          lastSync: nowMs(),
          syncing: false
        }
        indexes.set(ks, e)
      }
      return e
    }
    const failure = (operation: string) => (cause: unknown) =>
      new MarkenFailureError({
        operation,
        message: `${operation} failed: ${cause instanceof Error ? cause.message : String(cause)}`
      })

    /** Stored vectors of a field after `afterSeq`, decoding only those `skip` does not reject. */
    const readRows = (key: IndexKey, afterSeq?: number, skip?: (seq: number) => boolean) =>
      db
        .use("marken.index.read", (k) => {
          let q = k
            .selectFrom("marken_vectors")
            .select(["seq", "annotation_id", "operation_id", "vector"])
            .where("type", "=", key.type)
            .where("version", "=", key.version)
            .where("field", "=", key.field)
          if (afterSeq !== undefined) q = q.where("seq", ">", afterSeq)
          return q.orderBy("seq").execute()
        })
        .pipe(
          Effect.map((rows) =>
            (skip ? rows.filter((r) => !skip(Number(r.seq))) : rows).map(
              (r): Row => ({
                seq: Number(r.seq),
                id: r.annotation_id,
                op: r.operation_id,
                vector: Vector.decodeUnsafe(r.vector)
              })
            )
          )
        )

    const loadIndex = (key: IndexKey, spec: AnnotationType.VectorField) =>
      Effect.gen(function* () {
        const entry = entryOf(key)
        if (entry.idx) return entry.idx
        return yield* entry.lock.withPermits(1)(
          Effect.gen(function* () {
            if (entry.idx) return entry.idx
            const idx = new VectorIndex(key, spec.dimension, spec.metric, tuning)
            const reason = directory === undefined ? "no index folder" : idx.load(directory, instance.value)
            // pointers first: the vectors of every run they name were committed before them
            const pointers = yield* readCurrent
            const rows = yield* readRows(key)
            yield* Effect.try({
              try: () => {
                if (reason !== undefined) {
                  idx.init(Math.ceil(rows.length * 1.25))
                  for (const r of rows) idx.add(r)
                  idx.origin = `rebuilt (${reason})`
                  idx.dirty = true
                } else {
                  const present = new Set(idx.hnsw.getIdsList())
                  const inDb = new Set<number>()
                  for (const r of rows) {
                    inDb.add(r.seq)
                    if (present.has(r.seq)) idx.track(r)
                    else idx.add(r)
                  }
                  for (const label of present) {
                    if (!inDb.has(label)) {
                      try {
                        idx.hnsw.markDelete(label)
                        idx.dirty = true
                      } catch {
                        // deleted before the file was written
                      }
                    }
                  }
                  idx.origin = idx.dirty ? "file (caught up with the database)" : "file"
                }
                if (directory !== undefined && idx.dirty) idx.persist(directory, instance.value)
              },
              catch: failure(`index.load ${keyString(key)}`)
            })
            entry.idx = idx
            entry.lastSync = nowMs()
            applyCurrent(pointers)
            return idx
          })
        )
      })

    /**
     * Picks up writes of other processes: pointer rows, new vectors, deletions. The
     * pointers are read first (a finished run's vectors were committed before its
     * pointer), then the vectors; the index takes the vectors before the pointers
     * move, in one step without yielding, so a reader sees the previous complete run
     * or the new one, never a run whose vectors the index lacks. While the sync reads,
     * readers keep searching the state before it.
     */
    const sync = (entry: Entry, idx: VectorIndex, force = false) =>
      Effect.suspend(() =>
        !force && nowMs() - entry.lastSync < syncInterval
          ? Effect.void
          : entry.syncLock.withPermits(1)(
              Effect.suspend(() => {
                if (!force && nowMs() - entry.lastSync < syncInterval) return Effect.void
                const startedAt = nowMs()
                entry.syncing = true
                return syncNow(entry, idx).pipe(
                  Effect.tap(() => Effect.sync(() => (entry.lastSync = startedAt))),
                  Effect.ensuring(Effect.sync(() => (entry.syncing = false)))
                )
              })
            )
      )

    const syncNow = (entry: Entry, idx: VectorIndex) =>
      Effect.gen(function* () {
        const pointers = yield* readCurrent
        // rows the index holds already are not decoded (re-checked under the lock below)
        const fresh = yield* readRows(idx.key, Math.max(0, idx.maxSeq - 1000), (seq) => idx.labels.has(seq))
        const total = yield* db.use("marken.index.count", (k) =>
          k
            .selectFrom("marken_vectors")
            .select((eb) => eb.fn.countAll<number>().as("n"))
            .where("type", "=", idx.key.type)
            .where("version", "=", idx.key.version)
            .where("field", "=", idx.key.field)
            .executeTakeFirstOrThrow()
        )
        const expected = Number(total.n)
        const known = idx.size + fresh.filter((r) => !idx.labels.has(r.seq)).length
        // deletions or rows older than the window: the full label list, and the rows still missing
        const all =
          expected !== known
            ? yield* db.use("marken.index.labels", (k) =>
                k
                  .selectFrom("marken_vectors")
                  .select("seq")
                  .where("type", "=", idx.key.type)
                  .where("version", "=", idx.key.version)
                  .where("field", "=", idx.key.field)
                  .execute()
              )
            : undefined
        const fetched = new Set(fresh.map((r) => r.seq))
        const missing =
          all !== undefined && all.some((r) => !idx.labels.has(Number(r.seq)) && !fetched.has(Number(r.seq)))
            ? yield* readRows(idx.key, 0, (seq) => idx.labels.has(seq) || fetched.has(seq))
            : []
        yield* entry.lock.withPermits(1)(
          Effect.sync(() => {
            for (const r of fresh) {
              if (!idx.labels.has(r.seq)) {
                idx.add(r)
                generation++
              }
            }
            for (const r of missing) {
              if (!idx.labels.has(r.seq)) {
                idx.add(r)
                generation++
              }
            }
            if (all !== undefined) {
              generation++
              const live = new Set(all.map((r) => Number(r.seq)))
              // labels added by this process after the read are newer than every row it saw
              let newest = 0
              for (const seq of live) if (seq > newest) newest = seq
              for (const label of [...idx.labels.keys()]) if (label <= newest && !live.has(label)) idx.remove(label)
            }
            // last, and in the same step: the pointers move once the index holds their vectors
            applyCurrent(pointers)
          })
        )
      })

    interface IndexChange {
      readonly key: IndexKey
      readonly added: Array<Row>
      readonly removed: Array<number>
    }
    const changes = () => {
      const map = new Map<string, IndexChange>()
      const of = (key: IndexKey) => {
        const ks = keyString(key)
        let c = map.get(ks)
        if (!c) {
          c = { key, added: [], removed: [] }
          map.set(ks, c)
        }
        return c
      }
      return { map, of }
    }
    const applyChanges = (map: Map<string, IndexChange>) =>
      Effect.suspend(() => {
        generation++
        return applyIndexChanges(map)
      })
    const applyIndexChanges = (map: Map<string, IndexChange>) =>
      Effect.forEach(
        map.values(),
        (c) => {
          const entry = indexes.get(keyString(c.key))
          if (!entry) return Effect.void
          return entry.lock.withPermits(1)(
            Effect.sync(() => {
              const idx = entry.idx
              if (!idx) return
              for (const label of c.removed) idx.remove(label)
              for (const r of c.added) idx.add(r)
            })
          )
        },
        { discard: true }
      )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (directory === undefined) return
        for (const e of indexes.values()) {
          try {
            if (e.idx?.dirty) e.idx.persist(directory, instance.value)
          } catch {
            // the next start rebuilds what could not be written
          }
        }
      })
    )

    // ---- operations ----
    const toOperation = (r: any): Operation.Operation => ({
      id: r.id,
      type: r.type,
      version: r.version,
      producerKey: r.producer_key,
      producer: { algorithm: r.algorithm, version: r.algorithm_version, ...(r.run !== null ? { run: r.run } : {}) },
      status: r.status,
      current: currentOps.has(r.id),
      startedMs: Number(r.started_ms),
      ...(r.finished_ms !== null && r.finished_ms !== undefined ? { finishedMs: Number(r.finished_ms) } : {})
    })

    const findOperation = (operationId: string) =>
      db
        .use("marken.operation", (k) =>
          k.selectFrom("marken_operations").selectAll().where("id", "=", operationId).executeTakeFirst()
        )
        .pipe(
          Effect.flatMap((r) =>
            r
              ? Effect.succeed(r)
              : Effect.fail(
                  new OperationNotFoundError({ operationId, message: `operation ${operationId} does not exist` })
                )
          )
        )

    const operation = (operationId: string) =>
      Effect.gen(function* () {
        const r = yield* findOperation(operationId)
        const pointer = yield* db.use("marken.operation.current", (k) =>
          k
            .selectFrom("marken_current")
            .select("operation_id")
            .where("operation_id", "=", operationId)
            .executeTakeFirst()
        )
        return { ...toOperation(r), current: pointer !== undefined }
      })

    const checkProducer = (producer: unknown, path: string) => {
      const p = decodeProducer(producer)
      if (Either.isLeft(p)) {
        const issue = firstIssue(p.left)
        return Effect.fail(
          new InvalidAnnotationError({
            path: formatPath(path, issue?.path ?? []),
            message: issue?.message ?? "invalid"
          })
        )
      }
      return Effect.succeed(p.right)
    }

    const insertOperation = (
      type: string,
      version: string,
      producer: Annotation.Producer,
      status: "open" | "finished"
    ) =>
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
        yield* db.use("marken.operation.insert", (k) => k.insertInto("marken_operations").values(row).execute())
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
        const r = yield* db.use("marken.operation.lock", (k) => {
          // an update takes the row lock (PostgreSQL) inside the transaction; SQLite holds the write lock already
          return k
            .updateTable("marken_operations")
            .set({ status: sql`status` })
            .where("id", "=", operationId)
            .returningAll()
            .executeTakeFirst()
        })
        if (!r)
          return yield* new OperationNotFoundError({ operationId, message: `operation ${operationId} does not exist` })
        return r
      })

    const requireOpen = (r: any) =>
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
            yield* db.use("marken.operation.finish", async (k) => {
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
            return { ...r, status: "finished", finished_ms: now }
          })
        )
        setCurrent(opKey(r.type, r.version, r.producer_key), operationId)
        return toOperation(r)
      })

    const vectorKeysOf = (type: string, version: string, field: string): IndexKey => ({ type, version, field })

    const deleteAnnotations = (ids: ReadonlyArray<string>, ch: ReturnType<typeof changes>) =>
      Effect.forEach(
        chunk(ids, 500),
        (part) =>
          db.use("marken.annotations.delete", async (k) => {
            const seqs = await k
              .deleteFrom("marken_vectors")
              .where("annotation_id", "in", part)
              .returning(["seq", "type", "version", "field"])
              .execute()
            for (const s of seqs) ch.of(vectorKeysOf(s.type, s.version, s.field)).removed.push(Number(s.seq))
            await k.deleteFrom("marken_annotations").where("id", "in", part).execute()
          }),
        { discard: true }
      )

    const cancel = (operationId: string) =>
      Effect.gen(function* () {
        const ch = changes()
        const r = yield* db.transaction(
          Effect.gen(function* () {
            const r = yield* lockOperation(operationId).pipe(Effect.flatMap(requireOpen))
            const ids = yield* db.use("marken.operation.ids", (k) =>
              k.selectFrom("marken_annotations").select("id").where("operation_id", "=", operationId).execute()
            )
            yield* deleteAnnotations(
              ids.map((i) => i.id),
              ch
            )
            yield* db.use("marken.operation.cancel", (k) =>
              k
                .updateTable("marken_operations")
                .set({ status: "cancelled", finished_ms: nowMs() })
                .where("id", "=", operationId)
                .execute()
            )
            return { ...r, status: "cancelled" }
          })
        )
        yield* applyChanges(ch.map)
        return toOperation(r)
      })

    const operations = (filter: {
      readonly type: string
      readonly version?: string | undefined
      readonly producer?: string | undefined
    }) =>
      Effect.gen(function* () {
        const rows = yield* db.use("marken.operations", (k) => {
          let q = k.selectFrom("marken_operations").selectAll().where("type", "=", filter.type)
          if (filter.version !== undefined) q = q.where("version", "=", filter.version)
          if (filter.producer !== undefined) q = q.where("producer_key", "=", filter.producer)
          return q.orderBy("id", "desc").limit(1000).execute()
        })
        const pointers = yield* db.use("marken.operations.current", (k) =>
          k.selectFrom("marken_current").select("operation_id").where("type", "=", filter.type).execute()
        )
        const cur = new Set(pointers.map((p) => p.operation_id))
        return rows.map((r) => ({ ...toOperation(r), current: cur.has(r.id) }))
      })

    // ---- validation ----
    const prepare = (def: AnnotationType.Definition, item: Annotation.Item, prefix: string) =>
      Effect.gen(function* () {
        if (typeof item !== "object" || item === null) {
          return yield* new InvalidAnnotationError({ path: prefix || "item", message: "expected an object" })
        }
        const { vectors, ...rest } = item as Annotation.Item & Record<string, unknown>
        const decoded = decodeBase(rest)
        if (Either.isLeft(decoded)) {
          const issue = firstIssue(decoded.left)
          return yield* new InvalidAnnotationError({
            path: formatPath(prefix, issue?.path ?? []),
            message: issue?.message ?? decoded.left.message,
            type: `${def.name}@${def.version}`
          })
        }
        const base = decoded.right
        const payload = yield* registry.validate(def.name, def.version, base.payload, formatPath(prefix, ["payload"]))
        const vs: Array<{ field: string; vector: Float32Array }> = []
        if (vectors !== undefined) {
          if (typeof vectors !== "object" || vectors === null) {
            return yield* new InvalidAnnotationError({
              path: formatPath(prefix, ["vectors"]),
              message: "expected an object of vectors"
            })
          }
          for (const [field, v] of Object.entries(vectors)) {
            const spec = def.vectors[field]
            const path = formatPath(prefix, ["vectors", field])
            if (!spec) {
              return yield* new InvalidAnnotationError({
                path,
                message: `${def.name} ${def.version} has no vector field ${field} (fields: ${Object.keys(def.vectors).join(", ") || "none"})`
              })
            }
            if (!(v instanceof Float32Array) && !(Array.isArray(v) && v.every((x) => typeof x === "number"))) {
              return yield* new InvalidAnnotationError({ path, message: "expected an array of numbers" })
            }
            const bad = Vector.check(v, { dimension: spec.dimension, finite: true })
            if (bad) return yield* new InvalidAnnotationError({ path, message: bad.message, entity: base.entity })
            vs.push({ field, vector: v instanceof Float32Array ? v : Float32Array.from(v) })
          }
        }
        return {
          key: base.key,
          base,
          payload,
          bounds: base.region ? Region.bounds(base.region) : undefined,
          vectors: vs
        } satisfies Prepared
      })

    const rowOf = (
      p: Prepared,
      id: string,
      op: {
        readonly id: string
        readonly type: string
        readonly version: string
        readonly producer_key: string
        readonly algorithm: string
        readonly algorithm_version: string
        readonly run: string | null
      },
      createdMs: number
    ) => ({
      id,
      operation_id: op.id,
      key: p.key ?? null,
      entity: p.base.entity,
      type: op.type,
      version: op.version,
      start_ns: p.base.time?.startNs ?? null,
      end_ns: p.base.time?.endNs ?? null,
      rate_num: p.base.frameRate?.num ?? null,
      rate_den: p.base.frameRate?.den ?? null,
      region: p.base.region ? JSON.stringify(p.base.region) : null,
      x0: p.bounds?.x0 ?? null,
      y0: p.bounds?.y0 ?? null,
      x1: p.bounds?.x1 ?? null,
      y1: p.bounds?.y1 ?? null,
      payload: JSON.stringify(p.payload),
      label: p.base.label ?? null,
      confidence: p.base.confidence ?? null,
      producer_key: op.producer_key,
      algorithm: op.algorithm,
      algorithm_version: op.algorithm_version,
      run: op.run,
      created_ms: createdMs
    })

    /** Inserts prepared rows (and their vectors) into an operation, replacing same-key ones. Inside a transaction. */
    const writeRows = (
      op: any,
      prepared: ReadonlyArray<{ index: number; p: Prepared }>,
      ch: ReturnType<typeof changes>
    ) =>
      Effect.gen(function* () {
        const now = nowMs()
        // the last item with a key wins within a batch
        const lastOfKey = new Map<string, number>()
        prepared.forEach(({ p }, i) => {
          if (p.key !== undefined) lastOfKey.set(p.key, i)
        })
        const keys = [...lastOfKey.keys()]
        const existing = new Map<string, string>()
        for (const part of chunk(keys, 500)) {
          const rows = yield* db.use("marken.upsert.keys", (k) =>
            k
              .selectFrom("marken_annotations")
              .select(["id", "key"])
              .where("operation_id", "=", op.id)
              .where("key", "in", part)
              .execute()
          )
          for (const r of rows) existing.set(r.key, r.id)
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
              f32: v.vector
            })
          }
          written.push({ index, id })
        })
        prepared.forEach(({ index, p }, i) => {
          if (p.key !== undefined && lastOfKey.get(p.key) !== i) written.push({ index, id: idOfKey.get(p.key)! })
        })
        for (const part of chunk(rows, 400)) {
          yield* db.use("marken.upsert.annotations", (k) =>
            k
              .insertInto("marken_annotations")
              .values(part as any)
              .execute()
          )
        }
        for (const part of chunk(vectors, 1000)) {
          const seqs = yield* db.use("marken.upsert.vectors", (k) =>
            k
              .insertInto("marken_vectors")
              .values(part.map(({ f32: _, ...v }) => v))
              .returning(["seq"])
              .execute()
          )
          seqs.forEach((s, i) => {
            const v = part[i]!
            ch.of(vectorKeysOf(v.type, v.version, v.field)).added.push({
              seq: Number(s.seq),
              id: v.annotation_id,
              op: v.operation_id,
              vector: v.f32
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

    // ---- reading ----
    const toAnnotation = (r: any, vectors?: Record<string, Float32Array>): Annotation.Annotation => {
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
        for (const part of chunk(ids, 500)) {
          const rows = yield* db.use("marken.vectors", (k) =>
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

    const findRow = (id: string) =>
      db
        .use("marken.get", (k) =>
          k.selectFrom("marken_annotations").selectAll().where("id", "=", id).executeTakeFirst()
        )
        .pipe(
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
        catch: (e) =>
          e instanceof InvalidQueryError ? e : new InvalidQueryError({ path: "query", message: String(e) })
      })

    const where = (conds: ReadonlyArray<Expression<SqlBool>>) =>
      conds.length === 0 ? sql<SqlBool>`1 = 1` : sql<SqlBool>`${sql.join(conds, sql` and `)}`

    /** The current runs a query reads (its type, version and producer narrow them), sorted. */
    const currentRuns = (q: Query.Query) =>
      db
        .use("marken.query.runs", (k) => {
          let r = k.selectFrom("marken_current").select("operation_id")
          if (q.type !== undefined) r = r.where("type", "=", q.type)
          if (q.version !== undefined) r = r.where("version", "=", q.version)
          if (q.producer !== undefined) r = r.where("producer_key", "=", q.producer)
          return r.execute()
        })
        .pipe(Effect.map((rows) => rows.map((r) => r.operation_id as string).sort()))
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
        const rows = yield* db.use("marken.query", (k) =>
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
        const rows = yield* db.use("marken.count", (k) =>
          sql<{
            key: unknown
            n: unknown
          }>`select ${g} as key, count(*) as n from marken_annotations a where ${where(conds)} group by ${g} order by n desc, key asc limit 1000`.execute(
            k
          )
        )
        return rows.rows.map((r) => ({
          key: r.key === null || r.key === undefined ? null : String(r.key),
          count: Number(r.n)
        }))
      })

    // ---- CRUD ----
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
            const pointer = yield* db.use("marken.create.current", (k) =>
              k
                .selectFrom("marken_current")
                .select("operation_id")
                .where("type", "=", input.type)
                .where("version", "=", input.version)
                .where("producer_key", "=", producerKey)
                .executeTakeFirst()
            )
            let op: any
            let created = false
            if (pointer)
              op = yield* findOperation(pointer.operation_id).pipe(
                Effect.catchTag("OperationNotFoundError", Effect.die)
              )
            else {
              op = yield* insertOperation(input.type, input.version, producer, "finished")
              yield* db.use("marken.create.pointer", (k) =>
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
        if (created) setCurrent(opKey(input.type, input.version, producerKey), created)
        yield* applyChanges(ch.map)
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
            const op: any = yield* findOperation(r.operation_id).pipe(
              Effect.catchTag("OperationNotFoundError", Effect.die)
            )
            yield* deleteAnnotations([id], ch)
            const row = rowOf(p, id, op, Number(r.created_ms))
            yield* db.use("marken.update", (k) =>
              k
                .insertInto("marken_annotations")
                .values(row as any)
                .execute()
            )
            for (const v of p.vectors) {
              const [s] = yield* db.use("marken.update.vector", (k) =>
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
                vector: v.vector
              })
            }
          })
        )
        yield* applyChanges(ch.map)
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
      })

    const removeIds = (ids: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        const ch = changes()
        const removed = yield* db.transaction(
          Effect.gen(function* () {
            const known = yield* Effect.forEach(chunk([...new Set(ids)], 500), (part) =>
              db.use("marken.removeMany.ids", (k) =>
                k.selectFrom("marken_annotations").select("id").where("id", "in", part).execute()
              )
            )
            const found = known.flat().map((r) => r.id as string)
            yield* deleteAnnotations(found, ch)
            return found.length
          })
        )
        yield* applyChanges(ch.map)
        return { removed }
      })

    const removeMany = (ids: ReadonlyArray<string>) =>
      ids.length === 0 ? Effect.succeed({ removed: 0 }) : removeIds(ids)

    const removeWhere = (input: Query.Query) =>
      Effect.gen(function* () {
        const q = yield* decodeQuery(Query.Query, input)
        const conds = yield* compile(() => Sql.conditions(caps, { ...q, cursor: undefined }))
        const rows = yield* db.use("marken.removeWhere.ids", (k) =>
          k.selectFrom("marken_annotations as a").select("a.id").where(where(conds)).execute()
        )
        return yield* removeMany(rows.map((r) => r.id as string))
      })

    // ---- vector search ----
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
        if (cached && cached.generation === generation) return cached.labels
        const atStart = generation
        const conds = yield* compile(() =>
          Sql.conditions(caps, { ...q, type: idx.key.type, version: idx.key.version, cursor: undefined })
        )
        const rows = yield* db.use("marken.search.filter", (k) =>
          k
            .selectFrom("marken_vectors as v")
            .select("v.seq")
            .where("v.field", "=", idx.key.field)
            .where("v.annotation_id", "in", (eb: any) =>
              eb.selectFrom("marken_annotations as a").select("a.id").where(where(conds))
            )
            .execute()
        )
        const labels = new Set(rows.map((r) => Number(r.seq)))
        let missing = false
        for (const l of labels) if (!idx.labels.has(l)) missing = true
        if (missing) yield* sync(entry, idx, true)
        else if (generation === atStart) {
          filterCache.delete(cacheKey)
          filterCache.set(cacheKey, { generation, labels })
          if (filterCache.size > 64) filterCache.delete(filterCache.keys().next().value!)
        }
        return labels
      })

    const visible = (idx: VectorIndex, operationId: string | undefined) =>
      operationId !== undefined
        ? (label: number) => idx.labels.get(label)?.op === operationId
        : (label: number) => {
            const l = idx.labels.get(label)
            return l !== undefined && currentOps.has(l.op)
          }

    /** The synchronous part of a search: checks, then the index (no lock needed: it runs without yielding). */
    const searchNow = (
      idx: VectorIndex,
      spec: AnnotationType.VectorField,
      knn: Query.Knn,
      matching: Set<number> | undefined
    ): Either.Either<ReadonlyArray<Query.Hit>, InvalidQueryError | MarkenFailureError> => {
      const bad = Vector.check(knn.vector, { dimension: spec.dimension, finite: true })
      if (bad) return Either.left(new InvalidQueryError({ path: "vector", message: bad.message }))
      try {
        const q = knn.vector
        const ef = Math.max(knn.ef ?? tuning.ef, knn.k)
        const found =
          matching === undefined
            ? idx.search(q, knn.k, ef, visible(idx, knn.filter?.operationId))
            : idx.search(q, knn.k, ef, (l) => matching.has(l), { size: matching.size, labels: matching })
        return Either.right(found.map((f) => ({ id: idx.labels.get(f.label)!.id, distance: f.distance })))
      } catch (e) {
        return Either.left(failure("search")(e))
      }
    }

    /** The payloads of the hits, in one query (`includePayload`). */
    const withPayloads = (hits: ReadonlyArray<Query.Hit>) =>
      hits.length === 0
        ? Effect.succeed(hits)
        : db
            .use("marken.search.payloads", (k) =>
              k
                .selectFrom("marken_annotations")
                .select(["id", "payload"])
                .where(
                  "id",
                  "in",
                  hits.map((h) => h.id)
                )
                .execute()
            )
            .pipe(
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
        const checked = decodeKnn({ ...knn, vector: [] })
        if (Either.isLeft(checked)) return Effect.fail(invalidQuery(checked.left))
        const memory = memoryOnly(knn.filter, knn.type, knn.version)
        // hot path: a loaded index, synced recently, no SQL filter: no database round trip
        const ready = hot.get(keyString(knn))
        if (
          memory &&
          ready &&
          ready.entry.idx &&
          (ready.entry.syncing || nowMs() - ready.entry.lastSync < syncInterval)
        ) {
          return searchNow(ready.entry.idx, ready.spec, knn, undefined)
        }
        return Effect.gen(function* () {
          const { idx, entry, spec } = yield* indexFor(knn.type, knn.version, knn.field)
          const labels = memory ? undefined : yield* matchingLabels(idx, entry, knn.filter!)
          return yield* searchNow(idx, spec, knn, labels)
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
              if (left.size * right.size <= 4_000_000 || right.size <= tuning.exactThreshold) {
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

    // ---- migrations between versions ----
    const migrate = <A, B>(m: Migration<A, B>) =>
      Effect.gen(function* () {
        yield* registry.get(m.from.name, m.from.version)
        const toDef = yield* registry.get(m.to.name, m.to.version)
        const decodeFrom = Schema.decodeUnknownEither(m.from.payload)
        const encodeTo = Schema.encodeEither(m.to.payload)
        const ops = yield* db.use("marken.migrate.ops", (k) =>
          k
            .selectFrom("marken_current as c")
            .innerJoin("marken_operations as o", "o.id", "c.operation_id")
            .selectAll("o")
            .where("c.type", "=", m.from.name)
            .where("c.version", "=", m.from.version)
            .execute()
        )
        let annotations = 0
        for (const o of ops) {
          const op = yield* start({
            type: m.to.name,
            version: m.to.version,
            producer: {
              algorithm: o.algorithm,
              version: o.algorithm_version,
              run: `migrated from ${m.from.version} (operation ${o.id})`,
              key: o.producer_key
            }
          })
          const copied = yield* Effect.gen(function* () {
            let after = ""
            let n = 0
            for (;;) {
              const rows = yield* db.use("marken.migrate.read", (k) =>
                k
                  .selectFrom("marken_annotations")
                  .selectAll()
                  .where("operation_id", "=", o.id)
                  .where("id", ">", after)
                  .orderBy("id")
                  .limit(500)
                  .execute()
              )
              if (rows.length === 0) return n
              after = rows[rows.length - 1]!.id
              const vs = yield* vectorsOf(rows.map((r) => r.id))
              const items: Array<Annotation.Item> = []
              for (const r of rows) {
                const a = toAnnotation(r)
                const decoded = decodeFrom(a.payload)
                if (Either.isLeft(decoded)) {
                  return yield* new InvalidAnnotationError({
                    path: "payload",
                    message: `stored annotation ${a.id}: ${decoded.left.message}`
                  })
                }
                const migrated = yield* Effect.try({
                  try: () => m.migrate(decoded.right),
                  catch: (e) =>
                    new InvalidAnnotationError({ path: "payload", message: `migration of ${a.id} threw: ${String(e)}` })
                })
                const encoded = encodeTo(migrated)
                if (Either.isLeft(encoded)) {
                  return yield* new InvalidAnnotationError({
                    path: "payload",
                    message: `migrated ${a.id}: ${encoded.left.message}`
                  })
                }
                const vectors: Record<string, Float32Array> = {}
                for (const [field, v] of Object.entries(vs.get(a.id) ?? {})) {
                  if (toDef.vectors[field]?.dimension === v.length) vectors[field] = v
                }
                const {
                  id: _i,
                  operationId: _o,
                  type: _t,
                  version: _v,
                  producer: _p,
                  createdMs: _c,
                  vectors: _vs,
                  ...rest
                } = a
                items.push({ ...rest, key: a.key ?? a.id, payload: encoded.right, vectors })
              }
              yield* upsert(op.id, items, { atomic: true })
              n += items.length
            }
          }).pipe(Effect.tapError(() => Effect.ignore(cancel(op.id))))
          yield* finish(op.id)
          annotations += copied
        }
        return { operations: ops.length, annotations }
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

    const persist = Effect.try({
      try: () => {
        if (directory === undefined) return
        for (const e of indexes.values()) if (e.idx?.dirty) e.idx.persist(directory, instance.value)
      },
      catch: failure("index.persist")
    })

    const loadIndexStats = (key: IndexKey) =>
      indexFor(key.type, key.version, key.field).pipe(
        Effect.map(({ idx }) => ({ key: keyString(key), size: idx.size, origin: idx.origin }))
      )

    return {
      start,
      upsert,
      finish,
      cancel,
      operation,
      operations,
      create,
      get,
      update,
      remove,
      removeMany,
      removeWhere,
      query,
      count,
      search,
      pairs,
      migrate,
      decode,
      persist,
      loadIndex: loadIndexStats
    } satisfies Service
  })

/**
 * The service as a layer (needs `Registry` and `Database`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Annotations, StorageError, Database.Database | Registry> =>
  Layer.scoped(Annotations, make(options))

/**
 * `Registry` and `Annotations` together over a `Database`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithRegistry = (
  options?: Options
): Layer.Layer<Annotations | Registry, StorageError, Database.Database> =>
  layer(options).pipe(Layer.provideMerge(Registries.layer))
