/**
 * The vector indexes: one HNSW index per type version and vector field, loaded
 * (or rebuilt) from the database on first use, kept in step with this process's
 * writes and synced with other processes' writes.
 */
import { StorageError, Vector } from "@org/storage"
import { Effect } from "effect"
import type * as AnnotationType from "../AnnotationType.js"
import { MarkenFailureError } from "../MarkenError.js"
import type { Env } from "./env.js"
import { keyString, VectorIndex, type IndexKey, type Row } from "./hnsw.js"
import { parsePath, PayloadMirror } from "./payloadIndex.js"
import type { Runs } from "./runs.js"

export interface Entry {
  idx: VectorIndex | undefined
  /** Held while the index changes (readers on the hot path never yield, so they see it before or after). */
  readonly lock: Effect.Semaphore
  /** One sync at a time per index. */
  readonly syncLock: Effect.Semaphore
  lastSync: number
  /** A sync is reading the database: readers keep searching the state before it. */
  syncing: boolean
}

export interface IndexChange {
  readonly key: IndexKey
  readonly added: Array<Row>
  readonly removed: Array<number>
}

export const failure = (operation: string) => (cause: unknown) =>
  new MarkenFailureError({
    operation,
    message: `${operation} failed: ${StorageError.messageOf(cause)}`
  })

export type Indexes = ReturnType<typeof make>

