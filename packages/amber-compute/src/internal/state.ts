import { Array as Arr, Effect } from "effect"
import { Database } from "@org/storage"
import type { StorageError } from "@org/storage"
import type { Kysely } from "kysely"
import type { FailureJson } from "../ComputeError.js"
import { CURSORS, FAILURES, migrations, type Tables } from "./migrations.js"

/** A failure recorded for a (feature, version, entity). */
export interface FailureRecord extends FailureJson {
  readonly fingerprint: string | null
  readonly run: string
  readonly attempts: number
  readonly at: number
}

/** Failures and trigger cursors: kept in the database so they outlive a process. */
export interface State {
  readonly recordFailures: (
    rows: ReadonlyArray<Omit<FailureRecord, "attempts">>
  ) => Effect.Effect<void, StorageError.StorageError>
  readonly clearFailures: (
    feature: string,
    version: number,
    entities: ReadonlyArray<string>
  ) => Effect.Effect<void, StorageError.StorageError>
  readonly failures: (
    feature?: { readonly name: string; readonly version: number } | undefined
  ) => Effect.Effect<ReadonlyArray<FailureRecord>, StorageError.StorageError>
  readonly getCursor: (name: string) => Effect.Effect<number, StorageError.StorageError>
  readonly setCursor: (name: string, position: number, at: number) => Effect.Effect<void, StorageError.StorageError>
}

const CHUNK = 500

export const makeMemory = (): State => {
  const failures = new Map<string, FailureRecord>()
  const cursors = new Map<string, number>()
  const key = (feature: string, version: number, entity: string) => `${feature}@${version}\u0000${entity}`
  return {
    recordFailures: (rows) =>
      Effect.sync(() => {
        for (const row of rows) {
          const k = key(row.feature, row.version, row.entity)
          failures.set(k, { ...row, attempts: (failures.get(k)?.attempts ?? 0) + 1 })
        }
      }),
    clearFailures: (feature, version, entities) =>
      Effect.sync(() => {
        if (failures.size === 0) return
        for (const entity of entities) failures.delete(key(feature, version, entity))
      }),
    failures: (feature) =>
      Effect.sync(() =>
        [...failures.values()]
          .filter((f) => feature === undefined || (f.feature === feature.name && f.version === feature.version))
          .sort((a, b) => a.at - b.at)
      ),
    getCursor: (name) => Effect.sync(() => cursors.get(name) ?? 0),
    setCursor: (name, position) => Effect.sync(() => void cursors.set(name, position))
  }
}

export const make: Effect.Effect<State, StorageError.StorageError, Database.Database> = Effect.gen(function* () {
  const db = yield* Database.Database
  yield* db.migrate("amber-compute", migrations)
  const use = <A>(operation: string, f: (k: Kysely<Tables>) => Promise<A>) => db.use<A, Tables>(operation, f)
  return {
    recordFailures: (rows) =>
      rows.length === 0
        ? Effect.void
        : Effect.forEach(
            Arr.chunksOf(rows, 50),
            (chunk) =>
              use("amber-compute.recordFailures", (k) =>
                k
                  .insertInto(FAILURES)
                  .values(
                    chunk.map((r) => ({
                      feature: r.feature,
                      version: r.version,
                      entity: r.entity,
                      fingerprint: r.fingerprint,
                      tag: r._tag,
                      message: r.message,
                      run: r.run,
                      attempts: 1,
                      at: r.at
                    }))
                  )
                  .onConflict((oc) =>
                    oc.columns(["feature", "version", "entity"]).doUpdateSet((eb) => ({
                      fingerprint: eb.ref("excluded.fingerprint"),
                      tag: eb.ref("excluded.tag"),
                      message: eb.ref("excluded.message"),
                      run: eb.ref("excluded.run"),
                      at: eb.ref("excluded.at"),
                      attempts: eb(eb.ref(`${FAILURES}.attempts`), "+", 1)
                    }))
                  )
                  .execute()
              ),
            { discard: true }
          ),
    clearFailures: (feature, version, entities) =>
      entities.length === 0
        ? Effect.void
        : Effect.forEach(
            Arr.chunksOf(entities, CHUNK),
            (chunk) =>
              use("amber-compute.clearFailures", (k) =>
                k
                  .deleteFrom(FAILURES)
                  .where("feature", "=", feature)
                  .where("version", "=", version)
                  .where("entity", "in", chunk)
                  .execute()
              ),
            { discard: true }
          ),
    failures: (feature) =>
      use("amber-compute.failures", (k) => {
        let q = k.selectFrom(FAILURES).selectAll()
        if (feature !== undefined) q = q.where("feature", "=", feature.name).where("version", "=", feature.version)
        return q.orderBy("at").orderBy("entity").execute()
      }).pipe(
        Effect.map((rows) =>
          rows.map(
            (r): FailureRecord => ({
              _tag: r.tag as FailureJson["_tag"],
              feature: r.feature,
              version: Number(r.version),
              entity: r.entity,
              message: r.message,
              fingerprint: r.fingerprint,
              run: r.run,
              attempts: Number(r.attempts),
              at: Number(r.at)
            })
          )
        )
      ),
    getCursor: (name) =>
      use("amber-compute.getCursor", (k) =>
        k.selectFrom(CURSORS).select("position").where("name", "=", name).executeTakeFirst()
      ).pipe(Effect.map((row) => (row === undefined ? 0 : Number(row.position)))),
    setCursor: (name, position, at) =>
      use("amber-compute.setCursor", (k) =>
        k
          .insertInto(CURSORS)
          .values({ name, position, updated_at: at })
          .onConflict((oc) =>
            oc.column("name").doUpdateSet((eb) => ({
              position: eb.ref("excluded.position"),
              updated_at: eb.ref("excluded.updated_at")
            }))
          )
          .execute()
      ).pipe(Effect.asVoid)
  }
})