export const make = ({ caps, directory, emit, instance, nowMs, syncInterval, tuning, use }: Env, runs: Runs) => {
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

  /**
   * Stored vectors of a field after `afterSeq`, decoding only those `skip` does not
   * reject; with `payloads`, each with its annotation's payload (for the payload mirror).
   */
  const readRows = (
    key: IndexKey,
    afterSeq?: number,
    skip?: (seq: number) => boolean,
    payloads = false
  ): Effect.Effect<Array<Row>, StorageError.StorageError> =>
    use("marken.index.read", (k) => {
      let q = k
        .selectFrom("marken_vectors as v")
        .select(["v.seq", "v.annotation_id", "v.operation_id", "v.vector"])
        .where("v.type", "=", key.type)
        .where("v.version", "=", key.version)
        .where("v.field", "=", key.field)
      if (payloads) q = q.innerJoin("marken_annotations as a", "a.id", "v.annotation_id").select("a.payload")
      if (afterSeq !== undefined) q = q.where("v.seq", ">", afterSeq)
      return q.orderBy("v.seq").execute()
    }).pipe(
      Effect.map((rows) =>
        (skip ? rows.filter((r) => !skip(Number(r.seq))) : rows).map(
          (r): Row => ({
            seq: Number(r.seq),
            id: r.annotation_id,
            op: r.operation_id,
            vector: Vector.decodeUnsafe(r.vector),
            ...(payloads ? { payload: caps.readJson((r as { payload?: unknown }).payload) } : {})
          })
        )
      )
    )

  /**
   * Gives the index a payload mirror of the type version's indexed fields (or none),
   * filled from the database, when its fields differ from the mirror's.
   */
  const ensureMirror = (entry: Entry, idx: VectorIndex, declared: ReadonlyArray<string>) =>
    Effect.suspend(() => {
      const paths = declared.flatMap((d) => {
        const p = parsePath(d)
        return p ? [p] : []
      })
      const same =
        (idx.mirror?.paths ?? []).map((p) => p.join(".")).join(",") === paths.map((p) => p.join(".")).join(",")
      if (same) return Effect.void
      if (paths.length === 0) return Effect.sync(() => (idx.mirror = undefined))
      return use("marken.index.payloads", (k) =>
        k
          .selectFrom("marken_vectors as v")
          .innerJoin("marken_annotations as a", "a.id", "v.annotation_id")
          .select(["v.seq", "a.payload"])
          .where("v.type", "=", idx.key.type)
          .where("v.version", "=", idx.key.version)
          .where("v.field", "=", idx.key.field)
          .execute()
      ).pipe(
        Effect.flatMap((rows) =>
          entry.lock.withPermits(1)(
            Effect.sync(() => {
              const mirror = new PayloadMirror(paths, (label) => idx.slotOf(label))
              for (const r of rows) {
                const seq = Number(r.seq)
                if (idx.labels.has(seq)) mirror.set(seq, caps.readJson(r.payload))
              }
              idx.mirror = mirror
              runs.bump()
            })
          )
        )
      )
    })

  const loadIndex = (key: IndexKey, spec: AnnotationType.VectorField) =>
    Effect.gen(function* () {
      const entry = entryOf(key)
      if (entry.idx) return entry.idx
      return yield* entry.lock.withPermits(1)(
        Effect.gen(function* () {
          if (entry.idx) return entry.idx
          const startedAt = nowMs()
          const ks = keyString(key)
          const idx = new VectorIndex(key, spec.dimension, spec.metric, tuning)
          const reason = directory === undefined ? "no index folder" : idx.load(directory, instance.value)
          // pointers first: the vectors of every run they name were committed before them
          const pointers = yield* runs.readCurrent
          const rows = yield* readRows(key)
          const total = rows.length
          emit({ _tag: "IndexLoading", key: ks, source: reason === undefined ? "file" : "database", total })
          const fail = failure(`index.load ${ks}`)
          if (reason !== undefined) {
            yield* Effect.try({ try: () => idx.init(Math.ceil(total * 1.25)), catch: fail })
            // in slices, yielding between them: the process keeps answering while a large index builds
            const slice = 2000
            for (let from = 0; from < total; from += slice) {
              yield* Effect.try({
                try: () => {
                  for (let i = from; i < Math.min(total, from + slice); i++) idx.add(rows[i]!)
                },
                catch: fail
              })
              emit({ _tag: "IndexProgress", key: ks, done: Math.min(total, from + slice), total })
              yield* Effect.yieldNow()
            }
          }
          yield* Effect.try({
            try: () => {
              if (reason !== undefined) {
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
            catch: fail
          })
          emit({ _tag: "IndexReady", key: ks, size: idx.size, origin: idx.origin, ms: nowMs() - startedAt })
          entry.idx = idx
          entry.lastSync = nowMs()
          runs.applyCurrent(pointers)
          return idx
        }).pipe(
          Effect.tapError((e) =>
            Effect.sync(() => emit({ _tag: "IndexFailed", key: keyString(key), message: e.message }))
          )
        )
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
      const pointers = yield* runs.readCurrent
      // rows the index holds already are not decoded (re-checked under the lock below)
      const payloads = idx.mirror !== undefined
      const fresh = yield* readRows(idx.key, Math.max(0, idx.maxSeq - 1000), (seq) => idx.labels.has(seq), payloads)
      const total = yield* use("marken.index.count", (k) =>
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
          ? yield* use("marken.index.labels", (k) =>
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
          ? yield* readRows(idx.key, 0, (seq) => idx.labels.has(seq) || fetched.has(seq), payloads)
          : []
      yield* entry.lock.withPermits(1)(
        Effect.sync(() => {
          for (const r of fresh) {
            if (!idx.labels.has(r.seq)) {
              idx.add(r)
              runs.bump()
            }
          }
          for (const r of missing) {
            if (!idx.labels.has(r.seq)) {
              idx.add(r)
              runs.bump()
            }
          }
          if (all !== undefined) {
            runs.bump()
            const live = new Set(all.map((r) => Number(r.seq)))
            // labels added by this process after the read are newer than every row it saw
            let newest = 0
            for (const seq of live) if (seq > newest) newest = seq
            for (const label of [...idx.labels.keys()]) if (label <= newest && !live.has(label)) idx.remove(label)
          }
          // last, and in the same step: the pointers move once the index holds their vectors
          runs.applyCurrent(pointers)
        })
      )
    })

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
      runs.bump()
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

  /** Writes changed indexes when the service's scope closes (what fails is rebuilt on the next start). */
  const finalizer = Effect.sync(() => {
    if (directory === undefined) return
    for (const e of indexes.values()) {
      try {
        if (e.idx?.dirty) e.idx.persist(directory, instance.value)
      } catch {
        // the next start rebuilds what could not be written
      }
    }
  })

  /** Writes every changed index to the index folder. */
  const persist = Effect.try({
    try: () => {
      if (directory === undefined) return
      for (const e of indexes.values()) if (e.idx?.dirty) e.idx.persist(directory, instance.value)
    },
    catch: failure("index.persist")
  })

  return { entryOf, loadIndex, ensureMirror, sync, changes, applyChanges, finalizer, persist }
}

/** The index changes a transaction collects, applied once it commits. */
export type Changes = ReturnType<Indexes["changes"]>
